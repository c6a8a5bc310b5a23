//! Helpers for tests that run the real `mend` binary in temporary directories.
#![allow(dead_code)]

pub mod redis;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mend_core::{Celsius, ClockKind, Frame, Header, Reading, WireReading, CRC};

/// A temporary directory and the binary.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn read_text(&self, name: &str) -> String {
        String::from_utf8(self.read(name)).unwrap()
    }

    /// Runs `mend args…` in this directory.
    pub fn mend(&self, args: &[&str]) -> Run {
        self.mend_stdin(args, None)
    }

    /// `mend args…` to run in this directory: standard input empty, the output piped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mend"));
        cmd.args(args)
            .current_dir(self.tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts `mend args…` in the background, its standard output dropped and its standard
    /// error kept for [`redis::wait`] or [`finish`].
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::null()).spawn().unwrap()
    }

    /// Runs `mend args…` with `stdin` piped in.
    pub fn mend_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.command(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(bytes) = stdin {
            use std::io::Write;
            let mut s = child.stdin.take().unwrap();
            s.write_all(bytes).unwrap();
        }
        Run(child.wait_with_output().unwrap(), args.join(" "))
    }

    /// Runs `mend args…` with standard input reading the file `stdin` (`mend … < stdin`).
    pub fn mend_stdin_file(&self, args: &[&str], stdin: &Path) -> Run {
        let out = self
            .command(args)
            .stdin(std::fs::File::open(stdin).unwrap())
            .output()
            .unwrap();
        Run(out, args.join(" "))
    }

    /// Runs `mend args…` with standard output closed (`mend … >&-`).
    #[cfg(unix)]
    pub fn mend_stdout_closed(&self, args: &[&str]) -> Run {
        let out = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" >&-")
            .arg(env!("CARGO_BIN_EXE_mend"))
            .args(args)
            .current_dir(self.tmp.path())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        Run(out, format!("{} >&-", args.join(" ")))
    }
}

/// Waits for a background run to end and returns its exit code and standard error.
pub fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// A loopback port nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asserts that an export is byte for byte what `mend replay` wrote, naming the first
/// line that differs.
#[track_caller]
pub fn assert_export_is_replay(what: &str, got: &str, want: &str) {
    if got != want {
        let first = got.lines().zip(want.lines()).position(|(a, b)| a != b);
        panic!(
            "{what}: export ({} lines) differs from replay ({} lines), first at line {first:?}:\n  export: {:?}\n  replay: {:?}",
            got.lines().count(),
            want.lines().count(),
            first.and_then(|i| got.lines().nth(i)),
            first.and_then(|i| want.lines().nth(i)),
        );
    }
}

/// The output of one run, with readable assertions.
pub struct Run(pub Output, pub String);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "mend {}\n--- stdout\n{}\n--- stderr\n{}",
            self.1,
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        self.expect(0)
    }
}

/// One row of a repaired CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub sensor: u32,
    pub session: u32,
    pub seq: Option<u32>,
    pub time: String,
    pub ms: u64,
    pub celsius: Celsius,
    pub origin: String,
    pub method: String,
    pub quality: String,
    pub flags: String,
}

impl Row {
    pub fn synthetic(&self) -> bool {
        self.origin == "synthetic"
    }
}

pub const HEADER: &str = "sensor,session,seq,time,celsius,origin,method,quality,flags";

/// Parses a repaired CSV, checking the header.
pub fn rows(csv_text: &str) -> Vec<Row> {
    let mut lines = csv_text.lines();
    assert_eq!(lines.next(), Some(HEADER), "CSV header");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 9, "{l}");
            let ms = humantime::parse_rfc3339(f[3])
                .unwrap_or_else(|e| panic!("{}: {e}", f[3]))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            Row {
                sensor: f[0].parse().unwrap(),
                session: f[1].parse().unwrap(),
                seq: (!f[2].is_empty()).then(|| f[2].parse().unwrap()),
                time: f[3].to_string(),
                ms,
                celsius: Celsius::from_num(f[4].parse::<f64>().unwrap()),
                origin: f[5].to_string(),
                method: f[6].to_string(),
                quality: f[7].to_string(),
                flags: f[8].to_string(),
            }
        })
        .collect()
}

/// One line of a truth file.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub seq: u32,
    pub ms: u64,
    pub celsius: Celsius,
}

pub fn truth(text: &str) -> Vec<Truth> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("sensor,session,seq,time,celsius,out_of_band")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Truth {
                seq: f[2].parse().unwrap(),
                ms: humantime::parse_rfc3339(f[3])
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64,
                celsius: Celsius::from_num(f[4].parse::<f64>().unwrap()),
            }
        })
        .collect()
}

/// Dead-letter records as JSON values.
pub fn dead_letters(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

pub fn reasons(text: &str) -> Vec<String> {
    dead_letters(text)
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect()
}

/// Encoded frames, built with the core's encoder.
pub fn frame(f: Frame) -> Vec<u8> {
    f.to_buf().unwrap().to_vec()
}

/// COBS by the book (frames here are shorter than 254 bytes), for frames the encoder
/// refuses to write (unknown versions).
pub fn cobs(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.split(|b| *b == 0) {
        out.push(block.len() as u8 + 1);
        out.extend_from_slice(block);
    }
    out
}

/// A header frame of another format version: postcard bytes written by hand.
pub fn header_of_version(version: u8, sensor: u8, session: u8) -> Vec<u8> {
    // Variant 0, version, sensor, session, period 1000 = E8 07, clock Unix = 1, epoch 0.
    let body = [0u8, version, sensor, session, 0xE8, 0x07, 0x01, 0x00];
    let mut raw = body.to_vec();
    raw.extend_from_slice(&CRC.checksum(&body).to_le_bytes());
    let mut f = cobs(&raw);
    f.push(0);
    f
}

/// A session header (unix clock, 1 s period, epoch 0).
pub fn header(sensor: u32, session: u32) -> Header {
    Header::new(sensor, session, 1_000, ClockKind::Unix, 0)
}

/// Where each frame of a capture ends, its delimiter included: the places a log can be cut
/// between two frames.
pub fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len())
        .filter(|i| bytes[*i] == 0)
        .map(|i| i + 1)
        .collect()
}

/// The wire form of `seq` of session `h`, on schedule, at `t` °C.
pub fn on_schedule(h: &Header, seq: u32, t: f64) -> WireReading {
    let r = Reading::new(
        h.sensor,
        h.session,
        seq,
        h.epoch_ms + u64::from(seq) * u64::from(h.period_ms),
        Celsius::from_num(t),
    );
    h.to_wire(&r).unwrap()
}

/// Reading frames of a session, one per `(seq, celsius)`, on schedule.
pub fn readings(h: &Header, seqs: impl IntoIterator<Item = (u32, f64)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (seq, t) in seqs {
        out.extend(frame(Frame::Reading(on_schedule(h, seq, t))));
    }
    out
}

/// A prototype JSONL line.
pub fn jline(ts: i64, t: f64) -> String {
    format!(
        "{{\"timestamp\": {ts}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": {t}, \"status\": \"normal\"}}\n"
    )
}

/// `num / den` rounded to nearest, ties away from zero (the documented fill rounding).
pub fn div_round(num: i64, den: i64) -> i64 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den {
        q + num.signum()
    } else {
        q
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
