//! A real `redis-server` for the fleet tests, and the worker runs they make.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of its own, killed when dropped.
pub struct Redis {
    pub port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Redis {
    /// A server on a free port, up and answering.
    pub fn start(dir: PathBuf) -> Self {
        let mut r = Self::stopped(super::free_port(), dir);
        r.launch();
        r
    }

    /// A server on `port` that is not running yet: [`Redis::launch`] starts it.
    pub fn stopped(port: u16, dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            port,
            dir,
            child: None,
        }
    }

    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (.ci/test installs it)");
        self.child = Some(child);
        let t = Instant::now();
        loop {
            let up = redis::Client::open(self.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if up.is_ok() {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL: no shutdown, only the AOF survives).
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.crash();
    }
}

pub fn work_args<'a>(url: &'a str, consumer: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "work",
        "--redis",
        url,
        "--consumer",
        consumer,
        "--exit-when-idle",
        "--poll",
        "20ms",
    ];
    v.extend_from_slice(extra);
    v
}

/// Waits for a worker, for two minutes at most: a worker that never sees its work done
/// (pending entries nobody claims, say) fails the test instead of hanging it.
pub fn wait(child: Child, what: &str) -> (i32, String) {
    let (code, err) = wait_any(child, what);
    assert_eq!(code, 0, "{what}: {err}");
    (code, err)
}

/// A connection to the server at `url`, for a test's own commands.
pub fn connection(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// Waits for a worker as [`wait`] does, whatever its exit code: its code and standard error.
pub fn wait_any(mut child: Child, what: &str) -> (i32, String) {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish in 120 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err)
}

/// The length of a stream.
pub fn xlen(url: &str, key: &str) -> u64 {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("XLEN").arg(key).query(&mut con).unwrap()
}
