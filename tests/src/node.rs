//! Running the store-and-forward node (firmware feature `store`) as a gateway sees it: UART0 is
//! a TCP socket that QEMU listens on, the test reads the uplink and writes `Ack` and `Resend`
//! frames to it, and the node's flash is a file in a directory of the test's.
//!
//! The flash file outlives QEMU. [`StoreNode::power_cut`] kills QEMU outright (`SIGKILL`: the
//! guest gets no instruction more), and [`StoreNode::boot`] on the same directory is the next
//! power-up. [`StoreNode::reset`] resets the board over QMP (`system_reset`) while the socket
//! and the file stay.
//!
//! The node runs in real time (`-icount shift=0,sleep=on`): it samples, then idles, sending
//! heartbeats, and answers the gateway whenever it writes. The tests wait for what they need to
//! see in the capture, with a wall-clock limit, and never on a timer of their own.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mend_core::{Frame, FrameBuf};

use crate::qemu::{qemu_runner_args, require_qemu, set_flag, wait_for};
use crate::qmp::Qmp;
use crate::wire::{decode_capture, Capture};

/// How long a test waits for the node to show something before it fails.
const PATIENCE: Duration = Duration::from_secs(40);

/// A store node running in QEMU.
pub struct StoreNode {
    child: Child,
    qemu_pid: u32,
    qmp: Qmp,
    /// The harness's connection to UART0; `None` when a gateway connects instead.
    uart: Option<TcpStream>,
    port: u16,
    alive: bool,
    uplink: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    console: PathBuf,
}

impl StoreNode {
    /// Powers the node up in `dir` (its flash file is `dir/mend-node.flash`, created on the
    /// first boot); `boot` numbers the console file, so each power-up keeps its own.
    ///
    /// # Panics
    /// If QEMU is missing or the harness cannot reach it.
    pub fn boot(elf: &Path, dir: &Path, boot: u32) -> Self {
        Self::start(elf, dir, boot, free_port(), true, 300)
    }

    /// Powers the node up in `dir` as [`StoreNode::boot`] does, with UART0 listening on
    /// `port` for a gateway (`mend listen --tcp`, or a proxy in front of it) instead of the
    /// harness: [`StoreNode::uplink`] stays empty and [`StoreNode::send`] does nothing. Booting
    /// again on the same port after [`StoreNode::power_cut`] is how the gateway sees a node
    /// come back. QEMU is killed after `life_secs` at the latest.
    pub fn boot_for_gateway(elf: &Path, dir: &Path, boot: u32, port: u16, life_secs: u32) -> Self {
        Self::start(elf, dir, boot, port, false, life_secs)
    }

