//! # mend
//!
//! The host side of mend: replay, repair, export and chart captured temperature-sensor logs.
//!
//! A capture (a mend frame log from a node's UART, or the prototype's JSONL log) is read
//! with bounded memory, merged by time with other captures of the same sensors, reordered,
//! deduplicated by identity, validated, and its gaps found and filled by `mend-core` — the
//! same code that runs on the sensor. The result is a series with every reading in time
//! order, each exactly once, every fill marked as synthetic, and every unusable byte or line
//! in a dead-letter file.
//!
//! The library replays a set of sources into a set of sinks. Its face is small:
//! - [`ReadPlan`]: which sources ([`input::InputSource`]: files, standard input, bytes) and
//!   the settings ([`ReplayConfig`], with the engine's [`EngineConfig`]);
//! - [`replay_to_files`]: every pass of a plan into [`ReplayFiles`] (records as CSV, JSONL or
//!   frames, dead letters, aggregates, chart, summary, checkpoint), each output checked
//!   against the inputs and put in place whole, the checkpoint last; it returns the
//!   [`ReplayReport`];
//! - [`replay_bytes`]: a capture held in memory, with its records returned;
//! - [`replay::run`]: one pass into any [`sink::RecordSink`], for callers with sinks of their own.
//!
//! Behind it, one module per part:
//! - [`input`]: sources — opening and format detection, the frame-log and JSONL readers, the
//!   byte books, and the `--from` seek ([`input::seek`]).
//! - [`merge`]: the k-way merge of inputs by time.
//! - [`engine`]: the per-stream pipeline and its report; [`engine::clock`]: clock glitches;
//!   [`engine::spill`]: readings far out of place, put in their place on a second pass.
//! - [`sink`]: where rows go — CSV, JSONL, frame logs, aggregates, dead letters
//!   ([`sink::dlq`]), the chart ([`sink::chart`]).
//! - [`fs`]: outputs that appear whole or not at all, and the background writer.
//! - [`replay`]: the entry points above; [`checkpoint`]: resumable runs.
//! - [`generate`]: simulated captures.
//! - [`text`]: numbers, times and summaries for people; [`chart`]: charts of a series.
//! - [`listen`]: the gateway beside a node (`mend listen`): capture, acknowledge, ask for
//!   what is missing.
//! - [`fleet`]: the same repair on Redis Streams, for many gateways and a group of workers.
//!
//! The `mend` command line is a thin layer over this library, private to the binary: it
//! parses arguments into these types and prints what comes back.
//!
//! ## Output contract
//!
//! Repaired records are CSV with the header `sensor,session,seq,time,celsius,origin,method,
//! quality,flags` (or JSONL objects with the same fields):
//! - `time` is RFC 3339 UTC with milliseconds (`2026-01-01T00:00:05.000Z`);
//! - `celsius` is the exact decimal value of the fixed-point reading (`52.5`, `52.0625`,
//!   `50`, `-0.00390625`): no rounding, no trailing zeros;
//! - `origin` is `measured` or `synthetic`, `method` is empty for measured rows and `linear`,
//!   `locf` or `stochastic` for fills; `quality` is `good`, `doubtful` or `bad`; `flags` are
//!   `;`-separated names of [`mend_core::Flag`];
//! - `seq` is empty for input without one (JSONL);
//! - rows of a stream are in `(time, seq)` order and each identity appears once; a gap
//!   longer than the maximum gap is an outage: no rows, reported in the summary.
//!
//! A reading that arrives later than the lateness window allows is never written out of
//! order: from files, which can be read twice, a second pass puts it in its place (see
//! [`engine::spill`]); from standard input it is dead-lettered as `late`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod chart;
pub mod checkpoint;
pub mod engine;
pub mod fleet;
pub mod fs;
pub mod generate;
pub mod input;
pub mod listen;
pub mod merge;
pub mod replay;
pub mod sink;
pub mod text;

pub use engine::{EngineConfig, StreamReport};
pub use replay::files::{replay_to_files, OutputFormat, ReplayFiles};
pub use replay::plan::ReadPlan;
pub use replay::{replay_bytes, ReplayConfig, ReplayOutput, ReplayReport};
pub use sink::OutRecord;
