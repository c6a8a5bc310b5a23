//! A minimal QMP client: enough to negotiate capabilities, set the TMP105's temperature and
//! resume the machine.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

/// Connects to a unix socket that QEMU is about to listen on: the socket file appears when
/// QEMU binds it, a moment before it listens, so a refused connection is retried briefly.
pub(crate) fn connect_unix(path: &Path) -> Result<UnixStream, String> {
    let start = std::time::Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("connect {}: {e}", path.display())),
        }
    }
}

/// A QMP connection to a running QEMU.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the QMP socket at `path`, reads the greeting and enters command mode.
    pub fn connect(path: &Path) -> Result<Self, String> {
        let stream = connect_unix(path)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| format!("QMP read: {e}"))?;
        if n == 0 {
            return Err("QMP connection closed".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP sent bad JSON {line:?}: {e}"))
    }

    /// Runs one command and returns its `return` value; asynchronous events are skipped.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let msg = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{msg}").map_err(|e| format!("QMP write: {e}"))?;
        loop {
            let reply = self.read_message()?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(format!("QMP {command} failed: {err}"));
            }
            // an event ({"event": ...}): not an answer to us
        }
    }

    /// Sets the temperature of the TMP105 with QOM id `sensor0`, in milli-degrees Celsius.
    pub fn set_temperature(&mut self, millidegrees: i32) -> Result<(), String> {
        self.execute(
            "qom-set",
            json!({
                "path": "/machine/peripheral/sensor0",
                "property": "temperature",
                "value": millidegrees,
            }),
        )
        .map(drop)
    }

    /// Resumes a machine started with `-S`.
    pub fn cont(&mut self) -> Result<(), String> {
        self.execute("cont", json!({})).map(drop)
    }
}
