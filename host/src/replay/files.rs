//! A replay into files: every output checked against the inputs and created before the
//! work starts (so an unwritable path fails first, not after ten minutes), written to
//! temporary files, and put in place in the crash-safe order — the records, dead letters,
//! aggregates, chart and summary first, the checkpoint last.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::ProgressBar;

use super::outputs::{check_outputs, MainOut};
use super::plan::ReadPlan;
use super::{first_pass, run_planned, Outputs, PassResult, ReplayReport};
use crate::chart::{Chart, ChartSpec};
use crate::checkpoint::{Checkpoint, InputMark};
use crate::engine::Pass;
use crate::fs::{discards, stdout_discards, writes_in_place, AtomicFile};
use crate::input::seek::InputPlan;
use crate::input::InputSource;
use crate::sink::chart::ChartSink;
use crate::sink::{MlogWriter, RowFormat, RowWriter, Tee};

/// The format of the repaired records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// `sensor,session,seq,time,celsius,origin,method,quality,flags`.
    #[default]
    Csv,
    /// The same fields, one JSON object per line.
    Jsonl,
    /// mend frames of the measured readings only.
    Mlog,
}

/// The files of one replay. Messages name each by the `mend replay` option that sets it.
#[derive(Clone, Debug, Default)]
pub struct ReplayFiles {
    /// The records (`-o`; standard output when `None` or `-`).
    pub output: Option<PathBuf>,
    /// Their format.
    pub format: OutputFormat,
    /// The dead-letter file (`--dlq`).
    pub dlq: Option<PathBuf>,
    /// The SVG chart (`--chart`).
    pub chart: Option<PathBuf>,
    /// The aggregates CSV (`--aggregates`; needs a window in the engine settings).
    pub aggregates: Option<PathBuf>,
    /// The checkpoint to resume from and update (`--checkpoint`).
    pub checkpoint: Option<PathBuf>,
    /// The summary as JSON (`--summary-json`).
    pub summary_json: Option<PathBuf>,
}

/// Standard output, named as a path for the outputs other than the records (`--dlq -`).
pub const STDOUT: &str = "/dev/stdout";

impl ReplayFiles {
    /// True when the records go to standard output.
    fn to_stdout(&self) -> bool {
        self.output.as_deref().is_none_or(|p| p.as_os_str() == "-")
    }

    /// The output files, with their options; standard output (`-`, or no `-o`) as
    /// `/dev/stdout`, so that it is not given to two.
    fn named(&self) -> Vec<(&'static str, &Path)> {
        let stdout = Path::new(STDOUT);
        let records = if self.to_stdout() {
            Some(stdout)
        } else {
            self.output.as_deref()
        };
        [
            ("-o", records),
            ("--dlq", self.dlq.as_deref()),
            ("--chart", self.chart.as_deref()),
            ("--aggregates", self.aggregates.as_deref()),
            ("--checkpoint", self.checkpoint.as_deref()),
            ("--summary-json", self.summary_json.as_deref()),
        ]
        .into_iter()
        .filter_map(|(flag, p)| Some((flag, p?)))
        .map(|(flag, p)| (flag, if p.as_os_str() == "-" { stdout } else { p }))
        .collect()
    }
}

