//! Writing a file on a thread of its own, with its disk sync overlapped with the work.
//!
//! A replay formats hundreds of megabytes of rows. Handing each full block to a writer
//! thread keeps the `write` system calls (copying into the page cache) off the thread that
//! formats; and syncing the file every [`SYNC_EVERY`] bytes, from yet another thread, means
//! that the final sync before an output is renamed into place (see
//! [`AtomicFile`](crate::fs::AtomicFile)) waits for the last few megabytes only, not
//! for the whole file.

use std::fs::File;
use std::io::{self, Write};
use std::mem;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

/// The size of a block handed to the writer thread.
pub const BLOCK: usize = 1 << 20;
/// Room past [`BLOCK`] in every [`Block`], so that a row can be formatted in place before
/// the block is found full.
pub const SLACK: usize = 4096;
/// Full blocks that may wait for the writer thread; a writer that falls behind makes the
/// caller wait, so memory stays bounded.
pub const QUEUE: usize = 4;
/// Bytes written between two background syncs of a file that will be synced at the end.
pub const SYNC_EVERY: u64 = 32 << 20;

/// A buffer of output bytes: [`BLOCK`] + [`SLACK`] initialised bytes, of which the first
/// [`Block::filled`] are data. Blocks are handed between threads whole and reused, so bytes
/// are formatted where they will be written from and never copied on the way.
///
/// # Examples
/// ```
/// use mend::fs::background::Block;
/// let mut b = Block::new();
/// b.spare()[..3].copy_from_slice(b"abc");
/// b.advance(3)?;
/// assert_eq!(b.filled(), b"abc");
/// assert!(!b.is_full());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Block {
    buf: Vec<u8>,
    used: usize,
}

impl Default for Block {
    fn default() -> Self {
        Self::new()
    }
}

impl Block {
    /// An empty block.
    pub fn new() -> Self {
        Self {
            buf: vec![0; BLOCK + SLACK],
            used: 0,
        }
    }

    /// A block without a buffer, to stand in for one that is away.
    const fn none() -> Self {
        Self {
            buf: Vec::new(),
            used: 0,
        }
    }

    /// The data.
    pub fn filled(&self) -> &[u8] {
        self.buf.get(..self.used).unwrap_or_default()
    }

    /// The room after the data (at least [`SLACK`] bytes until the block is full).
    pub fn spare(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.used..).unwrap_or_default()
    }

    /// Counts `n` more bytes of [`Block::spare`] as data. More than the spare room is an
    /// error, and nothing is counted.
    ///
    /// # Examples
    /// ```
    /// use mend::fs::background::{Block, BLOCK, SLACK};
    /// let mut b = Block::new();
    /// assert!(b.advance(BLOCK + SLACK + 1).is_err());
    /// assert!(b.is_empty());
    /// ```
    #[inline]
    pub fn advance(&mut self, n: usize) -> io::Result<()> {
        let end = self.used + n;
        if end > self.buf.len() {
            return Err(self.no_room(n));
        }
        self.used = end;
        Ok(())
    }

    /// The error of [`Block::advance`], out of the way of the path that fits.
    #[cold]
    #[inline(never)]
    fn no_room(&self, n: usize) -> io::Error {
        let room = self.buf.len().saturating_sub(self.used);
        io::Error::other(format!(
            "{n} bytes counted into an output block with room for {room}"
        ))
    }

    /// True once the data reaches [`BLOCK`] bytes.
    pub fn is_full(&self) -> bool {
        self.used >= BLOCK
    }

    /// True when there is no data.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Forgets the data.
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// Copies as much of `bytes` as fits below [`BLOCK`]; returns how much that was.
    fn append(&mut self, bytes: &[u8]) -> usize {
        let n = BLOCK.saturating_sub(self.used).min(bytes.len());
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.used..self.used + n), bytes.get(..n))
        {
            dst.copy_from_slice(src);
            self.used += n;
        }
        n
    }
}

/// A writer that can take a whole [`Block`]: the default copies it out with `write_all`; a
/// [`BackgroundWriter`] swaps it for an empty one instead, without copying.
pub trait BlockWrite: Write {
    /// Writes the block's data and leaves `block` empty (not necessarily the same buffer).
    fn write_block(&mut self, block: &mut Block) -> io::Result<()> {
        self.write_all(block.filled())?;
        block.clear();
        Ok(())
    }
}

impl BlockWrite for Vec<u8> {}

impl<W: Write> BlockWrite for io::BufWriter<W> {}

impl<W: BlockWrite + ?Sized> BlockWrite for &mut W {
    fn write_block(&mut self, block: &mut Block) -> io::Result<()> {
        (**self).write_block(block)
    }
}

/// A [`Write`] that writes a [`File`] on a thread of its own.
///
/// Bytes are gathered into blocks of [`BLOCK`] bytes; [`Write::flush`] hands the partial
/// block to the thread, and [`BackgroundWriter::finish`] waits until everything is written
/// and gives the file back. A write error on the thread is returned by the next call.
///
/// # Examples
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
/// let file = std::fs::File::create(&path).unwrap();
/// let mut w = mend::fs::background::BackgroundWriter::new(file, None);
/// w.write_all(b"hello\n").unwrap();
/// w.finish().unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");
/// ```
pub struct BackgroundWriter {
    block: Block,
    tx: Option<SyncSender<Block>>,
    free: Receiver<Block>,
    thread: Option<JoinHandle<io::Result<File>>>,
}

