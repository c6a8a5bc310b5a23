//! `mend listen` against a test peer that plays the node over TCP: it sends version-2 frames
//! (some lost on the way), answers resend requests from its log, and records what the
//! gateway sends back.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::{wait, work_args, xlen, Redis};
use common::{assert_export_is_replay, finish, on_schedule, rows, Dir};
use mend_core::{
    Ack, ClockKind, DecodeEvent, Decoder, Encoder, Frame, Header, Heartbeat, Resend, ResetReason,
    Stats, WireReading, MAX_FRAME,
};

const SENSOR: u32 = 7;

/// The temperature of `seq`, distinct per seq.
fn celsius(seq: u32) -> f64 {
    52.0 + f64::from(seq % 16) / 16.0
}

/// The (session, seq) of every reading a capture holds.
fn capture_seqs(path: &Path) -> BTreeSet<(u32, u32)> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut dec: Decoder = Decoder::new();
    let mut session = None;
    let mut out = BTreeSet::new();
    for ev in dec.feed(&bytes) {
        if let DecodeEvent::Frame { frame, .. } = ev {
            match frame {
                Frame::Header(h) => session = Some(h.session),
                Frame::Reading(w) | Frame::Replayed(w) => {
                    out.insert((session.unwrap(), w.seq));
                }
                _ => {}
            }
        }
    }
    out
}

/// What the gateway sent to the node, and what the capture held when each Ack arrived.
#[derive(Debug, Default)]
struct Downlink {
    resends: Vec<Resend>,
    acks: Vec<(Ack, BTreeSet<(u32, u32)>)>,
}

/// A byte pipe to the gateway: a TCP connection or the master side of a pseudo-terminal.
trait Pipe: Read + Write + Send {}

impl<T: Read + Write + Send> Pipe for T {}

/// The node's side of one connection.
struct Node {
    stream: Box<dyn Pipe>,
    enc: Encoder,
    header: Header,
    /// Seqs the node still has in its log (it answers resends from these).
    log: BTreeSet<u32>,
    capture: PathBuf,
    /// The gateway's frames, as they arrive.
    down: Decoder,
}

impl Node {
    /// Waits (a minute at most, failing rather than hanging) for the gateway to connect.
    fn accept(listener: &TcpListener, session: u32, capture: &Path) -> Self {
        listener.set_nonblocking(true).unwrap();
        let asked = Instant::now();
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        asked.elapsed() < Duration::from_secs(60),
                        "the gateway never connected"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        Self::on(Box::new(stream), session, capture)
    }

    /// The node on any pipe.
    fn on(stream: Box<dyn Pipe>, session: u32, capture: &Path) -> Self {
        Self {
            stream,
            enc: Encoder::new(),
            header: Header::new(SENSOR, session, 1_000, ClockKind::Unix, 1_700_000_000_000)
                .with_reset(ResetReason::PowerOn),
            log: BTreeSet::new(),
            capture: capture.to_path_buf(),
            down: Decoder::new(),
        }
    }

    fn wire(&self, seq: u32) -> WireReading {
        on_schedule(&self.header, seq, celsius(seq))
    }

    fn bytes(&mut self, f: &Frame) -> Vec<u8> {
        let mut slot = [0u8; MAX_FRAME];
        let n = self.enc.encode_into(f, &mut slot).unwrap();
        slot[..n].to_vec()
    }

    fn send(&mut self, f: &Frame) {
        let b = self.bytes(f);
        self.stream.write_all(&b).unwrap();
    }

    fn header_at(&mut self, base: u32) {
        let h = Frame::Header(self.header.with_base(base));
        self.send(&h);
    }

    /// Sends the readings of `seqs`; those in `lost` are encoded but lost on the link.
    fn readings(&mut self, seqs: impl IntoIterator<Item = u32>, lost: &[u32]) {
        let mut out = Vec::new();
        for seq in seqs {
            self.log.insert(seq);
            if !self.enc.places(seq) {
                // After the node sent older seqs again, as it does itself.
                let h = Frame::Header(self.header.with_base(seq));
                out.extend(self.bytes(&h));
            }
            let f = Frame::Reading(self.wire(seq));
            let b = self.bytes(&f);
            if !lost.contains(&seq) {
                out.extend(b);
            }
        }
        self.stream.write_all(&out).unwrap();
    }

