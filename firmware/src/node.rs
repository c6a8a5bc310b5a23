//! The store-and-forward node (feature `store`): the sampling loop of the streaming node, plus
//! a session numbered by a boot counter in flash, a flash log of every reading and fault frame
//! until the gateway acknowledges it, and a downlink that acknowledges and asks for resends.
//!
//! At power-up, in this order: the reset cause is read; the boot counter gives the session
//! (persisted before anything is sent, see [`store`](crate::store)); the session's header
//! goes out; then every record still in the log from earlier sessions goes out again as
//! replayed readings (or faults) under a header of its own session; then the header of this
//! session again, so that the gateway places this session's readings after the replay.
//!
//! Then the node samples on its schedule, appending each reading and fault frame to the log
//! before it is sent. Between samples it sleeps, and wakes for bytes from the gateway:
//! - `Ack { session, seq }` removes that session's records up to `seq` from the log;
//! - `Resend { session, from, to }` sends that session's records in the range again, marked
//!   as replayed, under that session's header.
//!
//! While the log holds records of an earlier session, the node sends the newest of each such
//! session again every few seconds, as a replayed frame under that session's header: a
//! session that ended sends no heartbeat, so when its last frames were lost and so was their
//! replay at power-up, this is how the gateway learns they exist (and asks for them).
//!
//! A period in which nothing else was sent ends with a heartbeat. After `MEND_SAMPLES`
//! samples the node stops sampling (flushing its edge and sending the final stats) but keeps
//! answering the gateway and sending heartbeats: it has frames the gateway may still ask for.
//! It never exits; QEMU is stopped from outside, which is also how a test cuts its power.
//! The one exception is a scheduled run (`lockstep` on the semihosting command line, as
//! `mend-node` boots it): before each sample the node waits for the host to set the sensor, and
//! once sampling is done and the gateway has acknowledged the whole log, it exits.
//!
//! Built with the feature `flash-selftest`, the node instead checks on a scratch file (`mend-selftest.flash`) that its flash refuses what NOR flash cannot do
//! ([`flash::self_test`](crate::flash::self_test)), prints the outcome and exits.

use mend_core::{
    ClockKind, DecodeEvent, Decoder, EdgeConfig, Encoder, Fault, Frame, Header, ResetReason,
    MAX_FRAME,
};

use crate::board::uart::Uart0;
use crate::downlink::{self, Command, Downlink};
use crate::flash::{FileFlash, PAGE, WORD};
use crate::store::{self, Kept, Record, Store};
use crate::{config, fail, host, link::Link, source::Source, stack, tick, watchdog, Edge};

/// The flash file, in QEMU's working directory (semihosting resolves relative names there).
const FLASH_FILE: &[u8] = b"mend-node.flash\0";

/// The flash device: the boot counter's pages, then the log's.
const GEOMETRY: mend_core::NorGeometry = match mend_core::NorGeometry::try_new(
    (store::BOOT_PAGES + config::LOG_PAGES) * PAGE,
    1,
    WORD,
    PAGE,
) {
    Ok(g) => g,
    Err(_) => panic!("the flash geometry is invalid"),
};

/// What the node keeps between frames.
struct Node {
    store: Store,
    session: u32,
    reset: ResetReason,
    /// Reads back the edge's own frames as they are sent, which places each reading at its
    /// whole seq (a version-2 reading frame carries 7 bits of it).
    uplink: Decoder,
    /// Something went out since the last period boundary.
    sent: bool,
}

impl Node {
    /// Sends every queued frame of the edge, each appended to the log first if it is a
    /// reading or a fault.
    fn drain(&mut self, edge: &mut Edge, link: &mut Link) {
        loop {
            let sent = edge.poll_frame_with(|frame| {
                for &b in frame {
                    if let Some(DecodeEvent::Frame { frame: f, .. }) = self.uplink.push(b) {
                        self.keep(&f);
                    }
                }
                link.send(frame);
            });
            if sent.is_none() {
                return;
            }
            self.sent = true;
        }
    }

    /// Appends a reading or fault frame to the log; other frames are not kept.
    fn keep(&mut self, frame: &Frame) {
        let record = match frame {
            Frame::Reading(w) => Record::reading(self.session, self.reset, w),
            Frame::Fault(f) => Record {
                session: self.session,
                reset: self.reset,
                seq: f.seq,
                kept: Kept::Fault(f.kind),
            },
            _ => return,
        };
        if self.store.append(&record).is_err() {
            fail("flash log: append failed");
        }
    }

    /// Sends the records `pick` chooses again, oldest first (see [`Resender`]). Returns how
    /// many were sent.
    fn replay(&mut self, link: &mut Link, pick: impl Fn(&Record) -> bool) -> u32 {
        let mut out = Resender::new(link);
        let result = self.store.scan(|r| {
            if pick(r) {
                out.send(r);
            }
            false
        });
        if result.is_err() {
            fail("flash log: read failed");
        }
        self.sent |= out.count > 0;
        out.count
    }

