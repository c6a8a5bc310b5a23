//! The `mend` command (being written).

fn main() {}