    /// Answers resends from the log and records acks until the gateway closes the link.
    fn serve(mut self) -> Downlink {
        let mut got = Downlink::default();
        self.serve_until(&mut got, |_| false);
        got
    }

    /// Answers resends from the log and records acks until `done` says so (true) or the
    /// gateway closes the link (false).
    fn serve_until(&mut self, got: &mut Downlink, done: impl Fn(&Downlink) -> bool) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            if done(got) {
                return true;
            }
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => n,
                // A serial port's read timeout: the gateway is still there.
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => return false,
            };
            let frames: Vec<Frame> = self
                .down
                .feed(&buf[..n])
                .map(|ev| match ev {
                    DecodeEvent::Frame { frame, .. } => frame,
                    DecodeEvent::Skipped { .. } => panic!("the gateway sent a bad frame"),
                })
                .collect();
            for f in frames {
                match f {
                    Frame::Resend(r) => {
                        got.resends.push(r);
                        let have: Vec<u32> = self.log.range(r.from..=r.to).copied().collect();
                        for seq in have {
                            if !self.enc.places(seq) {
                                self.header_at(seq);
                            }
                            let w = self.wire(seq);
                            self.send(&Frame::Replayed(w));
                        }
                    }
                    Frame::Ack(a) => got.acks.push((a, capture_seqs(&self.capture))),
                    other => panic!("unexpected frame from the gateway: {other:?}"),
                }
            }
        }
    }
}

/// `mend listen` started in the background.
fn spawn(d: &Dir, args: &[&str]) -> Child {
    d.command(&[&["listen"], args].concat()).spawn().unwrap()
}

fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

/// Every seq of `seqs`, as the repaired rows of the capture give them (all measured).
#[track_caller]
fn assert_measured(d: &Dir, capture: &str, session: u32, seqs: impl IntoIterator<Item = u32>) {
    let out = d.mend(&["replay", capture, "-q"]).ok().stdout();
    let got: BTreeMap<u32, (f64, bool)> = rows(&out)
        .iter()
        .filter(|r| r.session == session)
        .map(|r| (r.seq.unwrap(), (r.celsius.to_num::<f64>(), r.synthetic())))
        .collect();
    let want: BTreeMap<u32, (f64, bool)> =
        seqs.into_iter().map(|s| (s, (celsius(s), false))).collect();
    assert_eq!(got, want);
}

#[test]
fn missing_seqs_are_asked_for_recovered_measured_and_acked_only_once_on_disk() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--idle",
            "1s",
            "--retry-after",
            "5s",
        ],
    );
    let mut node = Node::accept(&l, 3, &cap);
    node.header_at(0);
    node.readings(0..20, &[5, 6, 12]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");

    // Exactly the lost seqs were asked for.
    let asked: BTreeSet<u32> = down.resends.iter().flat_map(|r| r.from..=r.to).collect();
    assert_eq!(asked, BTreeSet::from([5, 6, 12]), "{:?}", down.resends);
    assert!(down.resends.iter().all(|r| r.session == 3));
    // Every Ack covers only readings that were in the capture when it arrived.
    assert!(!down.acks.is_empty());
    for (ack, held) in &down.acks {
        for seq in 0..=ack.seq {
            assert!(
                held.contains(&(3, seq)),
                "{ack:?} before seq {seq} was on disk"
            );
        }
    }
    assert_eq!(
        down.acks.last().unwrap().0,
        Ack {
            session: 3,
            seq: 19
        }
    );

    assert_measured(&d, "node.mlog", 3, 0..20);
    assert!(
        !stderr.contains('\r'),
        "no status line when stderr is not a terminal"
    );
    assert!(
        stderr.contains("readings: 17 received first time, 3 recovered by resend, 0 unrecoverable, 0 still missing"),
        "{stderr}"
    );
    assert!(stderr.contains("sensor 7 session 3 (power-on)"), "{stderr}");
    let inspect = d.mend(&["inspect", "node.mlog"]).ok().stdout();
    assert!(
        inspect.contains("recovered by resend: 3 readings the node sent again"),
        "{inspect}"
    );
    let summary = d
        .mend(&["replay", "node.mlog", "-o", "out.csv"])
        .ok()
        .stderr();
    assert!(summary.contains("recovered by resend: 3"), "{summary}");
}

