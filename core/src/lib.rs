//! # mend-core
//!
//! The part of mend that runs everywhere: on the sensor MCU and on the host, with the same
//! code and the same results.
//!
//! Temperature readings get lost, duplicated, reordered and corrupted between a sensor and the
//! place where somebody computes a mean from them. This crate holds everything needed to turn
//! such a stream back into a complete, trustworthy series, without an allocator and without a
//! panic path on data:
//!
//! - [`Reading`] and [`Celsius`]: the data model, fixed-point, ordered by `(timestamp, seq)`.
//! - [`Validator`]: band, physical range, spike and stuck-sensor checks, giving a [`Quality`]
//!   and [`Flags`] in the SaQC vocabulary.
//! - [`Reorder`]: a bounded min-heap reorder buffer with watermark release, counted early
//!   eviction, late emission and duplicate detection ([`Dedup`]).
//! - [`GapFiller`]: seq and time gap detection, outages, and `linear` / `locf` / `stochastic`
//!   fills that say where they came from.
//! - [`Aggregator`]: exact per-window aggregates, independent of arrival order.
//! - [`Frame`], [`encode`] and [`Decoder`]: postcard + CRC-16 + COBS frames, a re-synchronising
//!   streaming decoder that accounts for every byte, reading every format version ever
//!   written ([`VERSIONS`]); [`Encoder`] writes the current one.
//! - [`Simulator`]: a seeded faulty sensor and link, with its ground truth.
//! - [`EdgePipeline`]: validate → reorder/dedup → encode → [`Ring`], for firmware and host loops.
//! - [`NorGeometry`] and [`check_program`]: the rules of NOR flash, for flash that is only
//!   simulated (the QEMU node keeps its log in a file).
//!
//! Every stage keeps [`Counters`] that obey
//! `in = emitted + late + duplicate + rejected + evicted + held`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod aggregate;
mod counters;
mod dedup;
mod fill;
mod frame;
mod gap;
mod nor;
mod outage;
mod pipeline;
mod quality;
mod reading;
mod reorder;
mod ring;
mod simulate;
mod validate;

pub use aggregate::{Aggregate, AggregateError, Aggregator, Closing};
pub use counters::Counters;
pub use dedup::{Dedup, Seen};
pub use fill::{FillConfig, GapConfigError};
pub use frame::{
    encode, put_varint64, zigzag, Ack, ClockKind, DecodeEvent, Decoder, EncodeError, Encoder,
    Fault, FaultKind, Frame, FrameBuf, Header, Heartbeat, Resend, ResetReason, SkipReason, Span,
    Stats, WireError, WireReading, CRC, FORMAT_VERSION, MAX_FRAME, VERSIONS,
};
pub use gap::{BandSide, FillState, GapEvent, GapEvents, GapFiller, GapStats};
pub use nor::{check_program, NorError, NorGeometry, NorGeometryError};
pub use outage::{Outage, OutageSlots};
pub use pipeline::{EdgeConfig, EdgePipeline, EdgeReject, PushOutcome};
pub use quality::{Flag, Flags, Quality, UnknownName};
pub use reading::{Celsius, FillMethod, Identity, Key, Origin, Reading, Record, Source};
pub use reorder::{Admit, Release, ReleaseKind, Reorder, ReorderError};
pub use ring::{Overflow, Ring};
pub use simulate::{Link, LinkStats, SimConfig, SimConfigError, Simulator, TruthPoint, PPM};
pub use validate::{ValidateConfig, ValidateConfigError, Validator};