/// Runs a replay of `plan` into `files`: checks the paths, creates every output up front,
/// runs every pass it needs, and commits the outputs in crash-safe order (outputs, then
/// the checkpoint). `progress` makes the progress bar, if any, once the outputs exist; it is
/// advanced by the bytes read and cleared at the end.
///
/// # Errors
/// An output that is an input, an input that cannot be read, an output that cannot be
/// written, a checkpoint of other inputs; bad input is dead-lettered, not an error.
pub fn replay_to_files(
    plan: &ReadPlan,
    files: &ReplayFiles,
    progress: impl FnOnce() -> Option<ProgressBar>,
) -> anyhow::Result<ReplayReport> {
    let to_stdout = files.to_stdout();
    if files
        .checkpoint
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-")
    {
        bail!("--checkpoint needs a file: it is read back by the next run");
    }
    check_outputs(&plan.sources, &files.named(), to_stdout)?;
    for s in &plan.sources {
        if let InputSource::Path(p) = s {
            let m = std::fs::metadata(p)
                .with_context(|| format!("{}: cannot open input", p.display()))?;
            if m.is_dir() {
                bail!("{}: is a directory, not a capture", p.display());
            }
        }
    }
    let checkpoint = match &files.checkpoint {
        Some(p) => {
            let ck = Checkpoint::load(p)?;
            ck.check_inputs(&plan.sources, p)?;
            ck
        }
        None => Checkpoint::default(),
    };
    // Fingerprints now, before the inputs grow any further.
    let input_marks = match &files.checkpoint {
        Some(_) => plan
            .sources
            .iter()
            .map(InputMark::of)
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let mut notes = Vec::new();
    let plans = plan.input_plans(&mut notes)?;

    // The files written after the replay exist (as temporary files) before any work starts:
    // one that cannot be written fails the run before any output is put in place.
    let chart_file = files.chart.as_deref().map(AtomicFile::create).transpose()?;
    let summary_file = files
        .summary_json
        .as_deref()
        .map(AtomicFile::create)
        .transpose()?;
    let checkpoint_file = files
        .checkpoint
        .as_deref()
        .map(Checkpoint::create_file)
        .transpose()?;
    let progress = progress();

    // A first pass may set readings far out of place aside; then its outputs are dropped
    // (their temporary files removed) and a second pass puts those readings in their place.
    // Standard output, a pipe or a device cannot be taken back: when an output of every pass
    // is one, a first pass writes nothing at all, and another pass always follows. (The
    // chart, the summary and the checkpoint are written once, after the last pass.) The null
    // device throws away what it gets: written by every pass, it needs no pass of its own.
    let in_place = (to_stdout && !stdout_discards())
        || [&files.output, &files.dlq, &files.aggregates]
            .into_iter()
            .flatten()
            .any(|p| writes_in_place(p) && !discards(p));
    let mut pass = first_pass(&plan.sources)?;
    let (mut report, mut new_checkpoint, outs) = loop {
        let dry = in_place && matches!(pass, Pass::First(_));
        let mut outs = PassOutputs::create(plan, files, dry)?;
        if let Some(p) = &progress {
            p.reset();
        }
        let result = outs.run(plan, &plans, checkpoint.clone(), pass, progress.clone())?;
        match result.spill {
            Some(set) => pass = Pass::Second(set),
            None if dry => pass = Pass::Only,
            None => break (result.report, result.checkpoint, outs),
        }
    };
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    report.notes.splice(0..0, notes);

    // Outputs first (synced, renamed), the checkpoint last.
    let chart = outs.commit()?;
    if let (Some(mut f), Some(c)) = (chart_file, chart.as_ref()) {
        let svg = c.render_svg().context("cannot draw the chart")?;
        f.write_all(svg.as_bytes())
            .with_context(|| format!("{}: cannot write chart", f.path().display()))?;
        f.commit()?;
    }
    if let Some(mut f) = summary_file {
        serde_json::to_writer_pretty(&mut f, &report)
            .with_context(|| format!("{}: cannot write summary", f.path().display()))?;
        f.write_all(b"\n")?;
        f.commit()?;
    }
    if let Some(f) = checkpoint_file {
        new_checkpoint.inputs = input_marks;
        new_checkpoint.save_to(f)?;
    }
    Ok(report)
}

/// The outputs of one pass: created before it starts, committed after the last one.
struct PassOutputs {
    main: MainOut,
    dry: bool,
    format: OutputFormat,
    dlq: Option<AtomicFile>,
    aggs: Option<AtomicFile>,
    chart: Option<Chart>,
}

impl PassOutputs {
    /// Creates every output of a pass; a `dry` pass writes nothing.
    fn create(plan: &ReadPlan, files: &ReplayFiles, dry: bool) -> anyhow::Result<Self> {
        if dry {
            return Ok(Self {
                main: MainOut::Discard,
                dry,
                format: files.format,
                dlq: None,
                aggs: None,
                chart: None,
            });
        }
        let main = MainOut::open(files.output.as_deref())?;
        Ok(Self {
            main,
            dry,
            format: files.format,
            dlq: files.dlq.as_deref().map(AtomicFile::create).transpose()?,
            aggs: files
                .aggregates
                .as_deref()
                .map(AtomicFile::create)
                .transpose()?,
            chart: files.chart.as_ref().map(|_| {
                let band = plan.config.engine.validate.band;
                Chart::new(ChartSpec {
                    title: chart_title(&plan.sources),
                    band: (band.0.to_num(), band.1.to_num()),
                    ..ChartSpec::default()
                })
            }),
        })
    }

    /// Runs one pass into these outputs.
    fn run(
        &mut self,
        plan: &ReadPlan,
        plans: &[InputPlan],
        checkpoint: Checkpoint,
        pass: Pass,
        progress: Option<ProgressBar>,
    ) -> anyhow::Result<PassResult> {
        let mut tee = Tee::default();
        if !self.dry {
            match self.format {
                OutputFormat::Csv => tee
                    .sinks
                    .push(Box::new(RowWriter::new(&mut self.main, RowFormat::Csv)?)),
                OutputFormat::Jsonl => tee
                    .sinks
                    .push(Box::new(RowWriter::new(&mut self.main, RowFormat::Jsonl)?)),
                OutputFormat::Mlog => tee.sinks.push(Box::new(MlogWriter::new(&mut self.main))),
            }
        }
        if let Some(c) = self.chart.as_mut() {
            tee.sinks.push(Box::new(ChartSink { chart: c }));
        }
        run_planned(
            &plan.sources,
            plans,
            &plan.config,
            checkpoint,
            pass,
            Outputs {
                records: tee.single_or_all(),
                dead_letters: self.dlq.as_mut().map(|f| Box::new(f) as Box<dyn Write>),
                aggregates: self.aggs.as_mut().map(|f| Box::new(f) as Box<dyn Write>),
                progress,
                keep_dead_letters: 0,
                carry: None,
            },
        )
    }

    /// Puts the records, dead letters and aggregates in place; gives back the chart to draw.
    fn commit(self) -> anyhow::Result<Option<Chart>> {
        self.main.finish()?;
        if let Some(f) = self.dlq {
            f.commit()?;
        }
        if let Some(f) = self.aggs {
            f.commit()?;
        }
        Ok(self.chart)
    }
}

/// The chart's title: the inputs, as named on the command line.
fn chart_title(sources: &[InputSource]) -> String {
    let names: Vec<String> = sources.iter().map(InputSource::name).collect();
    format!("mend replay of {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::generate::{generate, GenerateConfig};
    use crate::replay::ReplayConfig;

    fn plan(input: PathBuf) -> ReadPlan {
        ReadPlan {
            sources: vec![InputSource::Path(input)],
            config: ReplayConfig {
                engine: EngineConfig {
                    window_ms: Some(60_000),
                    ..EngineConfig::default()
                },
                ..ReplayConfig::default()
            },
            seek: true,
        }
    }

    #[test]
    fn every_output_appears_with_the_rows_the_report_counts() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mlog");
        let mut capture = Vec::new();
        generate(&GenerateConfig::clean(3, 300), &mut capture, None).unwrap();
        std::fs::write(&input, &capture).unwrap();
        let at = |name: &str| Some(dir.path().join(name));
        let files = ReplayFiles {
            output: at("out.csv"),
            format: OutputFormat::Csv,
            dlq: at("dead.jsonl"),
            chart: at("chart.svg"),
            aggregates: at("aggs.csv"),
            checkpoint: at("ck"),
            summary_json: at("summary.json"),
        };
        let report = replay_to_files(&plan(input), &files, || None).unwrap();
        assert_eq!(report.records(), 300);
        let csv = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
        assert_eq!(csv.lines().count(), 301);
        for name in ["dead.jsonl", "chart.svg", "aggs.csv", "ck", "summary.json"] {
            assert!(dir.path().join(name).is_file(), "{name}");
        }
        // Nothing else: no temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 7);
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_before_anything_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mlog");
        std::fs::write(&input, b"").unwrap();
        let files = ReplayFiles {
            output: Some(dir.path().join("out.csv")),
            dlq: Some(input.clone()),
            ..ReplayFiles::default()
        };
        let e = replay_to_files(&plan(input.clone()), &files, || None).unwrap_err();
        assert!(
            e.to_string().contains("--dlq would overwrite an input"),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