    fn start(elf: &Path, dir: &Path, boot: u32, port: u16, connect: bool, life_secs: u32) -> Self {
        require_qemu();
        let qmp_path = dir.join(format!("qmp-{boot}.sock"));
        let pid_path = dir.join(format!("qemu-{boot}.pid"));
        let console = dir.join(format!("console-{boot}.txt"));
        let mut args = qemu_runner_args();
        set_flag(
            &mut args,
            "-serial",
            format!("tcp:127.0.0.1:{port},server=on,wait=off"),
        );
        set_flag(&mut args, "-icount", "shift=0,sleep=on".into());
        set_flag(
            &mut args,
            "-semihosting-config",
            "enable=on,target=native,chardev=semi".into(),
        );
        args.push("-chardev".into());
        args.push(format!("file,id=semi,path={}", console.display()));
        args.push("-qmp".into());
        args.push(format!("unix:{},server=on,wait=off", qmp_path.display()));
        args.push("-pidfile".into());
        args.push(pid_path.display().to_string());
        args.push("-S".into());
        // `timeout` bounds a run whose test died; the test itself ends QEMU with SIGKILL.
        let mut child = Command::new("timeout")
            .args(["-s", "KILL", &life_secs.to_string(), "qemu-system-arm"])
            .args(&args)
            .arg("-kernel")
            .arg(elf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start QEMU: {e}"));
        wait_for(&qmp_path, &mut child);
        wait_for(&pid_path, &mut child);
        let qemu_pid = read_pid(&pid_path);
        let mut qmp = Qmp::connect(&qmp_path).unwrap_or_else(|e| panic!("{e}"));
        let uplink = Arc::new(Mutex::new(Vec::new()));
        if !connect {
            resume(&mut qmp, &mut child);
            return Self {
                child,
                qemu_pid,
                qmp,
                uart: None,
                port,
                alive: true,
                uplink,
                reader: None,
                console,
            };
        }
        let uart = connect_tcp(port);
        let reader = {
            let mut stream = uart.try_clone().expect("clone the UART socket");
            let uplink = Arc::clone(&uplink);
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    uplink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            })
        };
        // The socket is connected before the node runs: nothing it sends is missed.
        resume(&mut qmp, &mut child);
        Self {
            child,
            qemu_pid,
            qmp,
            uart: Some(uart),
            port,
            alive: true,
            uplink,
            reader: Some(reader),
            console,
        }
    }

    /// Every byte the node has sent since this power-up.
    pub fn uplink(&self) -> Vec<u8> {
        self.uplink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The node's semihosting console so far.
    pub fn console(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Waits until the decoded uplink satisfies `done`, and returns it.
    ///
    /// # Panics
    /// After 40 s without it, saying what was awaited and showing the console.
    pub fn wait_until(&self, what: &str, done: impl Fn(&Capture) -> bool) -> Capture {
        let start = Instant::now();
        loop {
            let capture = decode_capture(&self.uplink());
            if done(&capture) {
                return capture;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the node never showed {what}; {} frames so far; console:\n{}",
                capture.frames.len(),
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the console holds `n` reports (the node prints one when it stops sampling
    /// and one after each command it carried out).
    pub fn wait_for_reports(&self, n: usize) -> String {
        let start = Instant::now();
        loop {
            let console = self.console();
            if console.matches("ram total: ").count() >= n {
                return console;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the node never printed {n} reports; console:\n{console}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `frame` to the node, as the gateway would.
    pub fn send(&mut self, frame: &Frame) {
        let bytes: FrameBuf = frame
            .to_buf()
            .unwrap_or_else(|e| panic!("encode {frame:?}: {e}"));
        if let Some(uart) = self.uart.as_mut() {
            uart.write_all(&bytes).expect("write to the node");
        }
    }

    /// The loopback port UART0 listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets the TMP105's temperature, in milli-degrees Celsius, over QMP.
    ///
    /// # Panics
    /// If QEMU refuses it.
    pub fn set_temperature(&mut self, millidegrees: i32) {
        self.qmp
            .set_temperature(millidegrees)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until the console satisfies `done`, and returns it; `None` after `patience`.
    pub fn wait_for_console(
        &self,
        patience: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let start = Instant::now();
        loop {
            let console = self.console();
            if done(&console) {
                return Some(console);
            }
            if start.elapsed() >= patience {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resets the board (QMP `system_reset`): RAM is lost, the flash file and the socket stay.
    pub fn reset(&mut self) {
        self.qmp
            .execute("system_reset", serde_json::json!({}))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits for the node to end its run with a semihosting exit; returns whether it exited
    /// with success, and the console.
    ///
    /// # Panics
    /// If QEMU is still running after 40 s.
    pub fn wait_for_exit(mut self) -> (bool, String) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(uart) = &self.uart {
                    let _ = uart.shutdown(std::net::Shutdown::Both);
                }
                self.alive = false;
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return (status.success(), self.console());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the node never exited; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cuts the power: QEMU is killed without warning. Returns the console.
    pub fn power_cut(mut self) -> String {
        self.kill();
        self.console()
    }

    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.qemu_pid.to_string()])
            .status();
        let _ = self.child.wait();
        self.alive = false;
        if let Some(uart) = &self.uart {
            let _ = uart.shutdown(std::net::Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for StoreNode {
    fn drop(&mut self) {
        if self.alive {
            self.kill();
        }
    }
}

/// A port no one listens on now (QEMU binds it a moment later).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Lets the node run. A guest that finishes at once (the flash self-test ends in a
/// semihosting exit within milliseconds) can take QEMU down before QMP's answer to `cont` is
/// written; a connection that closes then is that exit, which [`StoreNode::wait_for_exit`]
/// reports. Any other failure, or one while QEMU lives on, is the harness's and panics.
fn resume(qmp: &mut Qmp, child: &mut Child) {
    let Err(e) = qmp.cont() else { return };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("QMP cont: {e}, and QEMU is still running");
}

fn read_pid(path: &Path) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(start.elapsed() < PATIENCE, "QEMU wrote no pid file");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn connect_tcp(port: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) => {
                assert!(
                    start.elapsed() < PATIENCE,
                    "cannot connect to the node's UART on port {port}: {e}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