#[test]
fn a_range_the_node_no_longer_has_is_given_up_after_the_retries_and_acked_past() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--idle",
            "2s",
            "--retries",
            "2",
            "--retry-after",
            "100ms",
        ],
    );
    let mut node = Node::accept(&l, 4, &cap);
    node.header_at(0);
    node.readings(0..10, &[3, 4]);
    node.log.remove(&4); // gone from the node's log, and its stats say so
    node.send(&Frame::Stats(Stats {
        session: 4,
        log_dropped: 1,
        ..Stats::default()
    }));
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    let asked_4 = down.resends.iter().filter(|r| (r.from..=r.to).contains(&4));
    assert_eq!(asked_4.count(), 2, "{:?}", down.resends);
    assert!(
        stderr.contains(
            "8 received first time, 1 recovered by resend, 1 unrecoverable, 0 still missing"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("gave up: sensor 7 session 4 seqs 4..=4"),
        "{stderr}"
    );
    assert_eq!(down.acks.last().unwrap().0, Ack { session: 4, seq: 9 });
    // Seq 4 was never measured again: it is filled, and marked so.
    let out = d.mend(&["replay", "node.mlog", "-q"]).ok().stdout();
    let synthetic: Vec<u32> = rows(&out)
        .iter()
        .filter(|r| r.synthetic())
        .map(|r| r.seq.unwrap())
        .collect();
    assert_eq!(synthetic, [4]);
}

#[test]
fn an_existing_capture_is_continued_not_truncated_and_its_seqs_are_not_asked_for() {
    let d = Dir::new();
    let (l, addr) = listener();
    // An earlier run: session 5, seqs 0..10, then a frame torn by a crash.
    let mut earlier = Encoder::new();
    let h = Header::new(SENSOR, 5, 1_000, ClockKind::Unix, 1_700_000_000_000);
    let mut old = earlier.to_buf(&Frame::Header(h)).unwrap().to_vec();
    for seq in 0..10 {
        let w = on_schedule(&h, seq, celsius(seq));
        old.extend(earlier.to_buf(&Frame::Reading(w)).unwrap());
    }
    old.extend([0x05, 0x07, 0x2C]);
    let cap = d.write("node.mlog", &old);

    let gw = spawn(&d, &["--tcp", &addr, "-o", "node.mlog", "--idle", "1s"]);
    let mut node = Node::accept(&l, 5, &cap);
    node.header.reset = ResetReason::Unknown;
    node.header_at(10);
    node.readings(10..16, &[]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");

    let now = std::fs::read(&cap).unwrap();
    assert_eq!(
        &now[..old.len()],
        &old[..],
        "the earlier bytes are untouched"
    );
    assert_eq!(
        now[old.len()],
        0,
        "the torn frame is ended before new bytes"
    );
    assert!(down.resends.is_empty(), "{:?}", down.resends);
    assert_eq!(
        down.acks.last().unwrap().0,
        Ack {
            session: 5,
            seq: 15
        }
    );
    assert_measured(&d, "node.mlog", 5, 0..16);
    assert!(stderr.contains("resets seen: 0 new sessions"), "{stderr}");
}

#[test]
fn a_gateway_restarted_mid_run_asks_for_what_its_capture_lacks() {
    let d = Dir::new();
    let (l, addr) = listener();
    // The first gateway's capture: session 6, seqs 0..10 but 3 and 4, lost on the link and
    // not yet recovered when that gateway stopped (so never acknowledged: the node has them).
    let mut earlier = Encoder::new();
    let h = Header::new(SENSOR, 6, 1_000, ClockKind::Unix, 1_700_000_000_000);
    let mut old = earlier.to_buf(&Frame::Header(h)).unwrap().to_vec();
    for seq in (0..10).filter(|s| ![3, 4].contains(s)) {
        if !earlier.places(seq) {
            old.extend(earlier.to_buf(&Frame::Header(h.with_base(seq))).unwrap());
        }
        let w = on_schedule(&h, seq, celsius(seq));
        old.extend(earlier.to_buf(&Frame::Reading(w)).unwrap());
    }
    let cap = d.write("node.mlog", &old);

    let gw = spawn(&d, &["--tcp", &addr, "-o", "node.mlog", "--idle", "1s"]);
    let mut node = Node::accept(&l, 6, &cap);
    node.header.reset = ResetReason::Unknown;
    node.log.extend(0..10);
    node.header_at(10);
    node.readings(10..12, &[]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        down.resends.iter().any(|r| r.from == 3 && r.to == 4),
        "{:?}",
        down.resends
    );
    assert_measured(&d, "node.mlog", 6, 0..12);
    assert!(
        stderr.contains("2 recovered by resend, 0 unrecoverable, 0 still missing"),
        "{stderr}"
    );
}

#[test]
fn a_range_is_never_given_up_while_the_node_says_its_log_dropped_nothing() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--duration",
            "1500ms",
            "--retries",
            "2",
            "--retry-after",
            "100ms",
        ],
    );
    let mut node = Node::accept(&l, 4, &cap);
    node.header_at(0);
    node.readings(0..10, &[4]);
    // The node does not answer for seq 4 (slow, or busy), and has dropped nothing.
    node.log.remove(&4);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    let asked_4 = down
        .resends
        .iter()
        .filter(|r| (r.from..=r.to).contains(&4))
        .count();
    assert!(asked_4 > 2, "asked {asked_4} times: {:?}", down.resends);
    assert!(
        stderr.contains(
            "9 received first time, 0 recovered by resend, 0 unrecoverable, 1 still missing"
        ),
        "{stderr}"
    );
    // Never acknowledged past the hole: the node keeps seq 4 for the next gateway run.
    assert!(down.acks.iter().all(|(a, _)| a.seq < 4), "{:?}", down.acks);
}

