//! Writing results: the sinks repaired records go to.
//!
//! A sink takes a stream's records in time order ([`RecordSink`]); one file each holds the
//! CSV rows and their writer ([`RowWriter`]), the JSONL rows, the frame logs
//! ([`MlogWriter`]), the aggregates ([`aggregates`]), the chart adapter ([`chart`]) and the
//! dead letters ([`dlq`]). Outputs go through [`AtomicFile`](crate::fs::AtomicFile), so that
//! they appear complete or not at all.

pub mod aggregates;
pub mod chart;
mod csv;
pub mod dlq;
mod jsonl;
mod mlog;
mod record;
mod row;

pub use csv::{push_csv_row, push_missing_csv_row, RowWriter};
pub use jsonl::{push_json_row, push_missing_json_row};
pub use mlog::MlogWriter;
pub use record::{OutRecord, RecordSink, Tee, VecSink};
pub use row::{RowFormat, CSV_HEADER, MISSING};
