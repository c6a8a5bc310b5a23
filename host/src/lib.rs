//! The mend host library (being written).