#[test]
fn the_gateway_reconnects_after_the_node_drops_the_link_mid_frame() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(&d, &["--tcp", &addr, "-o", "node.mlog", "--idle", "1s"]);
    let mut node = Node::accept(&l, 6, &cap);
    node.header_at(0);
    node.readings(0..6, &[]);
    let torn = {
        let w = node.wire(6);
        node.bytes(&Frame::Reading(w))
    };
    node.stream.write_all(&torn[..4]).unwrap();
    drop(node); // the link drops; the node keeps its session and log

    let mut node = Node::accept(&l, 6, &cap);
    node.header_at(6);
    node.readings(6..12, &[]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(down.resends.is_empty(), "{:?}", down.resends);
    assert_measured(&d, "node.mlog", 6, 0..12);
    assert!(
        stderr.contains("link: 2 connections, 1 dropped"),
        "{stderr}"
    );
    // The torn frame's 4 bytes and the delimiter the gateway ended it with.
    assert!(stderr.contains("bad bytes on the link: 5"), "{stderr}");
}

#[test]
fn idle_stops_even_without_a_node_and_duration_stops_a_chatty_one() {
    let d = Dir::new();
    // Nothing listens on this port once the listener is gone.
    let (l, addr) = listener();
    drop(l);
    let (code, stderr) = finish(spawn(
        &d,
        &["--tcp", &addr, "-o", "a.mlog", "--idle", "300ms"],
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("the link was idle"), "{stderr}");
    assert!(stderr.contains("link: 0 connections"), "{stderr}");
    assert!(
        stderr.contains("last link error: cannot connect: "),
        "{stderr}"
    );
    assert!(
        common::exists(&d.path("a.mlog")),
        "the capture exists, empty"
    );

    let (l, addr) = listener();
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "b.mlog",
            "--idle",
            "10s",
            "--duration",
            "700ms",
        ],
    );
    let mut node = Node::accept(&l, 1, &d.path("b.mlog"));
    node.header_at(0);
    // A heartbeat every 50 ms keeps the link from going idle, until the gateway leaves.
    let mut beats = 0;
    while node
        .stream
        .write_all(
            &Frame::Heartbeat(Heartbeat { session: 1, seq: 0 })
                .to_buf()
                .unwrap(),
        )
        .is_ok()
    {
        beats += 1;
        assert!(beats < 2_000, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("the duration ran out"), "{stderr}");
}

