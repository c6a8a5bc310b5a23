//! Where outputs go, and the checks that keep a replay from writing into its input: an
//! output path that is an input (by name, link or hard link), the file standard input
//! reads, a standard output redirected into an input, or an output given twice.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use same_file::Handle;

use crate::fs::background::{Block, BlockWrite};
use crate::fs::AtomicFile;
use crate::input::InputSource;

/// The identity of the regular file at `p`, if there is one. Anything else (a FIFO, a
/// device) is never opened: opening a FIFO would wait for, or cut off, its writer.
fn file_handle(p: &Path) -> Option<Handle> {
    if !fs::metadata(p).ok()?.is_file() {
        return None;
    }
    Handle::from_path(p).ok()
}

/// The identity of a standard stream, when it is a regular file (`< capture`, `> out`).
fn std_handle(h: io::Result<Handle>) -> Option<Handle> {
    let h = h.ok()?;
    h.as_file().metadata().ok()?.is_file().then_some(h)
}

/// True when `a` and `b` name the same file (or would, once created).
///
/// # Examples
/// ```
/// use mend::replay::outputs::same_path;
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.mlog"), b"")?;
/// std::fs::hard_link(dir.path().join("a.mlog"), dir.path().join("b.mlog"))?;
/// assert!(same_path(&dir.path().join("a.mlog"), &dir.path().join("b.mlog")));
/// assert!(same_path(&dir.path().join("new.csv"), &dir.path().join(".").join("new.csv")));
/// assert!(!same_path(&dir.path().join("a.mlog"), &dir.path().join("new.csv")));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn same_path(a: &Path, b: &Path) -> bool {
    fn resolve(p: &Path) -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let name = p.file_name()?;
        let parent = match p.parent() {
            Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(parent.canonicalize().ok()?.join(name))
    }
    if let (Some(x), Some(y)) = (file_handle(a), file_handle(b)) {
        if x == y {
            return true;
        }
    }
    // Anything else that exists (a pipe, a terminal) by its identity, found without opening
    // it: `/dev/stdout` and a link to `/proc/self/fd/1` are the same pipe. The null device
    // keeps nothing, so it may take two outputs.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
            if x.dev() == y.dev() && x.ino() == y.ino() && !crate::fs::discards(a) {
                return true;
            }
        }
    }
    match (resolve(a), resolve(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Refuses outputs that are inputs (by path, or the file behind standard input), a
/// standard output that is an input file, and outputs given twice. Each output is named
/// by the option that gave it (`-o`, `--dlq`, …) in the messages.
///
/// # Errors
/// The first such clash, naming the file and the option.
pub fn check_outputs(
    sources: &[InputSource],
    outputs: &[(&str, &Path)],
    stdout_is_output: bool,
) -> anyhow::Result<()> {
    for (flag, out) in outputs {
        for s in sources {
            if let InputSource::Path(p) = s {
                if same_path(p, out) {
                    bail!(
                        "{}: {flag} would overwrite an input; mend never writes into its input",
                        out.display()
                    );
                }
            }
        }
    }
    let stdin = || std_handle(Handle::stdin());
    if sources.contains(&InputSource::Stdin) {
        if let Some(stdin) = stdin() {
            for (flag, out) in outputs {
                if file_handle(out).as_ref() == Some(&stdin) {
                    bail!(
                        "{}: {flag} is the file standard input reads; mend never writes into its input",
                        out.display()
                    );
                }
            }
        }
    }
    if stdout_is_output {
        if let Some(stdout) = std_handle(Handle::stdout()) {
            for s in sources {
                let input = match s {
                    InputSource::Path(p) => file_handle(p),
                    InputSource::Stdin => stdin(),
                    InputSource::Bytes(_) => None,
                };
                if input.as_ref() == Some(&stdout) {
                    bail!(
                        "{}: standard output is this input; mend never writes into its input",
                        s.name()
                    );
                }
            }
        }
    }
    for (i, (fa, a)) in outputs.iter().enumerate() {
        for (fb, b) in outputs.iter().skip(i + 1) {
            if same_path(a, b) {
                bail!("{}: given to both {fa} and {fb}", a.display());
            }
        }
    }
    Ok(())
}

/// Fails when standard output is closed (`>&-`): the output would vanish with a success.
/// A pipe whose reader quit (`| head -1`) is open; its broken pipe ends the run as a success.
///
/// On Linux the Rust runtime puts `/dev/null` (opened for reading and writing) in place of
/// a closed standard output before `main`, so that is what a closed one looks like; a
/// `>/dev/null` of the shell opens it for writing only, and stays a success.
///
/// # Errors
/// Standard output is closed.
pub fn check_stdout_open() -> anyhow::Result<()> {
    const HINT: &str = "give -o FILE, or redirect it";
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Err(e) = io::stdout().as_fd().try_clone_to_owned() {
            bail!("standard output is closed ({e}): {HINT}");
        }
    }
    if stdout_replaced_by_the_runtime() {
        bail!("standard output is closed: {HINT}");
    }
    Ok(())
}

/// True when standard output is the `/dev/null` the Rust runtime opened (read-write) for a
/// closed one; false when it cannot be told (no `/proc`).
fn stdout_replaced_by_the_runtime() -> bool {
    let is_null = fs::read_link("/proc/self/fd/1").is_ok_and(|t| t == Path::new("/dev/null"));
    let read_write = || {
        fs::read_to_string("/proc/self/fdinfo/1").is_ok_and(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                // O_ACCMODE is 0o3, O_RDWR 0o2.
                .is_some_and(|flags| flags & 0o3 == 0o2)
        })
    };
    is_null && read_write()
}