impl BackgroundWriter {
    /// Starts the writer thread for `file`. With `sync_every`, the file's data is synced in
    /// the background each time that many more bytes were written.
    pub fn new(file: File, sync_every: Option<u64>) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Block>(QUEUE);
        let (free_tx, free) = mpsc::channel::<Block>();
        let thread = thread::spawn(move || write_blocks(file, &rx, &free_tx, sync_every));
        Self {
            block: Block::new(),
            tx: Some(tx),
            free,
            thread: Some(thread),
        }
    }

    /// Sends `block` to the thread and leaves an empty one in its place.
    fn send(&mut self, block: &mut Block) -> io::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_else(|_| Block::new());
        let full = mem::replace(block, next);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(full).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    /// Hands the current block to the thread.
    fn ship(&mut self) -> io::Result<()> {
        // An empty stand-in while the block is away: no allocation.
        let mut block = mem::replace(&mut self.block, Block::none());
        let sent = self.send(&mut block);
        self.block = block;
        sent
    }

    /// The thread is gone: its error, once; afterwards a plain "stopped".
    fn stopped(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the output writer thread panicked"),
            _ => io::Error::other("the output writer stopped after an earlier error"),
        }
    }

    /// Writes what is left, waits for the thread and returns the file.
    pub fn finish(mut self) -> io::Result<File> {
        self.ship()?;
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the output writer thread panicked")),
            None => Err(io::Error::other(
                "the output writer stopped after an earlier error",
            )),
        }
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.block.append(buf);
            buf = buf.get(n..).unwrap_or_default();
            if self.block.is_full() {
                self.ship()?;
            }
        }
        Ok(())
    }

    /// Hands the buffered bytes to the writer thread (see [`BackgroundWriter::finish`]).
    fn flush(&mut self) -> io::Result<()> {
        self.ship()
    }
}

impl BlockWrite for BackgroundWriter {
    fn write_block(&mut self, block: &mut Block) -> io::Result<()> {
        // Bytes written before come first.
        self.ship()?;
        self.send(block)
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        // Unfinished (an error elsewhere): let the thread drain and stop.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: blocks in, written in order, buffers back for reuse.
fn write_blocks(
    mut file: File,
    rx: &Receiver<Block>,
    free: &Sender<Block>,
    sync_every: Option<u64>,
) -> io::Result<File> {
    let mut syncer: Option<Syncer> = None;
    let (mut written, mut kicked) = (0u64, 0u64);
    for mut block in rx {
        file.write_all(block.filled())?;
        written += block.filled().len() as u64;
        if let Some(every) = sync_every {
            if written - kicked >= every {
                kicked = written;
                if syncer.is_none() {
                    syncer = Some(Syncer::start(file.try_clone()?));
                }
                if let Some(s) = &syncer {
                    s.kick();
                }
            }
        }
        block.clear();
        // The owner may be gone (it failed elsewhere); the block is then just dropped.
        let _ = free.send(block);
    }
    if let Some(s) = syncer {
        s.stop()?;
    }
    Ok(file)
}

/// Syncs a file's data on request, on a thread of its own, so that writing never waits for
/// the disk. Requests that arrive while a sync runs are merged into the next one.
struct Syncer {
    kick: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl Syncer {
    fn start(file: File) -> Self {
        let (kick, rx) = mpsc::sync_channel::<()>(1);
        let thread = thread::spawn(move || {
            for () in rx {
                file.sync_data()?;
            }
            Ok(())
        });
        Self { kick, thread }
    }

    fn kick(&self) {
        // Full: a sync is already asked for, and it will cover these bytes too.
        let _ = self.kick.try_send(());
    }

    fn stop(self) -> io::Result<()> {
        drop(self.kick);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the output sync thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_writes_arrive_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let mut w = BackgroundWriter::new(File::create(&path).unwrap(), Some(3 * BLOCK as u64));
        let mut want = Vec::new();
        let mut block = Block::new();
        for i in 0..5_000u32 {
            // Pieces of every size, some larger than a block, some handed over as blocks.
            let len = if i % 997 == 0 {
                BLOCK + 17
            } else {
                (i as usize * 31) % 700
            };
            let piece: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            if i % 7 == 0 && len <= SLACK {
                block.spare()[..len].copy_from_slice(&piece);
                block.advance(len).unwrap();
                w.write_block(&mut block).unwrap();
                assert!(block.is_empty());
            } else {
                w.write_all(&piece).unwrap();
            }
            want.extend_from_slice(&piece);
        }
        w.flush().unwrap();
        let file = w.finish().unwrap();
        file.sync_all().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    #[test]
    fn counting_more_than_the_room_is_an_error() {
        let mut block = Block::new();
        block.advance(BLOCK).unwrap();
        let e = block.advance(SLACK + 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} bytes counted into an output block with room for {SLACK}",
                SLACK + 1
            )
        );
        assert_eq!(block.filled().len(), BLOCK, "nothing counted");
        block.advance(SLACK).unwrap();
        assert!(block.spare().is_empty());
    }

    #[test]
    fn a_write_error_on_the_thread_reaches_the_caller() {
        // /dev/full takes the open but fails every write with "no space left".
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut w = BackgroundWriter::new(full, None);
        let mut failed = None;
        for _ in 0..(QUEUE + 4) {
            if let Err(e) = w.write_all(&vec![7u8; BLOCK]) {
                failed = Some(e);
                break;
            }
        }
        let err = match failed {
            Some(e) => e,
            None => w.finish().unwrap_err(),
        };
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
    }
}
