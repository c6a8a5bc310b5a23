//! `mend inspect`: one pass over the captures, nothing written but a report of what they
//! hold — sensors, sessions, byte books, gaps, outages and damage.

use std::io::{self, Write};
use std::process::ExitCode;

use mend_core::Record;

use super::cli::InspectArgs;
use super::exit::EXIT_OK;
use mend::checkpoint::Checkpoint;
use mend::engine::Pass;
use mend::input::StreamMeta;
use mend::replay::{self, Outputs, ReplayReport};
use mend::sink::RecordSink;
use mend::text::summary;

/// A sink that writes nothing.
struct Discard;

impl RecordSink for Discard {
    fn record(&mut self, _rec: &Record, _meta: &StreamMeta) -> io::Result<()> {
        Ok(())
    }
}

/// `mend inspect`: what a capture holds, on standard output.
pub fn run(a: &InspectArgs) -> anyhow::Result<ExitCode> {
    let plan = a.read.plan(mend_core::FillMethod::None, 0)?;
    mend::replay::outputs::check_stdout_open()?;
    let mut notes = Vec::new();
    let plans = plan.input_plans(&mut notes)?;
    // One pass: inspect reports the log as it is, readings out of place included.
    let mut report = replay::run_planned(
        &plan.sources,
        &plans,
        &plan.config,
        Checkpoint::default(),
        Pass::Only,
        Outputs {
            records: &mut Discard,
            dead_letters: None,
            aggregates: None,
            progress: super::progress::progress_bar(&plan.sources, false),
            keep_dead_letters: a.list,
            carry: None,
        },
    )?
    .report;
    report.notes.splice(0..0, notes);
    let mut out = io::stdout().lock();
    write_inspect(&mut out, &report, a.list)?;
    Ok(ExitCode::from(EXIT_OK))
}

fn write_inspect(out: &mut impl Write, r: &ReplayReport, list: usize) -> io::Result<()> {
    use mend::text::timefmt::{human_ms, to_rfc3339};
    let sensors: std::collections::BTreeSet<u32> = r.streams.iter().map(|s| s.sensor).collect();
    writeln!(
        out,
        "sensors: {}",
        sensors
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    for i in &r.inputs {
        writeln!(out, "{}", summary::input_line(i))?;
    }
    let first = r.streams.iter().filter_map(|s| s.first_ms).min();
    let last = r.streams.iter().filter_map(|s| s.last_ms).max();
    if let (Some(a), Some(b)) = (first, last) {
        writeln!(
            out,
            "time span: {} .. {} ({})",
            to_rfc3339(a),
            to_rfc3339(b),
            human_ms(b - a)
        )?;
    }
    for s in &r.streams {
        writeln!(
            out,
            "session: sensor {} session {}: period {}, {} clock{}; {} readings received{}",
            s.sensor,
            s.session,
            human_ms(u64::from(s.period_ms)),
            s.clock,
            if s.has_seq { "" } else { ", no seq" },
            s.received,
            match (s.first_ms, s.last_ms) {
                (Some(a), Some(b)) => format!(" from {} to {}", to_rfc3339(a), to_rfc3339(b)),
                _ => String::new(),
            }
        )?;
        let mut lines = String::new();
        summary::resend_lines(&mut lines, s);
        write!(out, "{lines}")?;
        writeln!(out, "  {}", summary::counters_line(s))?;
        writeln!(
            out,
            "  quality of the readings kept: good {}, doubtful {}, bad {}",
            s.good, s.doubtful, s.bad
        )?;
        writeln!(
            out,
            "  gaps: {} ({} readings missing); outages: {} ({} readings missing)",
            s.gaps, s.missing, s.outages, s.missing_in_outages
        )?;
        for o in &s.outage_list {
            writeln!(
                out,
                "    outage {} .. {} ({} missing)",
                to_rfc3339(o.start_ms),
                to_rfc3339(o.end_ms),
                o.missing
            )?;
        }
        let mut edge = String::new();
        summary::stream_section(&mut edge, s, None);
        for line in edge.lines().filter(|l| {
            let l = l.trim_start();
            l.starts_with("edge stats") || l.starts_with("sensor faults")
        }) {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "damaged or unusable input: {}", r.dead_letters)?;
    for (reason, n) in &r.dead_by_reason {
        writeln!(out, "  {reason}: {n}")?;
    }
    for d in r.first_dead_letters.iter().take(list) {
        writeln!(
            out,
            "  {} {}: {} ({})",
            d.input, d.location, d.reason, d.detail
        )?;
    }
    if r.dead_letters > r.first_dead_letters.len() as u64 {
        writeln!(
            out,
            "  … and {} more",
            r.dead_letters - r.first_dead_letters.len() as u64
        )?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}
