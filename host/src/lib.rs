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
//! - [`input`]: format detection and the frame-log and JSONL readers.
//! - [`merge`]: the k-way merge of inputs by time.
//! - [`engine`]: the per-stream pipeline and its report.
//! - [`replay`]: the library entry points, [`replay::run`] and [`replay::replay_bytes`].
//! - [`output`], [`dlq`], [`checkpoint`]: writers, dead letters, resumable runs.
//! - [`generate`] and [`demo`]: simulated captures and the recovery report.
//! - [`summary`], [`timefmt`], [`numfmt`]: text for people.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod chart;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod dlq;
pub mod engine;
pub mod generate;
pub mod input;
pub mod merge;
pub mod numfmt;
pub mod output;
pub mod replay;
pub mod seek;
pub mod summary;
pub mod timefmt;

pub use engine::{EngineConfig, StreamReport};
pub use output::OutRecord;
pub use replay::{replay_bytes, ReplayConfig, ReplayOutput, ReplayReport};
