//! Replay as a library: inputs in, repaired records and a report out.
//!
//! [`run`] (and [`run_planned`]) is one pass of sources into sinks; [`files::replay_to_files`]
//! runs every pass of a [`plan::ReadPlan`] into files (what `mend replay` and `mend demo`
//! do), and [`replay_bytes`] runs a capture held in memory (a firmware's UART output, say)
//! and returns the records themselves. [`outputs`] keeps outputs away from the inputs.

pub mod files;
pub mod note;
pub mod outputs;
pub mod plan;

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use indicatif::ProgressBar;
use mend_core::Outage;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::engine::spill::{SpillSet, SpillWriter};
use crate::engine::{
    AggregateOut, Engine, EngineConfig, EngineState, Pass, Sinks, StreamReport, Uncaptured,
};
use crate::input::seek::{InputPlan, PlanNote};
use crate::input::{self, ByteCounts, Format, InputSource, OpenOptions};
use crate::merge::Merge;
use crate::sink::dlq::DeadLetterLog;
use crate::sink::{OutRecord, RecordSink, VecSink};

/// Everything a replay needs besides its inputs and outputs.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The engine settings: fill, window, lateness, band, aggregates.
    pub engine: EngineConfig,
    /// The sampling period of JSONL input, ms.
    pub jsonl_period_ms: u32,
    /// The format of every input, or `None` to detect each one's.
    pub input_format: Option<Format>,
    /// The inputs may still be being written, and the next run reads them again (a
    /// checkpointed run that is not final): a frame or line cut short at the end of one is
    /// left for that run instead of dead-lettered.
    pub tail_may_grow: bool,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            jsonl_period_ms: 1_000,
            input_format: None,
            tail_may_grow: false,
        }
    }
}

/// How one input was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputReport {
    /// Its name (path, `-`, or `<memory>`).
    pub name: String,
    /// Its format.
    pub format: Format,
    /// Its byte books.
    pub bytes: ByteCounts,
    /// True when every byte read is accounted for.
    pub balanced: bool,
    /// True when reading stopped early, past `--until`.
    pub stopped_early: bool,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Per input, in command-line order.
    pub inputs: Vec<InputReport>,
    /// Per stream, in `(sensor, session)` order.
    pub streams: Vec<StreamReport>,
    /// Dead-letter records written.
    pub dead_letters: u64,
    /// Dead-letter records per reason.
    pub dead_by_reason: BTreeMap<String, u64>,
    /// Remarks for the summary (seek decisions, empty windows).
    pub notes: Vec<String>,
    /// The first dead-letter records, as many as [`Outputs::keep_dead_letters`] asked for.
    pub first_dead_letters: Vec<DeadLetterReport>,
    /// Passes over the inputs: 2 when readings far out of place were put in their place.
    pub passes: u8,
}

/// A dead-letter record in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetterReport {
    /// The input's name.
    pub input: String,
    /// Where.
    pub location: crate::input::Location,
    /// Why, in short.
    pub reason: crate::input::DeadReason,
    /// Why, for people.
    pub detail: String,
}

impl ReplayReport {
    /// Records written over all streams.
    pub fn records(&self) -> u64 {
        self.streams.iter().map(|s| s.records).sum()
    }

    /// True when anything was rejected: dead letters, or readings the pipeline refused.
    /// Duplicates are not rejections, and neither are records an earlier run wrote.
    pub fn anything_rejected(&self) -> bool {
        self.dead_letters > 0
            || self
                .streams
                .iter()
                .any(|s| s.counters.rejected > 0 || s.counters.late > 0)
    }

    /// True when every input's bytes and every stream's books balance.
    pub fn balanced(&self) -> bool {
        self.inputs.iter().all(|i| i.balanced) && self.streams.iter().all(|s| s.balanced)
    }
}

