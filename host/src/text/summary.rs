//! The summary printed at the end of a replay: the books, in words and numbers.
//!
//! A replay that quietly drops readings is worse than one that fails, so the summary shows
//! both accounting identities with their numbers — per input, bytes in good frames + bad
//! frames + skipped = bytes read; per stream, `in = emitted + late + duplicate + rejected +
//! evicted` — each with a tick or a cross, next to what the edge itself reported.

use std::fmt::Write as _;

use crate::engine::StreamReport;
use crate::replay::ReplayReport;
use crate::text::timefmt::{human_ms, to_rfc3339};

fn tick(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

/// The byte identity of one input, as a sentence.
pub fn input_line(i: &crate::replay::InputReport) -> String {
    let b = &i.bytes;
    let (unit, skipped) = match i.format {
        crate::input::Format::Frames => ("frames", "skipped"),
        crate::input::Format::Jsonl => ("lines", "in blank lines"),
    };
    let mut s = format!(
        "input {} ({}): {} bytes read = {} in good {unit} + {} in bad {unit} + {} {skipped} {} ({} good {unit}, {} bad, {} skipped)",
        i.name,
        i.format.name(),
        b.read,
        b.good,
        b.bad,
        b.skipped,
        tick(b.good + b.bad + b.skipped + b.held == b.read),
        b.good_items,
        b.bad_items,
        b.skipped_items,
    );
    if b.held > 0 {
        let _ = write!(
            s,
            "; its last {} bytes are a {} still being written, held for the next run",
            b.held,
            &unit[..unit.len() - 1]
        );
    }
    if b.recovered_items > 0 {
        let were = if b.recovered_items == 1 {
            "was"
        } else {
            "were"
        };
        let _ = write!(
            s,
            "; {} of the good {unit} {were} found whole inside damaged ones and kept",
            b.recovered_items
        );
    }
    if b.before_seek > 0 || b.after_stop > 0 {
        let _ = write!(
            s,
            "; not read: {} bytes before --from (seek), {} bytes after --until",
            b.before_seek, b.after_stop
        );
    }
    if let Some(t) = b.total {
        let _ = write!(
            s,
            "; file size {t} {}",
            tick(b.before_seek + b.read + b.after_stop == t)
        );
        if b.grown > 0 {
            let _ = write!(
                s,
                " (the input grew by {} bytes during the run; all of them were read)",
                b.grown
            );
        }
    }
    s
}

/// What the summary adds to a stream's received count: records an earlier run wrote, readings
/// put in their place by a second pass, readings held back for the next run.
fn received_notes(s: &StreamReport) -> String {
    let mut notes = Vec::new();
    if s.placed > 0 {
        notes.push(format!(
            "{} arrived too far out of place and were put in their place by a second pass",
            s.placed
        ));
    }
    if s.already_emitted > 0 {
        notes.push(format!(
            "{} records already written by an earlier run",
            s.already_emitted
        ));
    }
    if s.held_back > 0 {
        notes.push(format!(
            "{} held back as the unsettled tail, for the next run",
            s.held_back
        ));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// The reading identity of one stream, with numbers.
pub fn counters_line(s: &StreamReport) -> String {
    format!("{} {}", equation(&s.counters), tick(s.balanced))
}

/// `in N = emitted N + late N + duplicate N + rejected N + evicted N`.
fn equation(c: &mend_core::Counters) -> String {
    format!(
        "in {} = emitted {} + late {} + duplicate {} + rejected {} + evicted {}",
        c.input, c.emitted, c.late, c.duplicate, c.rejected, c.evicted
    )
}

/// The lines on the link's recovery and liveness, when there is something to say.
pub fn resend_lines(out: &mut String, s: &StreamReport) {
    if s.recovered_by_resend > 0 {
        let _ = writeln!(
            out,
            "  recovered by resend: {} readings the node sent again",
            s.recovered_by_resend
        );
    }
    if s.heartbeats > 0 {
        let _ = writeln!(out, "  heartbeats: {}", s.heartbeats);
    }
}

/// Renders a stream's section.
pub fn stream_section(out: &mut String, s: &StreamReport, dead_file: Option<&str>) {
    let _ = writeln!(
        out,
        "stream sensor {} session {} (period {}, {} clock{}):",
        s.sensor,
        s.session,
        human_ms(u64::from(s.period_ms)),
        s.clock,
        if s.has_seq { "" } else { ", no seq" }
    );
    if let (Some(a), Some(b)) = (s.first_ms, s.last_ms) {
        let _ = writeln!(
            out,
            "  readings received: {} from {} to {}{}",
            s.received,
            to_rfc3339(a),
            to_rfc3339(b),
            received_notes(s)
        );
    }
    resend_lines(out, s);
    let _ = writeln!(out, "  {}", counters_line(s));
    let _ = writeln!(
        out,
        "  records written: {} = {} measured + {} synthetic; quality good {}, doubtful {}, bad {}{}",
        s.records,
        s.measured,
        s.synthetic,
        s.good,
        s.doubtful,
        s.bad,
        if s.outside_window > 0 {
            format!("; {} outside the window", s.outside_window)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  gaps: {} ({} readings missing, {} filled); outages: {} ({} readings missing)",
        s.gaps, s.missing, s.synthetic, s.outages, s.missing_in_outages
    );
    for o in &s.outage_list {
        let _ = writeln!(
            out,
            "    outage {} .. {} ({} missing, not filled)",
            to_rfc3339(o.start_ms),
            to_rfc3339(o.end_ms),
            o.missing
        );
    }
    if s.outages > s.outage_list.len() as u64 {
        let _ = writeln!(
            out,
            "    … and {} more",
            s.outages - s.outage_list.len() as u64
        );
    }
    if s.counters.late + s.counters.rejected > 0 {
        let _ = writeln!(
            out,
            "  late or rejected readings are in the dead-letter {}",
            dead_file.map_or("records".to_string(), |f| format!("file {f}"))
        );
    }
    if s.faults > 0 {
        let list: Vec<String> = s
            .fault_list
            .iter()
            .take(10)
            .map(|f| format!("seq {} {}", f.seq, f.kind))
            .collect();
        let _ = writeln!(
            out,
            "  sensor faults reported by the edge: {} ({}{})",
            s.faults,
            list.join(", "),
            if s.faults > list.len() as u64 {
                ", …"
            } else {
                ""
            }
        );
    }
    if let Some(e) = &s.edge {
        let _ = writeln!(
            out,
            "  edge stats: {} (+ held) {}; the edge sent {} readings, the host received {}{}",
            equation(&e.counters),
            tick(e.balanced),
            e.sent,
            s.received,
            if e.ring_dropped > 0 {
                format!("; the edge ring dropped {} frames", e.ring_dropped)
            } else {
                String::new()
            }
        );
    }
}

/// Renders the whole summary.
pub fn render(r: &ReplayReport, dead_file: Option<&str>) -> String {
    let mut out = String::new();
    let measured: u64 = r.streams.iter().map(|s| s.measured).sum();
    let synthetic: u64 = r.streams.iter().map(|s| s.synthetic).sum();
    let _ = writeln!(
        out,
        "mend: {} input{}, {} stream{}, {} records ({} measured, {} synthetic)",
        r.inputs.len(),
        if r.inputs.len() == 1 { "" } else { "s" },
        r.streams.len(),
        if r.streams.len() == 1 { "" } else { "s" },
        r.records(),
        measured,
        synthetic
    );
    for i in &r.inputs {
        let _ = writeln!(out, "{}", input_line(i));
    }
    for s in &r.streams {
        stream_section(&mut out, s, dead_file);
    }
    if r.dead_letters > 0 {
        let reasons: Vec<String> = r
            .dead_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "dead letters: {} ({}){}",
            r.dead_letters,
            reasons.join(", "),
            dead_file.map_or(" — pass --dlq FILE to keep them".to_string(), |f| format!(
                " → {f}"
            ))
        );
    } else {
        let _ = writeln!(out, "dead letters: 0");
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