#[test]
fn sigint_stops_with_130_and_everything_received_in_the_capture() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(&d, &["--tcp", &addr, "-o", "node.mlog"]);
    let mut node = Node::accept(&l, 2, &cap);
    node.header_at(0);
    node.readings(0..30, &[]);
    // Once the gateway acknowledged everything, it is interrupted.
    let mut dec: Decoder = Decoder::new();
    let mut buf = [0u8; 256];
    let asked = Instant::now();
    'wait: loop {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "no ack for seq 29"
        );
        let n = node.stream.read(&mut buf).unwrap();
        for ev in dec.feed(&buf[..n]) {
            if let DecodeEvent::Frame {
                frame: Frame::Ack(a),
                ..
            } = ev
            {
                if a.seq == 29 {
                    break 'wait;
                }
            }
        }
    }
    // One more reading, not yet acknowledged, arrives just before the signal.
    node.readings(30..31, &[]);
    while capture_seqs(&cap).len() < 31 {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "seq 30 never reached the capture"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(gw.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 130, "{stderr}");
    // It stopped by itself, synced, and summed up.
    assert!(stderr.contains("(was 0 bytes), interrupted"), "{stderr}");
    assert!(stderr.contains("31 received first time"), "{stderr}");
    assert_measured(&d, "node.mlog", 2, 0..31);
}

#[test]
fn garbage_on_the_link_is_counted_and_the_frames_around_it_are_kept() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(&d, &["--tcp", &addr, "-o", "node.mlog", "--idle", "1s"]);
    let mut node = Node::accept(&l, 8, &cap);
    node.header_at(0);
    node.readings(0..5, &[]);
    let mut garbage = vec![0xFFu8; 300]; // longer than any frame
    garbage.extend([0, 0, 0x03, 0x01, 0x02, 0, 0x11, 0x22, 0x33, 0]);
    node.stream.write_all(&garbage).unwrap();
    node.readings(5..10, &[]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(down.resends.is_empty(), "{:?}", down.resends);
    assert!(
        stderr.contains(&format!("bad bytes on the link: {}", garbage.len())),
        "{stderr}"
    );
    assert_measured(&d, "node.mlog", 8, 0..10);
}