/// Where a replay writes.
pub struct Outputs<'a, 'w> {
    /// Repaired records.
    pub records: &'a mut dyn RecordSink,
    /// The dead-letter file, if any.
    pub dead_letters: Option<Box<dyn Write + 'w>>,
    /// The aggregates CSV, if any (needs `engine.window_ms`).
    pub aggregates: Option<Box<dyn Write + 'w>>,
    /// A progress bar advanced by bytes read.
    pub progress: Option<ProgressBar>,
    /// How many dead-letter records to keep in the report.
    pub keep_dead_letters: usize,
    /// Engine state carried between runs (the fleet worker), if any.
    pub carry: Option<&'a mut Carry>,
}

/// Engine state a run continues from, and the state it leaves for the next run (see
/// [`EngineState`]).
#[derive(Debug, Default)]
pub struct Carry {
    /// The state to continue from: the run's inputs are what came after it.
    pub restore: Option<EngineState>,
    /// The state at the end of this run's inputs, or why it cannot be carried.
    pub captured: Option<Result<EngineState, Uncaptured>>,
    /// Positions of readings the clock check held at the end of this run's inputs (see
    /// [`Engine::undecided_positions`]).
    pub undecided: Vec<u64>,
}

/// Inputs beyond this number are decoded on the replay's own thread.
pub const MAX_THREADED_INPUTS: usize = 4;

/// Where to start reading each input (byte offsets from a seek; 0 for the start).
pub type StartOffsets = Vec<u64>;

/// True when every input can be read a second time (files and bytes in memory, not standard
/// input or a pipe), so that readings far out of place can be put in their place on a second
/// pass.
pub fn rereadable(sources: &[InputSource]) -> bool {
    sources.iter().all(InputSource::rereadable)
}

/// What one pass of [`run`] gives.
pub struct PassResult {
    /// What happened.
    pub report: ReplayReport,
    /// The checkpoint after this pass.
    pub checkpoint: Checkpoint,
    /// What a first pass set aside: `Some` means the outputs of this pass must be discarded
    /// and a second pass run with it ([`Pass::Second`]).
    pub spill: Option<SpillSet>,
}

/// The pass to start a replay of `sources` with: a first pass that sets readings far out of
/// place aside where the inputs can be read again, the only pass otherwise.
pub fn first_pass(sources: &[InputSource]) -> anyhow::Result<Pass> {
    Ok(if rereadable(sources) {
        Pass::First(SpillWriter::new().context("cannot create a temporary spill directory")?)
    } else {
        Pass::Only
    })
}

/// Runs one pass of a replay over `sources`, each read from its start offset to its end
/// (see [`crate::engine::spill`] for why there can be two passes).
///
/// Errors are I/O errors and unusable settings only; bad input is dead-lettered.
pub fn run(
    sources: &[InputSource],
    starts: &StartOffsets,
    cfg: &ReplayConfig,
    checkpoint: Checkpoint,
    pass: Pass,
    out: Outputs,
) -> anyhow::Result<PassResult> {
    let plans: Vec<InputPlan> = (0..sources.len())
        .map(|i| InputPlan {
            start: starts.get(i).copied().unwrap_or(0),
            stop: None,
        })
        .collect();
    run_planned(sources, &plans, cfg, checkpoint, pass, out)
}

