//! The capture a gateway appends to: bytes exactly as the link delivered them, made durable
//! before anything is acknowledged.
//!
//! A capture is only ever appended to, so an earlier run's frames (and a crash's torn last
//! frame) stay as they were. A frame is ended by `0x00`; when the file or a dropped link ends
//! inside a frame, a delimiter is written first, so the torn frame is skipped as one damaged
//! span and the frames after it decode as they arrived.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An append-only capture file.
#[derive(Debug)]
pub struct Capture {
    file: File,
    path: PathBuf,
    /// The size of the file before this run.
    start_len: u64,
    /// Bytes appended by this run, delimiters included.
    appended: u64,
    /// Bytes appended and not yet synced.
    unsynced: bool,
    /// The size of the file at the last sync: bytes up to here are on disk.
    synced_len: u64,
    /// The file ends with a frame delimiter (or is empty).
    at_boundary: bool,
}

impl Capture {
    /// Opens (or creates) the capture for appending. A file that does not end with a
    /// delimiter gets one, durably, before anything else.
    pub fn open(path: &Path) -> io::Result<Self> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let start_len = file.metadata()?.len();
        let mut at_boundary = true;
        if start_len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(start_len - 1))?;
            file.read_exact(&mut last)?;
            at_boundary = last[0] == 0;
        }
        let mut capture = Self {
            file,
            path: path.to_path_buf(),
            start_len,
            appended: 0,
            unsynced: false,
            synced_len: start_len,
            at_boundary,
        };
        capture.seal()?;
        capture.sync()?;
        if !existed {
            sync_parent(path)?;
        }
        Ok(capture)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size of the file when it was opened, before any delimiter this run added.
    pub fn start_len(&self) -> u64 {
        self.start_len
    }

    /// Bytes this run appended.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Appends bytes as received (not yet durable: see [`sync`](Self::sync)).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(&last) = bytes.last() {
            self.file.write_all(bytes)?;
            self.appended += bytes.len() as u64;
            self.unsynced = true;
            self.at_boundary = last == 0;
        }
        Ok(())
    }

    /// Ends a torn frame (the link dropped inside one) with a delimiter.
    pub fn seal(&mut self) -> io::Result<()> {
        if !self.at_boundary {
            self.append(&[0])?;
        }
        Ok(())
    }

    /// Makes everything appended durable; true when there was something to sync.
    pub fn sync(&mut self) -> io::Result<bool> {
        if !self.unsynced {
            return Ok(false);
        }
        self.file.sync_data()?;
        self.unsynced = false;
        self.synced_len = self.start_len + self.appended;
        Ok(true)
    }

    /// The size of the file at the last sync: the bytes on disk.
    pub fn synced_len(&self) -> u64 {
        self.synced_len
    }

    /// True when bytes were appended since the last [`sync`](Self::sync).
    pub fn is_dirty(&self) -> bool {
        self.unsynced
    }
}

/// Makes a new file's directory entry durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Directories can be opened and synced on Unix; elsewhere this is best effort.
    match File::open(parent) {
        Ok(dir) => dir.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_frame_gets_a_delimiter_and_nothing_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.mlog");
        std::fs::write(&p, [1, 2, 0, 3, 4]).unwrap();
        let mut c = Capture::open(&p).unwrap();
        assert_eq!(c.start_len(), 5);
        assert_eq!(c.synced_len(), 6, "the delimiter is synced at once");
        c.append(&[5, 0]).unwrap();
        assert_eq!(c.synced_len(), 6);
        assert!(c.sync().unwrap());
        assert_eq!(c.synced_len(), 8);
        assert!(!c.sync().unwrap(), "nothing new");
        assert_eq!(std::fs::read(&p).unwrap(), [1, 2, 0, 3, 4, 0, 5, 0]);
    }

    #[test]
    fn a_capture_ending_on_a_delimiter_is_continued_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.mlog");
        std::fs::write(&p, [1, 0]).unwrap();
        let mut c = Capture::open(&p).unwrap();
        c.append(&[7, 7]).unwrap();
        c.seal().unwrap();
        c.seal().unwrap();
        assert_eq!(c.appended(), 3);
        drop(c);
        assert_eq!(std::fs::read(&p).unwrap(), [1, 0, 7, 7, 0]);
    }
}
