//! Outputs that appear whole or not at all.
//!
//! Everything is written to a temporary file next to the destination, synced, and renamed
//! over it at the end, so a crash or a full disk never leaves a half-written CSV that looks
//! finished, and an input is never opened for writing. The temporary file is a `tempfile`
//! one (removed when dropped, renamed by `persist`), named `.NAME.mend-tmp-PID` so that a
//! later run can tell whose it was; the files not yet committed are also listed here, so
//! that a signal handler can remove them before the process exits.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::Context;
use tempfile::TempPath;

use crate::fs::background::{BackgroundWriter, Block, BlockWrite, SYNC_EVERY};

/// The temporary files of [`AtomicFile`]s not yet committed or dropped.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the list was held leaves it usable: it is only a list of paths.
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes the temporary file of every [`AtomicFile`] not yet committed and every
/// [`ScratchDir`](crate::fs::ScratchDir), so that an interrupted run leaves nothing behind:
/// its outputs never appear, no half-written `.NAME.mend-tmp-PID` file stays next to them,
/// and no spill stays in the temporary directory. `mend` calls it on Ctrl-C and on
/// termination signals, then exits.
pub fn remove_temporary_files() {
    for tmp in pending().drain(..) {
        let _ = fs::remove_file(tmp);
    }
    crate::fs::scratch::remove_scratch_dirs();
}

/// The part of a temporary file's name before the process id: `.NAME.mend-tmp-`.
fn temporary_prefix(name: &str) -> String {
    format!(".{name}.mend-tmp-")
}

/// True when no process `pid` runs; false when one does or it cannot be told (no `/proc`).
fn is_dead(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Removes the `.NAME.mend-tmp-PID` files in `dir` of the output `name` that a run which
/// was killed outright (`SIGKILL`, a power cut) left behind: only files of that exact
/// pattern, only when process PID is gone. A file of a run still going is left alone.
fn remove_stale_temporary_files(dir: &Path, name: &OsStr) {
    let Some(name) = name.to_str() else {
        return;
    };
    for entry in left_by_dead_processes(dir, &temporary_prefix(name), false) {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The entries of `dir` named `prefix`, then the id of a process that is not this one and
/// no longer runs, then nothing (or, with `suffixed`, `-` and anything).
pub(crate) fn left_by_dead_processes(
    dir: &Path,
    prefix: &str,
    suffixed: bool,
) -> Vec<fs::DirEntry> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let owner = |name: &str| -> Option<u32> {
        let rest = name.strip_prefix(prefix)?;
        let pid = if suffixed {
            rest.split_once('-')?.0
        } else {
            rest
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        pid.parse().ok()
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(owner)
                .is_some_and(|pid| pid != std::process::id() && is_dead(pid))
        })
        .collect()
}

/// The names in `dir`, sorted (for tests).
#[cfg(test)]
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Creates `.NAME.mend-tmp-PID` in `dir` and lists it in [`PENDING`], both under the lock,
/// so that an interrupt cannot fall in between.
///
/// The file is made by [`File::create`] (not `tempfile`'s own open), so that it has the
/// permissions of any other output and an error reads as before; a file of that name left
/// by an earlier process with the same id is overwritten.
fn create_temporary(dir: &Path, name: &OsStr) -> io::Result<(File, TempPath)> {
    let prefix = temporary_prefix(&name.to_string_lossy());
    let pid = std::process::id().to_string();
    let mut list = pending();
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(&pid)
        .rand_bytes(0)
        .make_in(dir, |path| {
            let file = File::create(path)?;
            list.push(path.to_path_buf());
            Ok(file)
        })?;
    Ok(tmp.into_parts())
}

/// True when an [`AtomicFile`] at `dest` would be written in place rather than renamed into
/// place: `dest` exists and is not a regular file (`/dev/stdout`, a FIFO, a terminal, a
/// device). What is written there cannot be taken back.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(!mend::fs::writes_in_place(&dir.path().join("out.csv")));
/// assert!(mend::fs::writes_in_place(std::path::Path::new("/dev/null")));
/// ```
pub fn writes_in_place(dest: &Path) -> bool {
    names_a_descriptor(dest) || fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The links `dest` goes through, each as the path it names, `dest` first and the path it
/// ends at last (at most 40 links, as the kernel follows).
fn link_chain(dest: &Path) -> Vec<PathBuf> {
    let mut chain = vec![dest.to_path_buf()];
    let mut at = dest.to_path_buf();
    for _ in 0..40 {
        let Ok(target) = fs::read_link(&at) else {
            break;
        };
        at = match at.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
        chain.push(at.clone());
    }
    chain
}

/// True when `dest` names an open file descriptor rather than a file: `/dev/stdout`,
/// `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`, or a link to one. What is behind it (a
/// pipe, a terminal, or a regular file the shell opened, maybe for appending) is written
/// through the descriptor, never replaced.
fn names_a_descriptor(dest: &Path) -> bool {
    link_chain(dest).iter().any(|p| {
        p.parent()
            .and_then(|dir| dir.canonicalize().ok())
            .is_some_and(|dir| dir.starts_with("/proc") && dir.ends_with("fd"))
    })
}

/// The file a path that is not a descriptor ends at after its links: the one to replace, so
/// that a link to an output stays a link.
fn link_target(dest: &Path) -> PathBuf {
    link_chain(dest).pop().unwrap_or_else(|| dest.to_path_buf())
}

/// Opens the file behind a descriptor path for writing in place: standard output and error
/// through their own descriptors (sharing the shell's offset, so `>>` appends), others by
/// their path.
fn open_in_place(dest: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(m) = fs::metadata(dest) {
            let same = |f: io::Result<File>| {
                f.and_then(|f| f.metadata())
                    .is_ok_and(|s| same_inode(&s, &m))
            };
            let stdout = || {
                std::io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map(File::from)
            };
            let stderr = || {
                std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .map(File::from)
            };
            if names_a_descriptor(dest) {
                if same(stdout()) {
                    return stdout();
                }
                if same(stderr()) {
                    return stderr();
                }
            }
        }
    }
    fs::OpenOptions::new().write(true).open(dest)
}

#[cfg(unix)]
fn same_inode(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// True when what is written to `dest` is thrown away unseen: `dest` is the null device
/// (`/dev/null`, or another name for it). Writing to it twice is the same as writing once,
/// so it can be written in place without being taken back.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(mend::fs::discards(std::path::Path::new("/dev/null")));
/// assert!(!mend::fs::discards(&dir.path().join("out.csv")));
/// ```
pub fn discards(dest: &Path) -> bool {
    fs::metadata(dest).is_ok_and(|m| is_null_device(&m))
}

/// True when standard output is the null device (`> /dev/null`).
pub fn stdout_discards() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| is_null_device(&m))
    }
    #[cfg(not(unix))]
    false
}

