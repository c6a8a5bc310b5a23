//! Writes a capture with very many streams, to measure how a replay's memory and time grow
//! with the number of streams rather than with the number of readings.
//!
//! ```sh
//! cargo run --release -p mend --example many_streams -- sensors 100000 sensors.mlog
//! cargo run --release -p mend --example many_streams -- sessions 100000 sessions.mlog
//! /usr/bin/time -v target/release/mend replay sensors.mlog -o /dev/null -q
//! ```
//!
//! `sensors N`: N sensors with one reading each. `sessions N`: one sensor that restarted
//! N times, with three readings per session.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use mend_core::{Celsius, ClockKind, Frame, Header, Reading};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(kind), Some(n), Some(path)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: many_streams sensors|sessions N OUT");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u32>() else {
        eprintln!("N must be a whole number");
        return ExitCode::from(2);
    };
    match write(kind, n, path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("many_streams: {e}");
            ExitCode::from(2)
        }
    }
}

fn write(kind: &str, n: u32, path: &str) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let epoch = 1_767_225_600_000u64; // 2026-01-01T00:00:00Z
    let mut frame = |f: Frame| -> std::io::Result<()> {
        let buf = f.to_buf().map_err(std::io::Error::other)?;
        out.write_all(&buf)
    };
    for i in 0..n {
        let (sensor, session, readings, start) = match kind {
            "sensors" => (i, 1, 1u32, epoch),
            "sessions" => (7, i + 1, 3, epoch + u64::from(i) * 10_000),
            _ => return Err(std::io::Error::other("kind is sensors or sessions")),
        };
        let h = Header::new(sensor, session, 1_000, ClockKind::Unix, start);
        frame(Frame::Header(h))?;
        for seq in 0..readings {
            let r = Reading::new(
                sensor,
                session,
                seq,
                start + u64::from(seq) * 1_000,
                Celsius::from_num(52),
            );
            let w = h.to_wire(&r).map_err(std::io::Error::other)?;
            frame(Frame::Reading(w))?;
        }
    }
    out.flush()
}