/// Runs one pass of a replay over `sources`, each read as its plan says (from
/// [`crate::input::seek::plan`]: a seek for `--from`, an early stop for `--until`). The report's
/// notes say which inputs stopped early and why.
///
/// Errors are I/O errors and unusable settings only; bad input is dead-lettered.
pub fn run_planned(
    sources: &[InputSource],
    plans: &[InputPlan],
    cfg: &ReplayConfig,
    checkpoint: Checkpoint,
    pass: Pass,
    out: Outputs,
) -> anyhow::Result<PassResult> {
    let second = matches!(pass, Pass::Second(_));
    let mut engine = Engine::for_pass(cfg.engine.clone(), checkpoint, pass, sources.len())?;
    let mut carry = out.carry;
    if let Some(state) = carry.as_ref().and_then(|c| c.restore.as_ref()) {
        engine.restore(state)?;
    }
    let starts: Vec<u64> = (0..sources.len())
        .map(|i| plans.get(i).map_or(0, |p| p.start))
        .collect();
    let continues = input::rotation::continuations(sources, &starts);
    let cut_continues = input::rotation::cut_continues(&continues);
    let mut readers = Vec::with_capacity(sources.len());
    for (i, src) in sources.iter().enumerate() {
        let plan = plans.get(i).copied().unwrap_or_default();
        let opts = OpenOptions {
            jsonl_period_ms: cfg.jsonl_period_ms,
            start_offset: plan.start,
            progress: out.progress.clone(),
            stop: plan.stop,
            // A thread per input pays off for a few inputs; many inputs share the cores
            // anyway, and each thread holds a chunk and a few batches.
            threaded: sources.len() <= MAX_THREADED_INPUTS,
            format: cfg.input_format,
            continues: continues.get(i).cloned().flatten(),
            cut_continues: cut_continues.get(i).copied().unwrap_or(false),
            tail_may_grow: cfg.tail_may_grow,
        };
        readers.push(input::open(src, i, &opts)?);
    }
    let names: Vec<String> = sources.iter().map(InputSource::name).collect();
    let mut dead =
        DeadLetterLog::new(names.clone(), out.dead_letters).keeping(out.keep_dead_letters);
    let mut aggs = match out.aggregates {
        Some(w) => Some(AggregateOut::new(w).context("cannot write aggregates")?),
        None => None,
    };
    let mut merge = Merge::new(readers);
    {
        let mut sinks = Sinks {
            records: out.records,
            dead: &mut dead,
            aggregates: aggs.as_mut(),
        };
        merge
            .for_each(&mut |item| engine.push_item(item, &mut sinks))
            .context("replay failed while reading an input or writing an output")?;
        if let Some(c) = carry.as_mut() {
            c.captured = Some(
                engine
                    .capture()
                    .context("cannot read the readings set aside")?,
            );
            c.undecided = engine.undecided_positions();
        }
        engine.finish(&mut sinks).context("cannot write output")?;
    }
    let checkpoint = engine.checkpoint();
    let mut report = ReplayReport {
        streams: engine.take_reports(),
        dead_letters: dead.total(),
        dead_by_reason: dead
            .by_reason()
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect(),
        first_dead_letters: dead
            .kept()
            .iter()
            .map(|d| DeadLetterReport {
                input: dead.input_name(d.input).to_string(),
                location: d.location,
                reason: d.reason,
                detail: d.detail.clone(),
            })
            .collect(),
        passes: if second { 2 } else { 1 },
        ..ReplayReport::default()
    };
    for (i, r) in merge.readers().enumerate() {
        let bytes = r.bytes();
        report.inputs.push(InputReport {
            name: names.get(i).cloned().unwrap_or_default(),
            format: r.format(),
            bytes,
            balanced: bytes.balanced(),
            stopped_early: r.stopped_early(),
        });
        let name = names.get(i).map_or("?", String::as_str);
        if let Some(rule) = plans.get(i).and_then(|p| p.stop) {
            let note = if r.stopped_early() {
                PlanNote::Stopped {
                    at: bytes.before_seek + bytes.read,
                    rule,
                }
            } else {
                PlanNote::NotStopped(rule)
            };
            report.notes.push(format!("{name}: {note}"));
        }
        if continues
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.from == i)
        {
            report.notes.push(format!(
                "{name}: its frames before its first header were read in the context of its own end, the same session (pieces of a log joined in the wrong order, or a log whose first header was lost)"
            ));
        } else if let Some(c) = continues.get(i).and_then(Option::as_ref) {
            let from = names.get(c.from).map_or("?", String::as_str);
            report.notes.push(format!(
                "{name}: its frames before its first header were read as the continuation of {from} (a log rotated mid-session)"
            ));
            if c.joined {
                let cut = c.context.cut_frame().len();
                report.notes.push(format!(
                    "{name}: its first frame began in the last {cut} bytes of {from} (the log was split inside a frame)"
                ));
            }
        }
        if bytes.read == 0 && bytes.before_seek == 0 {
            report.notes.push(format!("{name}: empty input"));
        }
    }
    if second {
        let placed: u64 = report.streams.iter().map(|s| s.placed).sum();
        report.notes.push(format!(
            "{placed} readings arrived too far out of place for one pass; a second pass put them in their place"
        ));
    }
    report.notes.extend(
        report
            .streams
            .iter()
            .filter_map(note::StreamNote::of)
            .map(|n| n.to_string()),
    );
    let held: u64 = report.streams.iter().map(|s| s.held_back).sum();
    if held > 0 {
        report.notes.push(format!(
            "{held} readings of the streams' unsettled tails are held back for the next run (or --final)"
        ));
    }
    if report.records() == 0 {
        let e = &cfg.engine;
        let why = match (e.from, engine.latest_seen()) {
            (Some(f), Some(l)) if l < f => format!(
                "no reading at or after --from {}; the latest reading is at {}",
                crate::text::timefmt::to_rfc3339(f),
                crate::text::timefmt::to_rfc3339(l)
            ),
            (_, None) => "no readings in the input".to_string(),
            _ => "no records inside the replay window".to_string(),
        };
        report.notes.push(format!("{why}: the output is empty"));
    }
    let spill = engine
        .into_spill()
        .context("cannot sort the readings set aside")?;
    Ok(PassResult {
        report,
        checkpoint,
        spill,
    })
}

