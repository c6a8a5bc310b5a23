//! Building the firmware and booting it in QEMU.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::qmp::{connect_unix, Qmp};

/// What to install when QEMU is missing; the tests fail with this rather than skip.
const INSTALL_HINT: &str =
    "qemu-system-arm is required by the end-to-end tests and was not found; \
     install it with: apt-get install -y --no-install-recommends qemu-system-arm";

/// Wall-clock limit for one QEMU run, enforced by `timeout(1)`: a run that hangs fails.
const RUN_TIMEOUT_SECS: &str = "60";

/// One configuration of the firmware: its features and build-time settings.
///
/// Each configuration builds into its own target directory, so switching between them never
/// rebuilds from scratch.
#[derive(Clone, Debug)]
pub struct FirmwareBuild {
    /// Names the target directory (`target/e2e/<name>`); one name per configuration.
    pub name: &'static str,
    /// Cargo features of `mend-firmware`.
    pub features: &'static [&'static str],
    /// The Rust target: `thumbv7m-none-eabi` (the LM3S6965's Cortex-M3), or
    /// `thumbv6m-none-eabi` to run the same image on QEMU's Cortex-M0 model of the board.
    pub target: &'static str,
    /// Build-time settings (`MEND_SAMPLES`, `MEND_PERIOD_MS`, ...). Any other `MEND_*`
    /// variable of the caller's environment is removed, so builds are reproducible.
    pub env: Vec<(&'static str, String)>,
}

/// The firmware's directory (its own Cargo workspace).
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware")
}

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Builds `build` in release mode (once per test process) and returns the ELF's path.
///
/// # Panics
/// If QEMU is missing (a build would be no use), or if the build fails; the panic message
/// carries cargo's output.
pub fn build_firmware(build: &FirmwareBuild) -> PathBuf {
    // Fail before a half-minute build, not after it.
    require_qemu();
    static BUILT: Mutex<Option<HashMap<&'static str, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(elf) = built.get(build.name) {
        return elf.clone();
    }
    let target_dir = workspace_target().join("e2e").join(build.name);
    let mut cmd = Command::new("cargo");
    cmd.current_dir(firmware_dir())
        .args(["build", "--release", "--bin", "mend-firmware"])
        .args(["--target", build.target])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_BUILD_TARGET");
    if !build.features.is_empty() {
        cmd.arg("--features").arg(build.features.join(","));
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MEND_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in &build.env {
        cmd.env(key, value);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the firmware: {e}"));
    assert!(
        out.status.success(),
        "firmware build {:?} failed:\n{}",
        build.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = target_dir.join(build.target).join("release/mend-firmware");
    assert!(elf.is_file(), "the build left no ELF at {}", elf.display());
    built.insert(build.name, elf.clone());
    elf
}

/// A test of the UART capture so far: true when the run can stop.
pub type StopCondition = dyn Fn(&[u8]) -> bool;

/// How to run the firmware.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Lock-step mode: the temperature, in milli-degrees Celsius, that the TMP105 shows at
    /// each sample (by seq). `None` runs freely with the sensor at its power-up value.
    pub profile: Option<&'a dyn Fn(u32) -> i32>,
    /// Keep a copy of the UART capture as `target/e2e/captures/<name>.mend`.
    pub keep_capture_as: Option<&'a str>,
    /// Boot the board without its TMP105, as a node whose sensor is unplugged.
    pub without_sensor: bool,
    /// Another CPU model than the runner's (`cortex-m0` for a `thumbv6m-none-eabi` image).
    pub cpu: Option<&'a str>,
    /// More QEMU arguments (a `-plugin`, say), added before `-kernel`.
    pub extra_args: &'a [String],
    /// Boot without semihosting, as a board without a debugger: a semihosting call then
    /// faults the node instead of reaching a console.
    pub without_semihosting: bool,
    /// For an image that never exits (the hardware build): stop QEMU as soon as the UART
    /// capture so far satisfies this. The run's status is then QEMU's stop by signal.
    pub stop_when: Option<&'a StopCondition>,
    /// UART0 as this QEMU chardev (`tcp:127.0.0.1:PORT,server=on,wait=on`, for a gateway
    /// that reads and writes the link) instead of the capture file; [`Run::uart`] is then
    /// empty.
    pub uart: Option<&'a str>,
    /// The node's flash file. QEMU then runs in the run's scratch directory, where
    /// [`FLASH_NAME`] is a symbolic link to this file: a firmware that keeps its flash in a
    /// semihosting file opens [`FLASH_NAME`] (a name relative to QEMU's working directory).
    pub flash: Option<&'a Path>,
    /// The wall-clock limit of the run in seconds (60 when `None`).
    pub timeout_secs: Option<u32>,
}

/// The name under which a run's flash file appears in QEMU's working directory.
pub const FLASH_NAME: &str = "mend-node.flash";

/// What one QEMU run left behind.
#[derive(Debug)]
pub struct Run {
    /// QEMU's exit status (the firmware's semihosting exit code).
    pub status: ExitStatus,
    /// The semihosting console text, without the lock-step `sample N` prompts.
    pub console: String,
    /// The seqs the node announced in lock-step mode, in order.
    pub prompts: Vec<u32>,
    /// Every byte the node wrote to UART0.
    pub uart: Vec<u8>,
    /// QEMU's own diagnostics (its stderr), for failure messages.
    pub qemu_stderr: String,
    /// Wall time of the run.
    pub wall: Duration,
}

impl Run {
    /// Panics, with the console and QEMU's diagnostics, unless the node exited cleanly.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "the node failed ({}):\nconsole:\n{}\nqemu:\n{}",
            self.status,
            self.console,
            self.qemu_stderr
        );
    }
}

