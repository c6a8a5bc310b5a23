//! # mend-firmware
//!
//! mend's sensor node on a TI LM3S6965 (Cortex-M3), as QEMU's `lm3s6965evb` runs it: a
//! TMP105 on I2C0 is sampled on a SysTick schedule, every sample goes through the core's edge
//! pipeline (validate, reorder, dedup, ring buffer), and the resulting frames leave on UART0.
//! A header frame starts the session, stats frames with the edge's counters follow
//! periodically, and a final stats frame closes it.
//!
//! The node's own report (settings at boot; counters, static RAM and the stack's high-water
//! mark at exit) never goes to UART0: UART0 is the link, and nothing else is written to it.
//! In a QEMU build (feature `qemu`) the report goes to the semihosting console and the run
//! ends with a semihosting exit; on hardware it goes through `defmt` to a debug probe, if
//! one is attached, and a semihosting call is never made (without a debugger it would lock
//! the node up).
//!
//! Run it with `cargo qemu` in this directory (`cargo run --release --features qemu`).
//! Build-time settings are described in [`config`]; the cargo features `fault` and
//! `sim-source` damage the link and replace the sensor by the core's simulator.
//!
//! In a QEMU build, when the semihosting command line has the word `lockstep`, the node stops
//! its clock before each sample, prints `sample N` and waits for one byte on the semihosting
//! console. The end-to-end tests use this to set sample N's temperature over QMP before it is
//! taken.
#![no_std]
#![no_main]
#![deny(missing_docs)]

mod board;
mod config;
#[cfg(feature = "store")]
mod downlink;
#[cfg(feature = "store")]
mod flash;
#[cfg(feature = "qemu")]
mod host;
mod link;
#[cfg(feature = "store")]
mod node;
#[cfg(not(feature = "qemu"))]
mod probe;
#[cfg(feature = "store")]
mod reset;
mod source;
mod stack;
#[cfg(feature = "store")]
mod store;
mod tick;
#[cfg(feature = "store")]
mod watchdog;

#[cfg(all(feature = "store", feature = "fault"))]
compile_error!("the store node sends on a clean link: `store` and `fault` do not combine");

use cortex_m_rt::{entry, exception, ExceptionFrame};
// The interrupt vector table (device.x); the crate has no register PAC.
use lm3s6965 as _;
#[cfg(not(feature = "store"))]
use mend_core::Counters;
use mend_core::{EdgeConfig, EdgePipeline};
// The report's backend: the semihosting console under QEMU, defmt on hardware.
#[cfg(not(feature = "qemu"))]
use probe as host;

/// Readings the reorder buffer holds: a lateness of two periods keeps at most three.
const REORDER: usize = 6;
/// Frames the ring holds between two UART drains. A sample queues at most a reading, a stats
/// frame and a header (and a header before a reading 64 or more seqs past the one before,
/// which only comes after 63 failed samples, while the ring drained); the final flush queues
/// the held readings as well.
const RING: usize = REORDER + 3;

/// The node's edge pipeline.
type Edge = EdgePipeline<REORDER, RING>;

/// The edge's settings: the node's identity and period, default validation (band 50–55 °C),
/// stats every [`config::STATS_EVERY`] samples.
#[cfg(not(feature = "store"))]
const EDGE: EdgeConfig = {
    let mut c = EdgeConfig::new(config::SENSOR, config::SESSION, config::PERIOD_MS);
    c.stats_every = config::STATS_EVERY;
    c
};

#[entry]
fn main() -> ! {
    let Some(cp) = cortex_m::Peripherals::take() else {
        fail("core peripherals already taken")
    };
    let Some(board) = board::Board::take() else {
        fail("board peripherals already taken")
    };
    #[cfg(not(feature = "sim-source"))]
    let source = source::Source::new(board.i2c0);
    #[cfg(feature = "sim-source")]
    let source = source::Source::new();
    #[cfg(feature = "store")]
    node::run(cp, board.uart0, source);
    #[cfg(not(feature = "store"))]
    stream(cp, board.uart0, source)
}

/// The streaming node: samples, frames on UART0, a semihosting exit after the last sample.
#[cfg(not(feature = "store"))]
fn stream(cp: cortex_m::Peripherals, uart0: board::uart::Uart0, mut source: source::Source) -> ! {
    let mut link = link::Link::new(uart0);
    let edge = edge_with(EDGE);
    #[cfg(feature = "qemu")]
    let lockstep = host::cmdline_has("lockstep");
    #[cfg(not(feature = "qemu"))]
    let lockstep = false;
    report_settings(lockstep);

    // The session header leaves before the first sample is taken.
    edge.start();
    drain(edge, &mut link);

    let mut clock = tick::start(cp.SYST);
    let mut seq: u32 = 0;
    let mut due_ms: u64 = 0;
    loop {
        clock.sleep_until(due_ms);
        due_ms += u64::from(config::PERIOD_MS);
        #[cfg(feature = "qemu")]
        if lockstep {
            clock.pause();
            host::print_value("sample ", seq);
            host::wait_for_host();
            clock.resume();
        }
        match source.sample(seq, clock.now_ms()) {
            Ok(reading) => {
                push_reading(edge, reading);
            }
            Err(kind) => edge.sensor_fault(seq, kind),
        }
        drain(edge, &mut link);
        seq = seq.wrapping_add(1);
        if config::SAMPLES != 0 && seq >= config::SAMPLES {
            break;
        }
    }

    edge.flush();
    drain(edge, &mut link);
    link.flush();
    report_end(seq, edge, &link);
    host::exit_success()
}

