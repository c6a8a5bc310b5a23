//! `mend listen --redis`: the capture published as it grows, as `mend publish` would.
//!
//! The capture stays the durable store, and Redis a copy of it: what is published is read
//! back from the capture, up to the bytes synced to disk (the point where they are
//! acknowledged), and the publisher remembers only the capture offset published so far and
//! the [`Splitter`] state at that offset. When Redis is unreachable or goes away, the
//! gateway keeps capturing and acknowledging; the publisher tries again with backoff and,
//! once Redis answers, catches up from that offset, so nothing in between is skipped. A
//! batch Redis took only in part is sent again whole: workers deduplicate readings by
//! identity, so a repeat changes nothing downstream.
//!
//! Redis is called from the gateway's loop, with short timeouts: a Redis that hangs delays
//! the link's reads by those timeouts at most, and the link's bytes wait in the meantime.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fleet::publish::{send, PublishReport, Split, Splitter};

/// The most capture bytes read and published in one batch (a catch-up takes several).
const BATCH: u64 = 1 << 20;
/// The first wait before connecting again; it doubles up to [`MAX_RETRY_MS`].
const FIRST_RETRY_MS: u64 = 100;
/// The longest wait before connecting again.
const MAX_RETRY_MS: u64 = 2_000;
/// How long connecting, and each command, may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The state of the connection to Redis, for the status line and the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisState {
    /// Not connected yet.
    Connecting,
    /// Connected: the last command succeeded.
    Up,
    /// Unreachable or gone: capturing goes on, publishing is retried with backoff.
    Down,
}

impl fmt::Display for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "connecting",
            Self::Up => "up",
            Self::Down => "down, retrying",
        })
    }
}

/// What the status line shows of the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisStatus {
    /// The connection.
    pub state: RedisState,
    /// Frames published.
    pub published: u64,
    /// Capture bytes on disk and not yet published.
    pub pending: u64,
}

/// What the publisher did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishProgress {
    /// The Redis URL.
    pub url: String,
    /// The connection.
    pub state: RedisState,
    /// What was published: frames per sensor, entries, unusable bytes.
    pub published: PublishReport,
    /// The capture offset published through (a run starts at the capture's end).
    pub offset: u64,
    /// Capture bytes on disk and not yet published.
    pub pending: u64,
    /// Connections made.
    pub connects: u64,
    /// The last Redis error, if any.
    pub last_error: Option<String>,
}

/// Publishes a capture's synced bytes into the raw streams, from the offset where the run
/// began.
pub struct Publisher {
    client: redis::Client,
    con: Option<redis::Connection>,
    path: PathBuf,
    name: String,
    /// The splitter's state at `progress.offset`.
    splitter: Splitter,
    progress: PublishProgress,
    retry_at: u64,
    retry_wait: u64,
}

impl Publisher {
    /// A publisher of the capture at `path` into the Redis at `url`; it connects when it
    /// first has something to publish.
    ///
    /// # Errors
    /// A malformed URL.
    pub fn new(url: &str, path: &Path) -> redis::RedisResult<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            con: None,
            path: path.to_path_buf(),
            name: path.display().to_string(),
            splitter: Splitter::new(),
            progress: PublishProgress {
                url: url.to_string(),
                state: RedisState::Connecting,
                published: PublishReport::default(),
                offset: 0,
                pending: 0,
                connects: 0,
                last_error: None,
            },
            retry_at: 0,
            retry_wait: FIRST_RETRY_MS,
        })
    }

    /// Reads the capture's earlier bytes, in order, before [`start`](Self::start): they
    /// place the frames to come (the latest header of each sensor) and are not published.
    pub fn prime(&mut self, bytes: &[u8]) {
        let mut discarded = Split::default();
        // Only a header that cannot be re-encoded fails, and nothing is published here.
        let _ = self.splitter.feed(bytes, &mut discarded);
        self.splitter.forget();
    }

    /// Starts publishing at the end of what was primed.
    pub fn start(&mut self) {
        self.splitter.forget();
        self.progress.offset = self.splitter.position();
    }

    /// What it did so far.
    pub fn progress(&self) -> &PublishProgress {
        &self.progress
    }

    /// What the status line shows.
    pub fn status(&self) -> RedisStatus {
        RedisStatus {
            state: self.progress.state,
            published: self.progress.published.total_frames(),
            pending: self.progress.pending,
        }
    }

    /// Publishes the capture up to `synced` (its bytes on disk), at `now` (ms); while Redis
    /// is down, only once the backoff has passed, unless `now_or_never` (the run's end).
    ///
    /// # Errors
    /// The capture cannot be read, or holds a header that cannot be re-encoded. Redis being
    /// unreachable or refusing a command is no error: it is retried.
    pub fn publish(&mut self, synced: u64, now: u64, now_or_never: bool) -> anyhow::Result<()> {
        self.progress.pending = synced.saturating_sub(self.progress.offset);
        if self.progress.pending == 0 {
            return Ok(());
        }
        if self.con.is_none() {
            if now < self.retry_at && !now_or_never {
                return Ok(());
            }
            match self.connect() {
                Ok(c) => {
                    self.con = Some(c);
                    self.progress.connects += 1;
                    self.progress.state = RedisState::Up;
                    self.retry_wait = FIRST_RETRY_MS;
                }
                Err(e) => {
                    self.failed(format!("cannot connect: {e}"), now);
                    return Ok(());
                }
            }
        }
        let mut file = File::open(&self.path)?;
        while let Some(con) = self.con.as_mut() {
            let offset = self.progress.offset;
            if offset >= synced {
                break;
            }
            let len = (synced - offset).min(BATCH);
            let bytes = read_at(&mut file, offset, len)?;
            let mut next = self.splitter.clone();
            let mut split = Split::default();
            next.feed(&bytes, &mut split)?;
            next.flush(&mut split)?;
            match send(con, &self.name, &split) {
                Ok(sent) => {
                    self.progress.published.add(&sent);
                    self.progress.offset = offset + len;
                    self.splitter = next;
                }
                Err(e) => {
                    self.con = None;
                    self.failed(format!("{e:#}"), now);
                }
            }
        }
        self.progress.pending = synced.saturating_sub(self.progress.offset);
        Ok(())
    }

    /// Ends the run: what it did.
    pub fn into_progress(self) -> PublishProgress {
        self.progress
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(TIMEOUT)?;
        con.set_read_timeout(Some(TIMEOUT))?;
        con.set_write_timeout(Some(TIMEOUT))?;
        Ok(con)
    }

    fn failed(&mut self, error: String, now: u64) {
        self.progress.state = RedisState::Down;
        self.progress.last_error = Some(error);
        self.retry_at = now + self.retry_wait;
        self.retry_wait = (self.retry_wait * 2).min(MAX_RETRY_MS);
    }
}

/// `len` bytes of `file` from `offset`.
fn read_at(file: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.by_ref().take(len).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the capture ends before offset {}", offset + len),
        ));
    }
    Ok(bytes)
}