/// The `qemu-system-arm` arguments of the firmware's `cargo run` runner (without the program
/// name and the final `-kernel`).
pub(crate) fn qemu_runner_args() -> Vec<String> {
    let config = firmware_dir().join(".cargo/config.toml");
    let text = fs::read_to_string(&config)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", config.display()));
    let runner = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("runner = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no runner = \"...\" line in {}", config.display()));
    let mut words: Vec<String> = runner.split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("qemu-system-arm"),
        "runner is not QEMU"
    );
    assert_eq!(
        words.last().map(String::as_str),
        Some("-kernel"),
        "runner must end in -kernel"
    );
    words.remove(0);
    words.pop();
    words
}

/// Replaces the value after `flag` in `args`.
pub(crate) fn set_flag(args: &mut [String], flag: &str, value: String) {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("the runner has no {flag}"));
    args[i + 1] = value;
}

pub(crate) fn require_qemu() {
    match Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("qemu-system-arm --version failed ({s}). {INSTALL_HINT}"),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(e) => panic!("cannot run qemu-system-arm ({e}). {INSTALL_HINT}"),
    }
    match Command::new("timeout")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        _ => panic!("timeout(1) from coreutils is required to bound QEMU runs"),
    }
}

/// A scratch directory with a short path (unix socket paths are limited to ~100 bytes).
fn scratch_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mend-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

pub(crate) fn wait_for(path: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "QEMU exited ({status}) before creating {}:\n{err}",
                path.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "QEMU did not create {} in 20 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops a QEMU run when the harness panics while it runs (a failed QMP command, say), rather
/// than leaving it to `timeout`: `timeout` passes the TERM signal on to QEMU.
struct StopOnPanic(u32);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}

