//! The firmware's instruction counts: `cargo bench -p mend-tests --bench firmware`.
//!
//! Builds the node for the Cortex-M3 (`thumbv7m-none-eabi`, QEMU `-cpu cortex-m3`) and the
//! Cortex-M0 (`thumbv6m-none-eabi`, the same board with `-cpu cortex-m0`), runs 100 samples
//! at 1 Hz under `-icount shift=0,sleep=off` with the TCG plugin `tests/plugin/icount.c`
//! (built here with `cc`), and prints, per reading:
//! - `push`: instructions inside the edge pipeline's `push` (the firmware calls it through the
//!   never-inlined `push_reading`, whose address the plugin is given), stats frames included;
//! - `sample`: instructions of one whole cycle of the node's loop, from one `push` to the next
//!   (wake-up, sensor read, `push`, frames to the UART, going back to sleep, every interrupt);
//! - awake instructions per second of virtual time, and the share of the time that is (at
//!   `shift=0` one instruction takes one nanosecond).
//!
//! These are counts, not timings: the same build gives the same figures on any machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mend_tests::{build_firmware, run, FirmwareBuild, RunOptions};

const SAMPLES: u32 = 100;
const PERIOD_MS: u32 = 1_000;
const STATS_EVERY: u32 = 16;

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e")
}

/// Compiles the plugin, or says what is missing.
fn build_plugin() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin/icount.c");
    let out = target_dir().join("libicount.so");
    fs::create_dir_all(target_dir()).expect("create target/e2e");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler {cc:?} ({e}), which builds the QEMU plugin \
                 {}; install one with: apt-get install -y gcc (or set CC)",
                src.display()
            )
        });
    assert!(status.success(), "{cc} failed to build {}", src.display());
    out
}

/// The address of the never-inlined `push_reading` in `elf`, read with `nm`.
fn push_address(elf: &Path) -> String {
    let out = Command::new("nm")
        .arg(elf)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (binutils) on {}: {e}", elf.display()));
    assert!(out.status.success(), "nm failed on {}", elf.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let addr = text
        .lines()
        .find(|l| l.contains("push_reading"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no push_reading symbol in {}", elf.display()));
    format!("0x{addr}")
}

/// The plugin's `key=value` figures.
fn figure(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the plugin's output:\n{text}"))
}

struct Figures {
    push: f64,
    sample: f64,
    awake_per_s: f64,
}

fn measure(plugin: &Path, name: &'static str, target: &'static str, cpu: &str) -> Figures {
    let elf = build_firmware(&FirmwareBuild {
        name,
        features: &["qemu"],
        target,
        env: vec![
            ("MEND_SAMPLES", SAMPLES.to_string()),
            ("MEND_PERIOD_MS", PERIOD_MS.to_string()),
            ("MEND_STATS_EVERY", STATS_EVERY.to_string()),
        ],
    });
    let out = target_dir().join(format!("{name}.icount"));
    let _ = fs::remove_file(&out);
    let args = vec![
        "-plugin".to_owned(),
        format!(
            "{},arg=fn={},arg=out={}",
            plugin.display(),
            push_address(&elf),
            out.display()
        ),
    ];
    let r = run(
        &elf,
        RunOptions {
            cpu: Some(cpu),
            extra_args: &args,
            ..RunOptions::default()
        },
    );
    r.assert_success();
    let text = fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("the plugin wrote no {}: {e}", out.display()));
    let calls = figure(&text, "calls");
    assert_eq!(calls, u64::from(SAMPLES), "one push per sample:\n{text}");
    let push = figure(&text, "inside") as f64 / calls as f64;
    let sample = figure(&text, "cycle") as f64 / (calls - 1) as f64;
    Figures {
        push,
        sample,
        awake_per_s: sample * 1_000.0 / f64::from(PERIOD_MS),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and gets a quick pass.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let plugin = build_plugin();
    println!(
        "firmware: {SAMPLES} samples at {} Hz, stats every {STATS_EVERY}, \
         QEMU -icount shift=0,sleep=off, plugin tests/plugin/icount.c",
        1_000 / PERIOD_MS
    );
    println!(
        "{:<24} {:>14} {:>16} {:>16} {:>12}",
        "core", "push/reading", "sample/reading", "awake insns/s", "awake share"
    );
    for (name, target, cpu) in [
        ("bench-m3", "thumbv7m-none-eabi", "cortex-m3"),
        ("bench-m0", "thumbv6m-none-eabi", "cortex-m0"),
    ] {
        let f = measure(&plugin, name, target, cpu);
        println!(
            "{:<24} {:>14.0} {:>16.0} {:>16.0} {:>11.4}%",
            format!("{cpu} ({target})"),
            f.push,
            f.sample,
            f.awake_per_s,
            f.awake_per_s / 1e9 * 100.0
        );
    }
}