/// The null device is a character device with the same device number as `/dev/null`.
fn is_null_device(m: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        m.file_type().is_char_device()
            && fs::metadata("/dev/null").is_ok_and(|null| null.rdev() == m.rdev())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        false
    }
}

/// A file that appears at its path only when [`AtomicFile::commit`] succeeds.
///
/// It is written on a thread of its own ([`BackgroundWriter`]), and synced as it grows.
///
/// A destination that exists and is not a regular file (`/dev/null`, a FIFO, a terminal), or
/// that names an open descriptor (`/dev/stdout`, even when the shell sent it to a file), is
/// written in place instead: renaming over it would replace the device or the link. A link
/// to a file stays a link: the file it ends at is replaced.
///
/// # Examples
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// let mut f = mend::fs::AtomicFile::create(&path).unwrap();
/// f.write_all(b"hello\n").unwrap();
/// assert!(!path.exists(), "nothing there before the commit");
/// f.commit().unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");
/// ```
pub struct AtomicFile {
    /// The path given, named in messages.
    dest: PathBuf,
    /// The file replaced at the commit: `dest`, or the file its links end at.
    target: PathBuf,
    /// The temporary file, or `None` when writing in place.
    tmp: Option<TempPath>,
    w: Option<BackgroundWriter>,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest`. Fails, naming the path, when the
    /// directory does not exist or is not writable.
    pub fn create(dest: &Path) -> anyhow::Result<Self> {
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file path", dest.display()))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dest.is_dir() {
            anyhow::bail!("{}: is a directory", dest.display());
        }
        if writes_in_place(dest) {
            let file = open_in_place(dest)
                .with_context(|| format!("{}: cannot write output", dest.display()))?;
            return Ok(Self {
                dest: dest.to_path_buf(),
                target: dest.to_path_buf(),
                tmp: None,
                w: Some(BackgroundWriter::new(file, None)),
            });
        }
        // A link to an output stays a link: the file it ends at is the one replaced.
        let target = link_target(dest);
        let (dir, name) = if target == dest {
            (dir, name)
        } else {
            let dir = match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = target
                .file_name()
                .with_context(|| format!("{}: not a file path", target.display()))?;
            (dir, name)
        };
        remove_stale_temporary_files(&dir, name);
        let (file, tmp) = create_temporary(&dir, name)
            .with_context(|| format!("{}: cannot write output", dest.display()))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            target: dir.join(name),
            tmp: Some(tmp),
            // Synced as it grows, so that the sync before the rename has little left to do.
            w: Some(BackgroundWriter::new(file, Some(SYNC_EVERY))),
        })
    }

    /// The destination path.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs to disk and renames the file into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let dest = self.dest.clone();
        let w = self.w.take().context("output already committed")?;
        let file = w
            .finish()
            .with_context(|| format!("{}: cannot write output", dest.display()))?;
        let Some(listed) = self.tmp.as_deref().map(Path::to_path_buf) else {
            return Ok(());
        };
        file.sync_all()
            .with_context(|| format!("{}: cannot sync output", dest.display()))?;
        // An interrupt removes the file either before the rename (which then fails) or
        // not at all.
        let mut list = pending();
        let Some(at) = list.iter().position(|t| *t == listed) else {
            anyhow::bail!("{}: interrupted", dest.display());
        };
        let tmp = self.tmp.take().context("output already committed")?;
        // On failure the temporary file comes back and is removed here, still under the lock.
        let moved = tmp.persist(&self.target).map_err(|e| e.error);
        list.swap_remove(at);
        drop(list);
        moved.with_context(|| format!("{}: cannot move output into place", dest.display()))
    }
}

impl AtomicFile {
    /// Runs `op` on the writer; an error names the destination.
    fn with_writer<T>(
        &mut self,
        op: impl FnOnce(&mut BackgroundWriter) -> io::Result<T>,
    ) -> io::Result<T> {
        let w = self
            .w
            .as_mut()
            .ok_or_else(|| io::Error::other("output already committed"))?;
        op(w).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.dest.display())))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with_writer(|w| w.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with_writer(|w| w.write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.w {
            Some(_) => self.with_writer(Write::flush),
            None => Ok(()),
        }
    }
}

impl BlockWrite for AtomicFile {
    fn write_block(&mut self, block: &mut Block) -> io::Result<()> {
        self.with_writer(|w| w.write_block(block))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            // Removed before it is unlisted, so that an interrupt in between still finds it.
            let path = tmp.to_path_buf();
            drop(tmp);
            pending().retain(|t| *t != path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_the_null_device_throws_its_bytes_away() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("nothing");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(discards(Path::new("/dev/null")) && discards(&link));
        for kept in [Path::new("/dev/zero"), &fifo, dir.path()] {
            assert!(!discards(kept), "{}", kept.display());
        }
        assert!(writes_in_place(&fifo) && writes_in_place(Path::new("/dev/zero")));
    }

    #[test]
    fn the_temporary_file_is_named_for_this_process_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::create(&dir.path().join("out.csv")).unwrap();
        let tmp = format!(".out.csv.mend-tmp-{}", std::process::id());
        assert_eq!(names(dir.path()), std::slice::from_ref(&tmp));
        assert!(pending().iter().any(|p| p.ends_with(&tmp)));
        drop(f);
        assert!(names(dir.path()).is_empty(), "dropped: nothing stays");
        assert!(!pending().iter().any(|p| p.starts_with(dir.path())));
    }

    #[test]
    fn a_failed_rename_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"x").unwrap();
        // A directory appears where the file was to go: the rename fails.
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("keep"), b"").unwrap();
        let e = format!("{:#}", f.commit().unwrap_err());
        assert!(e.contains("cannot move output into place"), "{e}");
        assert_eq!(names(dir.path()), ["out.csv"]);
        assert!(!pending().iter().any(|p| p.starts_with(dir.path())));
    }

    #[test]
    fn only_temporary_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has this id (above the kernel's largest pid_max).
        let dead = ".out.csv.mend-tmp-4194305";
        let mine = format!(".out.csv.mend-tmp-{}", std::process::id());
        for n in [
            dead,
            &mine,
            ".other.csv.mend-tmp-4194305",
            ".out.csv.mend-tmp-",
            ".out.csv.mend-tmp-12x",
        ] {
            fs::write(dir.path().join(n), b"partial").unwrap();
        }
        remove_stale_temporary_files(dir.path(), OsStr::new("out.csv"));
        let mut want = vec![
            ".other.csv.mend-tmp-4194305".to_string(),
            ".out.csv.mend-tmp-".to_string(),
            ".out.csv.mend-tmp-12x".to_string(),
            mine,
        ];
        want.sort();
        assert_eq!(names(dir.path()), want);
    }

    #[test]
    fn an_interrupt_before_the_commit_removes_the_file_and_fails_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"x").unwrap();
        // Only this test's file: the others run in parallel.
        let mut list = pending();
        let at = list.iter().position(|p| p.starts_with(dir.path())).unwrap();
        fs::remove_file(list.swap_remove(at)).unwrap();
        drop(list);
        let e = format!("{:#}", f.commit().unwrap_err());
        assert!(e.ends_with("out.csv: interrupted"), "{e}");
        assert!(names(dir.path()).is_empty());
    }
}