/// The result of [`replay_bytes`].
#[derive(Clone, Debug, Default)]
pub struct ReplayOutput {
    /// The repaired records, in output order.
    pub records: Vec<OutRecord>,
    /// The outages inside the window.
    pub outages: Vec<Outage>,
    /// What happened.
    pub report: ReplayReport,
    /// The checkpoint after the replay.
    pub checkpoint: Checkpoint,
}

/// Replays a capture held in memory (a frame log or JSONL) and returns the records.
///
/// # Examples
/// ```
/// use mend::replay::{replay_bytes, ReplayConfig};
/// use mend_core::{Celsius, ClockKind, Frame, Header, Reading};
///
/// // A session header and readings seq 0, 1 and 3: seq 2 was lost.
/// let h = Header::new(7, 1, 1_000, ClockKind::Unix, 1_000_000);
/// let mut capture = Frame::Header(h).to_buf().unwrap().to_vec();
/// for (seq, t) in [(0u32, 52.0), (1, 52.5), (3, 53.5)] {
///     let r = Reading::new(7, 1, seq, 1_000_000 + u64::from(seq) * 1_000, Celsius::from_num(t));
///     capture.extend_from_slice(&Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap());
/// }
///
/// let out = replay_bytes(&capture, &ReplayConfig::default()).unwrap();
/// let rows: Vec<(u32, f64, bool)> = out
///     .records
///     .iter()
///     .map(|o| (o.record.reading.seq, o.record.reading.celsius.to_num(), o.record.is_synthetic()))
///     .collect();
/// assert_eq!(rows, [(0, 52.0, false), (1, 52.5, false), (2, 53.0, true), (3, 53.5, false)]);
/// let stream = &out.report.streams[0];
/// assert_eq!((stream.gaps, stream.missing, stream.synthetic), (1, 1, 1));
/// assert!(stream.balanced && out.report.inputs[0].balanced);
/// assert_eq!(out.report.inputs[0].bytes.read, capture.len() as u64);
/// ```
pub fn replay_bytes(capture: &[u8], cfg: &ReplayConfig) -> anyhow::Result<ReplayOutput> {
    let sources = [InputSource::Bytes(capture.to_vec().into())];
    replay_sources(
        &sources,
        &[InputPlan::default()],
        cfg,
        Checkpoint::default(),
    )
}