#[test]
fn with_no_downlink_nothing_is_written_to_the_node_and_gaps_stay_missing() {
    let d = Dir::new();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--idle",
            "1s",
            "--no-downlink",
        ],
    );
    let mut node = Node::accept(&l, 9, &cap);
    node.header_at(0);
    node.readings(0..10, &[4]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(down.resends.is_empty() && down.acks.is_empty(), "{down:?}");
    assert!(
        stderr.contains(
            "9 received first time, 0 recovered by resend, 0 unrecoverable, 1 still missing"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing: sensor 7 session 9 seqs 4..=4"),
        "{stderr}"
    );
}

#[test]
fn a_bad_link_argument_is_a_usage_error_before_anything_is_created() {
    let d = Dir::new();
    let e = d.mend(&["listen", "-o", "x.mlog"]).expect(2).stderr();
    assert!(e.contains("--tcp") && e.contains("--serial"), "{e}");
    let e = d
        .mend(&["listen", "--tcp", "localhost", "-o", "x.mlog"])
        .expect(2)
        .stderr();
    assert!(e.contains("--tcp \"localhost\": expected HOST:PORT"), "{e}");
    let e = d
        .mend(&[
            "listen",
            "--tcp",
            "127.0.0.1:1",
            "-o",
            "x.mlog",
            "--idle",
            "soon",
        ])
        .expect(2)
        .stderr();
    assert!(e.contains("--idle"), "{e}");
    assert!(!common::exists(&d.path("x.mlog")));
    // A capture of another format is not appended to: before, its frames went after the
    // JSONL lines, and a replay read the whole file as one damaged frame.
    let lines = "{\"timestamp\": 1767225600, \"temperature\": 52.5}\n";
    for (name, text, says) in [
        ("old.jsonl", lines, "is JSONL, not a frame capture"),
        (
            "rows.csv",
            "sensor,session,seq,time\n1,1,0,0\n",
            "is not a mend capture",
        ),
    ] {
        d.write(name, text.as_bytes());
        let e = d
            .mend(&["listen", "--tcp", "127.0.0.1:1", "-o", name, "--idle", "1s"])
            .expect(2)
            .stderr();
        assert!(e.contains(says), "{e}");
        assert_eq!(d.read_text(name), text, "left as it was");
    }
}

#[cfg(unix)]
#[test]
fn on_a_terminal_a_status_line_is_drawn_and_cleared() {
    let d = Dir::new();
    let (l, addr) = listener();
    drop(l);
    // `script` gives the gateway a terminal and copies what it draws.
    let cmd = format!(
        "{} listen --tcp {addr} -o a.mlog --idle 300ms",
        env!("CARGO_BIN_EXE_mend")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(d.path(""))
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs the terminal test");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.starts_with(&format!(
            "\r\x1b[2Ktcp {addr}: link connecting; received 0, recovered 0, missing 0, bad bytes 0"
        )),
        "{tty:?}"
    );
    assert!(
        tty.contains("\r\x1b[2Kmend listen: 0 of 0 link bytes"),
        "{tty:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_serial_port_works_like_tcp() {
    use serialport::SerialPort;
    let d = Dir::new();
    let cap = d.path("node.mlog");
    let (master, slave) = serialport::TTYPort::pair().unwrap();
    let name = slave.name().unwrap();
    let gw = spawn(
        &d,
        &[
            "--serial",
            &name,
            "--baud",
            "115200",
            "-o",
            "node.mlog",
            "--idle",
            "1s",
        ],
    );
    // The test's end of the slave keeps the pty in raw mode until the gateway has it open;
    // then it is closed, so that the gateway's exit ends the node's reads.
    let opened = Instant::now();
    let fds = format!("/proc/{}/fd", gw.id());
    while !std::fs::read_dir(&fds)
        .unwrap()
        .any(|e| std::fs::read_link(e.unwrap().path()).is_ok_and(|p| p == Path::new(&name)))
    {
        assert!(
            opened.elapsed() < Duration::from_secs(60),
            "the gateway never opened {name}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(slave);
    let mut node = Node::on(Box::new(master), 3, &cap);
    node.header_at(0);
    node.readings(0..12, &[7]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    let asked: BTreeSet<u32> = down.resends.iter().flat_map(|r| r.from..=r.to).collect();
    assert_eq!(asked, BTreeSet::from([7]), "{down:?} {stderr}");
    assert_eq!(
        down.acks.last().unwrap().0,
        Ack {
            session: 3,
            seq: 11
        }
    );
    assert_measured(&d, "node.mlog", 3, 0..12);
}

/// Whether the gateway acknowledged up to `seq`.
fn acked(down: &Downlink, seq: u32) -> bool {
    down.acks.iter().any(|(a, _)| a.seq >= seq)
}

/// `mend work` until the sensor is settled, then `mend export`: byte for byte what
/// `mend replay` writes for the capture; returns the worker's report.
#[track_caller]
fn assert_export_equals_replay(d: &Dir, url: &str, capture: &str) -> String {
    let worker = d.spawn(&work_args(url, "w", &["--settle", "1s"]));
    let (_, report) = wait(worker, "worker");
    d.mend(&["replay", capture, "-o", "replay.csv", "-q"]).ok();
    let sensor = SENSOR.to_string();
    d.mend(&[
        "export",
        "--redis",
        url,
        "--sensor",
        &sensor,
        "-o",
        "export.csv",
    ])
    .ok();
    let (want, got) = (d.read_text("replay.csv"), d.read_text("export.csv"));
    assert!(want.lines().count() > 1, "the replay has rows");
    assert_export_is_replay(capture, &got, &want);
    report
}

/// Runs a gateway with `--redis` for a node that sends seqs 0..300 of session 3, seven of
/// them lost on the way and recovered by resend; returns its summary.
fn listen_to_redis(d: &Dir, url: &str) -> String {
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(
        d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--idle",
            "1s",
            "--retry-after",
            "5s",
            "--redis",
            url,
        ],
    );
    let mut node = Node::accept(&l, 3, &cap);
    node.header_at(0);
    node.readings(0..300, &[5, 6, 12, 100, 101, 102, 250]);
    node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("293 received first time, 7 recovered by resend, 0 unrecoverable"),
        "{stderr}"
    );
    assert_measured(d, "node.mlog", 3, 0..300);
    stderr
}

#[test]
fn with_redis_the_frames_on_disk_are_published_and_export_equals_replay_of_the_capture() {
    let d = Dir::new();
    let redis = Redis::start(d.path("redis"));
    let url = redis.url();
    let stderr = listen_to_redis(&d, &url);
    // 293 readings and the 7 the node sent again, all published.
    assert!(
        stderr.contains(&format!("redis {url}: 300 frames published in "))
            && stderr.contains(" entries, 0 capture bytes pending; ")
            && stderr.contains(" connections, redis up"),
        "{stderr}"
    );
    assert_export_equals_replay(&d, &url, "node.mlog");
}

#[test]
fn the_capture_listen_published_published_again_with_mend_publish_changes_nothing() {
    let d = Dir::new();
    let redis = Redis::start(d.path("redis"));
    let url = redis.url();
    listen_to_redis(&d, &url);
    // Before any repair: every reading is in the raw stream twice.
    let live = xlen(&url, "mend:{7}:raw");
    d.mend(&["publish", "--redis", &url, "node.mlog"]).ok();
    assert!(xlen(&url, "mend:{7}:raw") > live, "published twice");
    assert_export_equals_replay(&d, &url, "node.mlog");
    // And once more after the repair settled the sensor: no new row.
    d.mend(&["publish", "--redis", &url, "--end", "node.mlog"])
        .ok();
    let report = assert_export_equals_replay(&d, &url, "node.mlog");
    assert!(report.contains(" 0 rows,"), "{report}");
}

#[test]
fn redis_stopped_mid_run_and_restarted_loses_nothing() {
    let d = Dir::new();
    let mut redis = Redis::start(d.path("redis"));
    let url = redis.url();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--idle",
            "2s",
            "--retry-after",
            "5s",
            "--redis",
            &url,
        ],
    );
    let mut node = Node::accept(&l, 4, &cap);
    let mut down = Downlink::default();
    node.header_at(0);
    node.readings(0..100, &[10]);
    assert!(node.serve_until(&mut down, |d| acked(d, 99)));
    let asked = Instant::now();
    while xlen(&url, "mend:{7}:raw") == 0 {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "nothing was published"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    redis.crash();
    // With Redis gone, the gateway captures, asks for what is missing and acknowledges.
    node.readings(100..200, &[150, 151]);
    assert!(node.serve_until(&mut down, |d| acked(d, 199)));
    redis.launch();
    node.readings(200..250, &[220]);
    node.serve_until(&mut down, |_| false);
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("246 received first time, 4 recovered by resend"),
        "{stderr}"
    );
    assert_measured(&d, "node.mlog", 4, 0..250);
    assert_export_equals_replay(&d, &url, "node.mlog");
    assert!(
        stderr.contains(&format!("redis {url}: 250 frames published in "))
            && stderr.contains(" entries, 0 capture bytes pending; ")
            && stderr.contains(" connections, redis up"),
        "{stderr}"
    );
    assert!(stderr.contains("last redis error: "), "{stderr}");
}

