//! Text for people: numbers, times, and the summary of a run.

pub mod numfmt;
pub mod summary;
pub mod timefmt;