/// Replays `sources`, each read as its plan says, with every pass it needs, and returns the
/// records of the last pass, the report and the new checkpoint.
///
/// # Errors
/// I/O errors and unusable settings; bad input is dead-lettered.
pub fn replay_sources(
    sources: &[InputSource],
    plans: &[InputPlan],
    cfg: &ReplayConfig,
    checkpoint: Checkpoint,
) -> anyhow::Result<ReplayOutput> {
    let mut pass = first_pass(sources)?;
    loop {
        let mut sink = VecSink::default();
        let result = run_planned(
            sources,
            plans,
            cfg,
            checkpoint.clone(),
            pass,
            Outputs {
                records: &mut sink,
                dead_letters: None,
                aggregates: None,
                progress: None,
                keep_dead_letters: 100,
                carry: None,
            },
        )?;
        match result.spill {
            Some(set) => pass = Pass::Second(set),
            None => {
                return Ok(ReplayOutput {
                    records: sink.records,
                    outages: sink.outages,
                    report: result.report,
                    checkpoint: result.checkpoint,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::{Celsius, ClockKind, Frame, Header, WireReading};

    fn frames(h: Header, wire: &[(u32, i32)]) -> Vec<u8> {
        let mut out = Frame::Header(h).to_buf().unwrap().to_vec();
        for &(seq, offset_ms) in wire {
            let w = WireReading {
                seq,
                offset_ms,
                celsius_delta: Celsius::from_num(52).to_bits() - h.reference_bits,
            };
            out.extend_from_slice(&Frame::Reading(w).to_buf().unwrap());
        }
        out
    }

    #[test]
    fn a_reading_whose_time_contradicts_its_seq_is_a_clock_jump_not_a_row() {
        let h = Header::new(1, 1, 1_000, ClockKind::Unix, 0);
        let mut wire: Vec<(u32, i32)> = (0..100).map(|s| (s, 0)).collect();
        // Seq 200 stamped at 5 s: 195 s behind where its seq puts it.
        wire.push((200, -195_000));
        let out = replay_bytes(&frames(h, &wire), &ReplayConfig::default()).unwrap();
        assert_eq!(out.records.len(), 100);
        let s = &out.report.streams[0];
        assert_eq!((s.counters.rejected, s.counters.input), (1, 101));
        assert!(s.balanced);
        assert_eq!(out.report.dead_by_reason.get("clock_jump"), Some(&1));
        assert!(out.report.anything_rejected());
        assert!(out
            .records
            .windows(2)
            .all(|w| w[0].record.reading.timestamp < w[1].record.reading.timestamp));
    }

    #[test]
    fn a_reading_far_out_of_place_in_a_file_is_put_in_its_place() {
        let h = Header::new(1, 1, 1_000, ClockKind::Unix, 0);
        // Seq 5 arrives after seq 99: 94 s late, far beyond the 30 s lateness.
        let mut wire: Vec<(u32, i32)> = (0..100).filter(|s| *s != 5).map(|s| (s, 0)).collect();
        wire.push((5, 0));
        let out = replay_bytes(&frames(h, &wire), &ReplayConfig::default()).unwrap();
        let seqs: Vec<u32> = out.records.iter().map(|r| r.record.reading.seq).collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
        assert!(out.records.iter().all(|r| !r.record.is_synthetic()));
        let s = &out.report.streams[0];
        assert_eq!((s.placed, s.counters.late, s.counters.input), (1, 0, 100));
        assert!(s.balanced && out.report.dead_letters == 0);
        assert_eq!(out.report.passes, 2);
    }

    #[test]
    fn jsonl_repeats_are_duplicates_and_another_value_at_the_same_time_is_a_conflict() {
        let line = |ts: u64, t: f64| {
            format!("{{\"timestamp\": {ts}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": {t}, \"status\": \"normal\"}}\n")
        };
        let mut text = String::new();
        for ts in [0u64, 2, 1, 3, 4, 3] {
            text.push_str(&line(ts, 52.0));
        }
        for ts in 5..100 {
            text.push_str(&line(ts, 52.0));
        }
        // 10 s again with another value, 89 s after it: the first value is kept.
        text.push_str(&line(10, 51.0));
        // 20 s again with the same value: a duplicate, however far behind.
        text.push_str(&line(20, 52.0));
        let out = replay_bytes(text.as_bytes(), &ReplayConfig::default()).unwrap();
        let s = &out.report.streams[0];
        assert_eq!(out.records.len(), 100);
        assert!(out
            .records
            .iter()
            .all(|r| !r.has_seq && !r.record.is_synthetic()));
        assert_eq!(
            out.records[10].record.reading.celsius,
            mend_core::Celsius::from_num(52)
        );
        assert_eq!((s.counters.duplicate, s.counters.rejected), (2, 1));
        assert!(s.balanced);
        assert_eq!(
            out.report.dead_by_reason.get("conflicting_duplicate"),
            Some(&1)
        );
        assert_eq!(out.report.dead_letters, 1);
    }

    fn sample_capture() -> Vec<u8> {
        let mut v = Vec::new();
        crate::generate::generate(
            &crate::generate::GenerateConfig::clean(3, 300),
            &mut v,
            None,
        )
        .unwrap();
        v
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any bytes: no panic, every byte accounted for, the books balance. Detection may
        /// refuse bytes that look like text but hold no JSON line, with its clear error; read
        /// as a frame log (`--input-format frames`), the same bytes always replay.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            match replay_bytes(&bytes, &ReplayConfig::default()) {
                Ok(out) => {
                    proptest::prop_assert!(out.report.balanced(), "{:?}", out.report);
                    proptest::prop_assert_eq!(out.report.inputs[0].bytes.read, bytes.len() as u64);
                }
                Err(e) => proptest::prop_assert!(
                    e.to_string().contains("not a mend capture or prototype JSONL"),
                    "{e:#}"
                ),
            }
            let frames = ReplayConfig {
                input_format: Some(Format::Frames),
                ..ReplayConfig::default()
            };
            let out = replay_bytes(&bytes, &frames).unwrap();
            proptest::prop_assert!(out.report.balanced(), "{:?}", out.report);
            proptest::prop_assert_eq!(out.report.inputs[0].bytes.read, bytes.len() as u64);
        }

        /// A real capture with random bytes damaged: every intact reading still comes out.
        #[test]
        fn damaged_captures_keep_their_intact_readings(
            hits in proptest::collection::vec((0usize..100_000, proptest::prelude::any::<u8>()), 0..20),
        ) {
            let clean = sample_capture();
            let mut bytes = clean.clone();
            for (at, v) in &hits {
                let i = at % bytes.len();
                bytes[i] = *v;
            }
            let out = replay_bytes(&bytes, &ReplayConfig::default()).unwrap();
            proptest::prop_assert!(out.report.balanced());
            let measured = out.records.iter().filter(|r| !r.record.is_synthetic()).count();
            // Each damaged byte can spoil at most the frame it is in, the one after it (a
            // lost delimiter) and the header it belonged to (up to 60 readings until the next).
            proptest::prop_assert!(measured + hits.len() * 62 >= 300, "{}", measured);
            proptest::prop_assert!(out.records.windows(2).all(|w| w[0].record.reading.key() < w[1].record.reading.key()));
        }

        /// JSONL with random lines mixed in: no panic, books balance.
        #[test]
        fn jsonl_with_noise_never_panics(
            noise in proptest::collection::vec("[ -~]{0,80}", 0..20),
        ) {
            let mut text = String::new();
            for (i, n) in noise.iter().enumerate() {
                text.push_str(&format!("{{\"timestamp\": {i}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}}\n"));
                text.push_str(n);
                text.push('\n');
            }
            let out = replay_bytes(text.as_bytes(), &ReplayConfig::default()).unwrap();
            proptest::prop_assert!(out.report.balanced());
            proptest::prop_assert!(out.records.iter().filter(|r| !r.record.is_synthetic()).count() >= noise.len().min(1));
        }
    }
}