    /// Sends the newest record of every earlier session still in the log again. A session
    /// that ended sends no heartbeat, so when its last frames and their replay at power-up
    /// were both lost, the gateway has nothing that says they exist: this tells it, and it
    /// asks for the rest. Returns how many were sent.
    fn offer_earlier_tails(&mut self, link: &mut Link) -> u32 {
        let session = self.session;
        let mut out = Resender::new(link);
        let mut last: Option<Record> = None;
        // A session's records lie together in the log, in the order they were taken.
        let result = self.store.scan(|r| {
            if let Some(l) = last.filter(|l| l.session != r.session && l.session != session) {
                out.send(&l);
            }
            last = Some(*r);
            false
        });
        if result.is_err() {
            fail("flash log: read failed");
        }
        if let Some(l) = last.filter(|l| l.session != session) {
            out.send(&l);
        }
        self.sent |= out.count > 0;
        out.count
    }

    /// Records in the log that the gateway has not acknowledged yet (0 once it holds
    /// everything); `None` when the log cannot be read.
    fn kept(&mut self) -> Option<u32> {
        let mut kept: u32 = 0;
        let counted = self.store.scan(|_| {
            kept = kept.saturating_add(1);
            false
        });
        counted.is_ok().then_some(kept)
    }

    /// Carries out a command of the gateway.
    fn command(&mut self, command: Command, edge: &mut Edge, link: &mut Link) {
        match command {
            Command::Ack(a) => {
                let erased = self
                    .store
                    .scan(|r| r.session == a.session && r.seq <= a.seq);
                if erased.is_err() {
                    fail("flash log: erase failed");
                }
            }
            Command::Resend(rs) => {
                let n = self.replay(link, |r| {
                    r.session == rs.session && rs.from <= r.seq && r.seq <= rs.to
                });
                if n > 0 {
                    // The gateway's decoder now places readings after the replay: tell it
                    // where this session's next reading goes.
                    edge.announce();
                    self.drain(edge, link);
                }
            }
        }
    }
}

/// Sends kept records again, oldest first: readings as replayed readings, faults as faults,
/// each session's under a header of that session (with its reset reason) placed at the
/// record's seq.
struct Resender<'a> {
    link: &'a mut Link,
    enc: Encoder,
    /// The session of the last header sent.
    under: Option<u32>,
    /// Records sent.
    count: u32,
}

impl<'a> Resender<'a> {
    fn new(link: &'a mut Link) -> Self {
        Self {
            link,
            enc: Encoder::new(),
            under: None,
            count: 0,
        }
    }

    fn send(&mut self, r: &Record) {
        let header = Header::new(
            config::SENSOR,
            r.session,
            config::PERIOD_MS,
            ClockKind::Boot,
            0,
        )
        .with_reset(r.reset);
        let placed = match r.wire() {
            Some(w) => self.enc.places(w.seq),
            None => true,
        };
        if self.under != Some(r.session) || !placed {
            self.frame(&Frame::Header(header.with_base(r.seq)));
            self.under = Some(r.session);
        }
        match (r.wire(), r.kept) {
            (Some(w), _) => self.frame(&Frame::Replayed(w)),
            (None, Kept::Fault(kind)) => self.frame(&Frame::Fault(Fault { seq: r.seq, kind })),
            (None, Kept::Reading { .. }) => {}
        }
        self.count += 1;
    }

    fn frame(&mut self, frame: &Frame) {
        let mut slot = [0u8; MAX_FRAME];
        if let Ok(n) = self.enc.encode_into(frame, &mut slot) {
            if let Some(bytes) = slot.get(..n) {
                self.link.send(bytes);
            }
        }
    }
}

/// How often, while the log holds records of an earlier session, the node offers the newest
/// of them again ([`Node::offer_earlier_tails`]), in ms of its clock.
const OFFER_EVERY_MS: u64 = 5_000;

