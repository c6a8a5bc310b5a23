//! The mend host library (being written).

pub mod chart;
