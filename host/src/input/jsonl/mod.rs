//! Reading the prototype's JSONL log: one event per line, each validated strictly; a line
//! that gives no reading becomes a dead letter with its reason, and the next line is read
//! as if nothing had happened.

mod event;
mod line;
mod parallel;
mod reader;

pub use event::JSONL_RANGE;
pub use line::{JSONL_BATCH_BYTES, MAX_LINE};
pub use parallel::{ParallelJsonl, JSONL_BATCH, JSONL_PARSERS};
pub use reader::JsonlReader;
