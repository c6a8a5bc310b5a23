//! Links with cortex-m-rt's `link.x` (and, without the `qemu` feature, defmt's `defmt.x`),
//! and writes the memory layout of the build as `memory.x` on the linker search path, where
//! `link.x` looks for it: `memory-stream.x` (the streaming node's 16 KiB / 4 KiB budget) or,
//! with the feature `store`, `memory-store.x` (32 KiB / 8 KiB). Neither file is called
//! `memory.x` itself: the linker looks in the package's directory before the search path, and
//! would find that one in every build.
//!
//! The `-Tlink.x` argument is given here rather than as `rustflags` in `.cargo/config.toml`:
//! a `RUSTFLAGS` variable in the environment (common in CI) replaces config rustflags
//! silently, and the firmware would then link without a vector table.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory: &[u8] = if env::var_os("CARGO_FEATURE_STORE").is_some() {
        include_bytes!("memory-store.x")
    } else {
        include_bytes!("memory-stream.x")
    };
    fs::write(out.join("memory.x"), memory).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // Hardware builds log through defmt, whose strings live in a section of their own.
    if env::var_os("CARGO_FEATURE_QEMU").is_none() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=memory-stream.x");
    println!("cargo:rerun-if-changed=memory-store.x");
    println!("cargo:rerun-if-changed=build.rs");
}