/// Runs the store node; never returns.
#[cfg_attr(
    feature = "flash-selftest",
    allow(unreachable_code, unused_mut, unused_variables)
)]
pub fn run(cp: cortex_m::Peripherals, mut uart: Uart0, mut source: Source) -> ! {
    let (reset, resc) = crate::reset::take();
    // The self-test image checks the flash rules and stops.
    #[cfg(feature = "flash-selftest")]
    {
        match crate::flash::self_test(b"mend-selftest.flash\0") {
            Ok(()) => {
                host::print("flash self-test: ok\n");
                host::exit_success()
            }
            Err(step) => {
                host::print("flash self-test failed\n");
                fail(step)
            }
        }
    }
    let flash = match FileFlash::open(FLASH_FILE, GEOMETRY) {
        Ok(f) => f,
        Err(_) => fail("flash file: cannot open or create it"),
    };
    let (flash, session) = store::boot(flash);
    let Ok(session) = session else {
        fail("boot counter: flash failed")
    };
    let store = match Store::new(flash, config::LOG_PAGES) {
        Ok(s) => s,
        Err(_) => fail("flash log: bad layout"),
    };
    let lockstep = host::cmdline_has("lockstep");
    report_settings(session, resc);

    let mut downlink = Downlink::start(&mut uart);
    let mut link = Link::new(uart);
    let edge = crate::edge_with(edge_config(session, reset));
    let mut node = Node {
        store,
        session,
        reset,
        uplink: Decoder::new(),
        sent: false,
    };

    // The session header first, then what earlier sessions left unacknowledged.
    edge.start();
    node.drain(edge, &mut link);
    if node.replay(&mut link, |r| r.session != session) > 0 {
        edge.announce();
        node.drain(edge, &mut link);
    }

    // A scheduled run stops the node's clock while the host sets the sensor, for as long as
    // the host takes: a watchdog would take that for a hang.
    let mut dog = (!lockstep).then(watchdog::Watchdog::start);
    let mut clock = tick::start(cp.SYST);
    let mut seq: u32 = 0;
    let mut due_ms: u64 = 0;
    let mut sampling = true;
    let mut offer_ms = OFFER_EVERY_MS;
    loop {
        let due = clock.sleep_until_or(due_ms, downlink::pending);
        if let Some(dog) = dog.as_mut() {
            dog.feed();
        }
        let mut commanded = false;
        while let Some(command) = downlink.next() {
            node.command(command, edge, &mut link);
            report(&mut node, &downlink, &link);
            commanded = true;
        }
        if lockstep && !sampling && commanded && node.kept() == Some(0) {
            // A scheduled run (`mend-node`) ends once the gateway holds everything.
            host::print("log drained\n");
            host::exit_success();
        }
        if !due {
            continue;
        }
        due_ms += u64::from(config::PERIOD_MS);
        if clock.now_ms() >= offer_ms {
            offer_ms = clock.now_ms() + OFFER_EVERY_MS;
            if node.offer_earlier_tails(&mut link) > 0 {
                edge.announce();
                node.drain(edge, &mut link);
            }
        }
        if !node.sent && seq > 0 {
            edge.heartbeat(seq);
        }
        node.sent = false;
        let mut finished = false;
        if sampling {
            if lockstep {
                clock.pause();
                host::print_value("sample ", seq);
                host::wait_for_host();
                clock.resume();
            }
            edge.set_log_dropped(node.store.dropped());
            match source.sample(seq, clock.now_ms()) {
                Ok(reading) => {
                    // The source stamps the build's session; this power-up's is the counter's.
                    edge.push(mend_core::Reading { session, ..reading });
                }
                Err(kind) => edge.sensor_fault(seq, kind),
            }
            seq = seq.wrapping_add(1);
            if config::SAMPLES != 0 && seq >= config::SAMPLES {
                edge.flush();
                sampling = false;
                finished = true;
            }
        }
        node.drain(edge, &mut link);
        if finished && node.store.dropped() != edge.stats().log_dropped {
            // The last readings' appends gave more frames up after the closing stats frame
            // was made: close again, with the count that holds.
            edge.set_log_dropped(node.store.dropped());
            edge.flush();
            node.drain(edge, &mut link);
        }
        if finished {
            host::print("sampling done\n");
            report(&mut node, &downlink, &link);
        }
    }
}

/// The edge's settings: the streaming node's, with this power-up's session and reset reason.
fn edge_config(session: u32, reset: ResetReason) -> EdgeConfig {
    let mut c = EdgeConfig::new(config::SENSOR, session, config::PERIOD_MS);
    c.header = c.header.with_reset(reset);
    c.stats_every = config::STATS_EVERY;
    c
}

/// The boot lines of the store node.
fn report_settings(session: u32, resc: u32) {
    host::print("mend-firmware: store and forward, frames on UART0, log in flash\n");
    host::print_value("sensor: ", config::SENSOR);
    host::print_value("session: ", session);
    host::print_value("reset cause: ", resc);
    host::print_value("period ms: ", config::PERIOD_MS);
    host::print_value("samples: ", config::SAMPLES);
    host::print_value("log pages: ", config::LOG_PAGES);
    #[cfg(feature = "sim-source")]
    {
        host::print("source: core sensor simulator (sim-source)\n");
        host::print_hex("seed: ", config::SEED);
    }
}

/// The running figures: what was lost where, and memory.
fn report(node: &mut Node, downlink: &Downlink, link: &Link) {
    let (skipped, ignored, overflow) = downlink.losses();
    host::print_value("log dropped: ", node.store.dropped());
    if let Some(kept) = node.kept() {
        host::print_value("log kept: ", kept);
    }
    host::print_value("tx dropped: ", link.tx_dropped());
    host::print_value("downlink skipped: ", skipped);
    host::print_value("downlink ignored: ", ignored);
    host::print_value("downlink overflow: ", overflow);
    let static_ram = stack::static_ram_bytes();
    let peak = stack::peak_bytes();
    host::print_with_unit("static ram: ", static_ram, " bytes");
    host::print_with_unit("stack peak: ", peak, " bytes");
    host::print_with_unit("ram total: ", static_ram + peak, " bytes");
}