/// Where the main output goes: a file that appears whole at the end, or standard output.
pub enum MainOut {
    /// A file, put in place by [`MainOut::finish`].
    File(AtomicFile),
    /// Standard output, buffered.
    Stdout(BufWriter<io::Stdout>),
    /// Nothing (a first pass whose records cannot be taken back).
    Discard,
}

impl MainOut {
    /// The file at `path`, or standard output for none or `-`.
    ///
    /// # Errors
    /// The file cannot be created, or standard output is closed.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        Ok(match path {
            Some(p) if p.as_os_str() != "-" => MainOut::File(AtomicFile::create(p)?),
            _ => {
                check_stdout_open()?;
                MainOut::Stdout(BufWriter::with_capacity(1 << 20, io::stdout()))
            }
        })
    }

    /// Puts a file in place, or flushes standard output.
    ///
    /// # Errors
    /// The last bytes cannot be written, synced or renamed into place.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            MainOut::File(f) => f.commit(),
            MainOut::Stdout(mut s) => s.flush().context("cannot write to standard output"),
            MainOut::Discard => Ok(()),
        }
    }
}

impl BlockWrite for MainOut {
    fn write_block(&mut self, block: &mut Block) -> io::Result<()> {
        match self {
            MainOut::File(f) => f.write_block(block),
            MainOut::Stdout(s) => s.write_block(block),
            MainOut::Discard => {
                block.clear();
                Ok(())
            }
        }
    }
}

impl Write for MainOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MainOut::File(f) => f.write(buf),
            MainOut::Stdout(s) => s.write(buf),
            MainOut::Discard => Ok(buf.len()),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            MainOut::File(f) => f.write_all(buf),
            MainOut::Stdout(s) => s.write_all(buf),
            MainOut::Discard => Ok(()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            MainOut::File(f) => f.flush(),
            MainOut::Stdout(s) => s.flush(),
            MainOut::Discard => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_is_an_input_or_given_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mlog");
        std::fs::write(&input, b"").unwrap();
        let link = dir.path().join("link.mlog");
        std::fs::hard_link(&input, &link).unwrap();
        let sources = [InputSource::Path(input.clone())];
        let e = check_outputs(&sources, &[("--dlq", &link)], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: --dlq would overwrite an input; mend never writes into its input",
                link.display()
            )
        );
        let out = dir.path().join("out.csv");
        let e = check_outputs(&sources, &[("-o", &out), ("--chart", &out)], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: given to both -o and --chart", out.display())
        );
        check_outputs(&sources, &[("-o", &out)], false).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_compared_by_name_and_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        // Opening the FIFO for reading would block here: no writer ever comes.
        assert!(!same_path(&fifo, &dir.path().join("out.csv")));
        assert!(same_path(&fifo, &dir.path().join(".").join("pipe")));
    }
}