/// The node's edge pipeline, in static RAM rather than on `main`'s stack, which never
/// unwinds: built here, in a frame that is given back, it is never on the stack twice.
#[inline(never)]
fn edge_with(config: EdgeConfig) -> &'static mut Edge {
    let Ok(edge) = Edge::try_new(config) else {
        fail("invalid validation limits")
    };
    match cortex_m::singleton!(: Edge = edge) {
        Some(edge) => edge,
        None => fail("edge pipeline already built"),
    }
}

/// Sends every queued frame, straight from the edge's ring.
#[cfg(not(feature = "store"))]
fn drain(edge: &mut Edge, link: &mut link::Link) {
    while edge.poll_frame_with(|frame| link.send(frame)).is_some() {}
}

/// Takes one reading into the edge. Never inlined, so that the firmware benchmark
/// (`cargo bench -p mend-tests --bench firmware`) can find the edge pipeline's `push` by this
/// function's address and count its instructions.
#[cfg(not(feature = "store"))]
#[inline(never)]
fn push_reading(edge: &mut Edge, reading: mend_core::Reading) {
    edge.push(reading);
}

/// The boot line: what this image is set up to do.
#[cfg(not(feature = "store"))]
fn report_settings(lockstep: bool) {
    host::print("mend-firmware: samples -> edge pipeline -> frames on UART0\n");
    #[cfg(not(feature = "sim-source"))]
    host::print("source: TMP105 on I2C0\n");
    #[cfg(feature = "sim-source")]
    host::print("source: core sensor simulator (sim-source)\n");
    #[cfg(feature = "fault")]
    host::print("link: core link simulator damages frames (fault)\n");
    host::print_value("sensor: ", config::SENSOR);
    host::print_value("session: ", config::SESSION);
    host::print_value("period ms: ", config::PERIOD_MS);
    host::print_value("samples: ", config::SAMPLES);
    #[cfg(any(feature = "fault", feature = "sim-source"))]
    host::print_hex("seed: ", config::SEED);
    if lockstep {
        host::print("lockstep: on\n");
    }
}

/// The exit report: counters, memory, and where the frames went.
#[cfg(not(feature = "store"))]
fn report_end(samples: u32, edge: &Edge, _link: &link::Link) {
    let stats = edge.stats();
    let c: Counters = stats.counters;
    host::print_value("samples taken: ", samples);
    host::print_value("sensor faults: ", stats.sensor_faults);
    host::print_value("edge in: ", c.input);
    host::print_value("edge emitted: ", c.emitted);
    host::print_value("edge late: ", c.late);
    host::print_value("edge duplicate: ", c.duplicate);
    host::print_value("edge rejected: ", c.rejected);
    host::print_value("edge evicted: ", c.evicted);
    host::print_value("edge held: ", edge.held() as u32);
    host::print_value("doubtful: ", stats.doubtful);
    host::print_value("bad: ", stats.bad);
    host::print_value("frames sent: ", stats.frames_sent);
    host::print_value("ring dropped: ", stats.ring_dropped);
    #[cfg(feature = "fault")]
    {
        let l = _link.stats();
        host::print_value("link sent: ", l.sent);
        host::print_value("link delivered: ", l.delivered);
        host::print_value("link dropped: ", l.dropped);
        host::print_value("link duplicated: ", l.duplicated);
        host::print_value("link delayed: ", l.delayed);
        host::print_value("link corrupted: ", l.corrupted);
    }
    host::print("frames: on UART0; `cargo run` saves them in firmware/target/uart0.mend\n");
    host::print("show them: cargo run -p mend -- inspect firmware/target/uart0.mend\n");
    let static_ram = stack::static_ram_bytes();
    let peak = stack::peak_bytes();
    host::print_with_unit("static ram: ", static_ram, " bytes");
    host::print_with_unit("stack peak: ", peak, " bytes");
    host::print_with_unit("ram total: ", static_ram + peak, " bytes");
}

/// Reports an unrecoverable error; QEMU exits with failure, hardware resets.
fn fail(why: &str) -> ! {
    host::print("mend-firmware: ");
    host::print(why);
    host::print("\n");
    host::exit_failure()
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    fail("hard fault")
}

/// A panic fails the run: QEMU exits with status 1, hardware resets. The message is not
/// formatted, which keeps `core::fmt` out of the image.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    fail("panicked")
}