#[test]
fn a_gateway_restarted_with_redis_publishes_a_session_the_capture_began() {
    let d = Dir::new();
    let redis = Redis::start(d.path("redis"));
    let url = redis.url();
    let cap = d.path("node.mlog");
    let run = |first: bool| {
        let (l, addr) = listener();
        let args = ["--tcp", &addr, "-o", "node.mlog", "--idle", "1s"];
        let gw = spawn(&d, &[&args[..], &["--redis", &url]].concat());
        let mut node = Node::accept(&l, 5, &cap);
        if first {
            node.header_at(0);
            node.readings(0..100, &[]);
        } else {
            // The node kept its session across the gateway's restart: no header, the
            // readings are placed by the one the capture already holds.
            node.enc
                .to_buf(&Frame::Header(node.header.with_base(100)))
                .unwrap();
            node.readings(100..200, &[150]);
        }
        node.serve();
        let (code, stderr) = finish(gw);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains(" 100 frames published in ")
                && stderr.contains(" entries, 0 capture bytes pending"),
            "{stderr}"
        );
    };
    run(true);
    run(false);
    assert_measured(&d, "node.mlog", 5, 0..200);
    assert_export_equals_replay(&d, &url, "node.mlog");
}

#[test]
fn with_redis_unreachable_the_gateway_captures_and_acks_and_says_what_is_pending() {
    let d = Dir::new();
    let (l, addr) = listener();
    // Nothing listens on this port until the end.
    let mut redis = Redis::stopped(common::free_port(), d.path("redis"));
    let url = redis.url();
    let cap = d.path("node.mlog");
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--idle",
            "1s",
            "--redis",
            &url,
        ],
    );
    let mut node = Node::accept(&l, 6, &cap);
    node.header_at(0);
    node.readings(0..50, &[7]);
    let down = node.serve();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        down.acks.last().unwrap().0,
        Ack {
            session: 6,
            seq: 49
        }
    );
    let size = std::fs::metadata(&cap).unwrap().len();
    assert!(
        stderr.contains(&format!(
            "redis {url}: 0 frames published in 0 entries, {size} capture bytes pending; 0 connections, redis down"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("not published: node.mlog from offset 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("last redis error: cannot connect"),
        "{stderr}"
    );
    // The catch-up the summary names.
    redis.launch();
    d.mend(&["publish", "--redis", &url, "node.mlog"]).ok();
    assert_export_equals_replay(&d, &url, "node.mlog");
}

/// The frames after the headers in a sensor's raw entries.
fn raw_frames(url: &str) -> usize {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg("mend:{7}:raw")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    entries
        .iter()
        .map(|(_, f)| f[1].iter().filter(|b| **b == 0).count() - 1)
        .sum()
}

#[test]
fn with_the_link_down_the_gateway_catches_up_when_redis_returns() {
    let d = Dir::new();
    let mut redis = Redis::start(d.path("redis"));
    let url = redis.url();
    redis.crash();
    let (l, addr) = listener();
    let cap = d.path("node.mlog");
    // No --idle: the link is idle while the gateway catches up (--duration ends a gateway
    // the test left behind).
    let gw = spawn(
        &d,
        &[
            "--tcp",
            &addr,
            "-o",
            "node.mlog",
            "--redis",
            &url,
            "--duration",
            "5m",
        ],
    );
    let mut node = Node::accept(&l, 2, &cap);
    let mut down = Downlink::default();
    node.header_at(0);
    node.readings(0..100, &[]);
    assert!(node.serve_until(&mut down, |d| acked(d, 99)));
    // The node goes away for good; then Redis comes back.
    drop((node, l));
    redis.launch();
    let asked = Instant::now();
    while raw_frames(&url) < 100 {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "the gateway did not catch up while its link was down"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(gw.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let (code, stderr) = finish(gw);
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains(&format!("redis {url}: 100 frames published in ")),
        "{stderr}"
    );
    assert_export_equals_replay(&d, &url, "node.mlog");
}

#[test]
fn a_bad_redis_url_is_a_usage_error_before_anything_is_created() {
    let d = Dir::new();
    let e = d
        .mend(&[
            "listen",
            "--tcp",
            "127.0.0.1:1",
            "-o",
            "x.mlog",
            "--redis",
            "http://127.0.0.1:6379",
        ])
        .expect(2)
        .stderr();
    assert!(
        e.contains("--redis") && e.contains("not a usable Redis URL"),
        "{e}"
    );
    assert!(!common::exists(&d.path("x.mlog")));
}
