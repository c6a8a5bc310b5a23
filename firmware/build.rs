//! Links with cortex-m-rt's `link.x` (and, without the `qemu` feature, defmt's `defmt.x`),
//! and puts `memory.x` on the linker search path, where
//! `link.x` looks for it.
//!
//! The `-Tlink.x` argument is given here rather than as `rustflags` in `.cargo/config.toml`:
//! a `RUSTFLAGS` variable in the environment (common in CI) replaces config rustflags
//! silently, and the firmware would then link without a vector table.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // Hardware builds log through defmt, whose strings live in a section of their own.
    if env::var_os("CARGO_FEATURE_QEMU").is_none() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
