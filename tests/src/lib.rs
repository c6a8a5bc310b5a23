//! End-to-end harness for mend (being written).
