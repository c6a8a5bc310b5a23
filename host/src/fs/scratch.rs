//! Scratch directories: what a run sets aside on disk for itself (the replay's spill, see
//! [`crate::engine::spill`]), in the system's temporary directory (`TMPDIR`).
//!
//! A spill can be as large as the log, so none may outlive its run. A scratch directory is
//! named `.mend-spill-PID-XXXXXX` and removed when dropped; the ones alive are also listed
//! here, so that [`remove_temporary_files`](crate::fs::remove_temporary_files) removes them
//! when an interrupt ends the process; and one left by a run killed outright (`SIGKILL`, a
//! power cut) is removed by the next run that makes one, once process PID is gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tempfile::TempDir;

use crate::fs::atomic::left_by_dead_processes;

/// The part of a scratch directory's name before the process id.
const PREFIX: &str = ".mend-spill-";

/// The scratch directories alive.
static ALIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn alive() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the list was held leaves it usable: it is only a list of paths.
    ALIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes every scratch directory of this process (on an interrupt, before it exits).
pub(crate) fn remove_scratch_dirs() {
    for dir in alive().drain(..) {
        let _ = fs::remove_dir_all(dir);
    }
}

/// A directory of this run's own, removed with everything in it when dropped.
///
/// # Examples
/// ```
/// let parent = tempfile::tempdir().unwrap();
/// let dir = mend::fs::ScratchDir::new_in(parent.path()).unwrap();
/// let path = dir.path().to_path_buf();
/// std::fs::write(path.join("run-0"), b"set aside").unwrap();
/// drop(dir);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct ScratchDir {
    dir: Option<TempDir>,
}

impl ScratchDir {
    /// A new scratch directory in the system's temporary directory.
    pub fn new() -> io::Result<Self> {
        Self::new_in(&std::env::temp_dir())
    }

    /// A new scratch directory in `parent`, after removing the ones there of processes that
    /// are gone.
    pub fn new_in(parent: &Path) -> io::Result<Self> {
        remove_stale(parent);
        // Made and listed under the lock, so that an interrupt cannot fall in between.
        let mut list = alive();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(parent)?;
        list.push(dir.path().to_path_buf());
        Ok(Self { dir: Some(dir) })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), TempDir::path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Removed before it is unlisted, under the lock, so that an interrupt in between
            // still finds it.
            let mut list = alive();
            let path = dir.path().to_path_buf();
            drop(dir);
            list.retain(|d| *d != path);
        }
    }
}

/// Removes the scratch directories in `parent` of processes that are gone: only directories
/// named `.mend-spill-PID-…`, only when no process PID runs.
fn remove_stale(parent: &Path) {
    for entry in left_by_dead_processes(parent, PREFIX, true) {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::atomic::names;

    #[test]
    fn a_scratch_directory_is_named_for_this_process_listed_and_removed_when_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let dir = ScratchDir::new_in(parent.path()).unwrap();
        let name = names(parent.path()).pop().unwrap();
        assert!(
            name.starts_with(&format!(".mend-spill-{}-", std::process::id())),
            "{name}"
        );
        assert!(alive().iter().any(|d| d == dir.path()));
        fs::write(dir.path().join("merged"), b"x").unwrap();
        drop(dir);
        assert!(names(parent.path()).is_empty());
        assert!(!alive().iter().any(|d| d.starts_with(parent.path())));
    }

    #[test]
    fn only_scratch_directories_of_dead_processes_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        // No process has this id (above the kernel's largest pid_max).
        let dead = ".mend-spill-4194305-a1b2c3";
        let mine = format!(".mend-spill-{}-a1b2c3", std::process::id());
        let kept = [
            mine.as_str(),
            // Named without a process id (an older mend): whose it was cannot be told.
            ".mend-spill-a1b2c3",
            ".mend-spill-12x-a1b2c3",
            ".mend-spill--a1b2c3",
        ];
        for n in std::iter::once(dead).chain(kept) {
            fs::create_dir(parent.path().join(n)).unwrap();
            fs::write(parent.path().join(n).join("merged"), b"x").unwrap();
        }
        // A file of that name pattern is not a scratch directory.
        fs::write(parent.path().join(".mend-spill-4194305-file"), b"x").unwrap();
        let made = ScratchDir::new_in(parent.path()).unwrap();
        let made_name = made
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut want: Vec<String> = kept.iter().map(|k| k.to_string()).collect();
        want.push(".mend-spill-4194305-file".into());
        want.push(made_name);
        want.sort();
        assert_eq!(names(parent.path()), want);
    }
}
