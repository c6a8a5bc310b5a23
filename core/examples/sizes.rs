//! Prints the memory each core type takes with the capacities the firmware and the host use.
//!
//! `cargo run -p mend-core --example sizes` (the figures are for the build's pointer width;
//! the firmware prints its own at exit).

use core::mem::size_of;

use mend_core::{Dedup, EdgePipeline, FrameBuf, GapFiller, Reading, Reorder, Ring, Validator};

fn main() {
    let rows: [(&str, usize); 9] = [
        ("Reading", size_of::<Reading>()),
        ("FrameBuf (one encoded frame)", size_of::<FrameBuf>()),
        ("Dedup<1, 8> (256-seq window)", size_of::<Dedup<1, 8>>()),
        ("Reorder<32>", size_of::<Reorder<32>>()),
        ("Reorder<1024>", size_of::<Reorder<1024>>()),
        ("Validator<32>", size_of::<Validator<32>>()),
        ("Ring<8>", size_of::<Ring<8>>()),
        ("GapFiller<16>", size_of::<GapFiller<16>>()),
        (
            "EdgePipeline<8, 8> (firmware)",
            size_of::<EdgePipeline<8, 8>>(),
        ),
    ];
    for (name, bytes) in rows {
        println!("{name:<32} {bytes:>7} bytes");
    }
}