/// Boots `elf` in QEMU and returns what it wrote.
///
/// # Panics
/// If QEMU is missing (with the command to install it), or if the harness cannot talk to it.
pub fn run(elf: &Path, options: RunOptions<'_>) -> Run {
    require_qemu();
    let dir = scratch_dir();
    let uart_path = dir.join("uart0.mend");
    let mut args = qemu_runner_args();
    set_flag(
        &mut args,
        "-serial",
        match options.uart {
            Some(chardev) => chardev.to_owned(),
            None => format!("file:{}", uart_path.display()),
        },
    );
    if let Some(cpu) = options.cpu {
        set_flag(&mut args, "-cpu", cpu.to_owned());
    }
    args.extend(options.extra_args.iter().cloned());
    if options.without_sensor {
        let i = args
            .iter()
            .position(|a| a.starts_with("tmp105,"))
            .expect("the runner attaches a tmp105");
        args.drain(i - 1..=i);
    }
    let lockstep = options.profile.is_some();
    let console_path = dir.join(if lockstep {
        "console.sock"
    } else {
        "console.txt"
    });
    let qmp_path = dir.join("qmp.sock");
    if lockstep {
        args.push("-chardev".into());
        args.push(format!(
            "socket,id=semi,path={},server=on,wait=off",
            console_path.display()
        ));
        args.push("-qmp".into());
        args.push(format!("unix:{},server=on,wait=off", qmp_path.display()));
        args.push("-S".into());
    } else {
        args.push("-chardev".into());
        args.push(format!("file,id=semi,path={}", console_path.display()));
    }
    set_flag(
        &mut args,
        "-semihosting-config",
        format!(
            "enable=on,target=native,chardev=semi,arg=mend-firmware{}",
            if lockstep { ",arg=lockstep" } else { "" }
        ),
    );
    if options.without_semihosting {
        let i = args
            .iter()
            .position(|a| a == "-semihosting-config")
            .expect("the runner configures semihosting");
        args.drain(i..=i + 1);
    }
    let mut qemu = Command::new("timeout");
    if let Some(flash) = options.flash {
        // The file may not exist yet: the firmware creates it (through the link).
        let target = std::path::absolute(flash)
            .unwrap_or_else(|e| panic!("flash file {}: {e}", flash.display()));
        std::os::unix::fs::symlink(&target, dir.join(FLASH_NAME))
            .unwrap_or_else(|e| panic!("link the flash file into {}: {e}", dir.display()));
        qemu.current_dir(&dir);
    }
    let timeout = options
        .timeout_secs
        .map_or_else(|| RUN_TIMEOUT_SECS.to_owned(), |s| s.to_string());
    let start = Instant::now();
    let mut child = qemu
        .arg(timeout)
        .arg("qemu-system-arm")
        .args(&args)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start QEMU: {e}. {INSTALL_HINT}"));
    let guard = StopOnPanic(child.id());

    let mut console = String::new();
    let mut prompts = Vec::new();
    if let Some(profile) = options.profile {
        wait_for(&console_path, &mut child);
        wait_for(&qmp_path, &mut child);
        let stream = connect_unix(&console_path).unwrap_or_else(|e| panic!("{e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("socket timeout");
        let mut answer = stream.try_clone().expect("clone socket");
        let mut qmp = Qmp::connect(&qmp_path).unwrap_or_else(|e| panic!("{e}"));
        qmp.set_temperature(profile(0))
            .unwrap_or_else(|e| panic!("{e}"));
        qmp.cont().unwrap_or_else(|e| panic!("{e}"));
        for line in BufReader::new(stream).lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => panic!("semihosting console: {e}; so far:\n{console}"),
            };
            if let Some(seq) = line.strip_prefix("sample ") {
                let seq: u32 = seq
                    .parse()
                    .unwrap_or_else(|_| panic!("bad prompt {line:?}"));
                prompts.push(seq);
                qmp.set_temperature(profile(seq))
                    .unwrap_or_else(|e| panic!("sample {seq}: {e}"));
                answer.write_all(b"\n").expect("answer the node");
            } else {
                console.push_str(&line);
                console.push('\n');
            }
        }
    }
    if let Some(done) = options.stop_when {
        let start = Instant::now();
        loop {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            if done(&fs::read(&uart_path).unwrap_or_default()) {
                // TERM, which `timeout` passes on to QEMU (a KILL would orphan QEMU).
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the node's UART output never satisfied the stop condition"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let out = child.wait_with_output().expect("wait for QEMU");
    std::mem::forget(guard);
    let wall = start.elapsed();
    if !lockstep {
        console = fs::read_to_string(&console_path).unwrap_or_default();
    }
    let uart = fs::read(&uart_path).unwrap_or_default();
    if let Some(name) = options.keep_capture_as {
        let keep = workspace_target().join("e2e/captures");
        let _ = fs::create_dir_all(&keep);
        let _ = fs::write(keep.join(format!("{name}.mend")), &uart);
    }
    let _ = fs::remove_dir_all(&dir);
    Run {
        status: out.status,
        console,
        prompts,
        uart,
        qemu_stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall,
    }
}
