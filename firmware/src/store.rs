//! The store node's flash: the boot counter that numbers its sessions, and the log that
//! keeps every reading and fault frame until the gateway acknowledges it.
//!
//! Both are sequential-storage queues on the [`FileFlash`], in ranges of their own
//! ([`BOOT_PAGES`], then the log). sequential-storage is written for power loss at any
//! point: an item whose write was cut short fails its CRC and is passed over, and a page
//! whose erase or close was cut short is repaired on the next access.
//!
//! # The boot counter
//!
//! [`boot`] reads every counter value still in its queue, takes the largest, `M` (0 on a
//! fresh flash), pushes `M + 1`, and only when that push has completed returns `M + 1` as
//! the session. Then it pops the older values, oldest first. Why two power-ups can never
//! share a session, wherever the power fails:
//! - before the push of `M + 1` completes, no frame of session `M + 1` has been sent (the
//!   node sends its first frame after [`boot`] returns). The next power-up finds `M` (the
//!   torn item fails its check) and uses `M + 1` itself: the number was never used.
//! - once the push has completed, `M + 1` is in flash, and it is never popped by this boot
//!   (only values below it are). The next power-up finds at least `M + 1` and uses `M + 2`
//!   or more. A pop cut short leaves an older value or a torn item, neither larger.
//!
//! So the largest value in flash only grows, and a session is used only after it is the
//! largest value in flash. The sessions of successive power-ups are distinct and
//! increasing. (The number restarts only if the counter's pages are erased by hand.)
//!
//! # The log
//!
//! Every reading and fault frame the node sends is appended first ([`Store::append`]), as a
//! [`Record`]: its session, seq, the session's reset reason and the frame's fields. An `Ack`
//! removes the records it covers, wherever they are in the queue; a `Resend` and a power-up
//! read them without removing them. A full log gives way oldest-first: its oldest records are
//! popped, and counted, until the new one fits (a NOR page is reclaimed whole, so this frees
//! a page's worth at once). Headers, stats and heartbeats are not stored: they are rebuilt
//! from the configuration and the records, or describe the moment they were sent.

use embassy_futures::block_on;
use mend_core::{FaultKind, ResetReason, WireReading};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::queue::{QueueConfig, QueueStorage};

use crate::flash::{FileFlash, FlashError, PAGE};

/// Pages of the boot counter's queue (sequential-storage needs a spare page to move on to).
pub const BOOT_PAGES: u32 = 2;

/// A flash operation of the store that failed.
pub type Error = sequential_storage::Error<FlashError>;

/// Largest item either queue holds.
const ITEM_MAX: usize = 32;

/// A buffer for sequential-storage, word aligned (some flash drivers need it).
#[repr(align(4))]
struct Buf([u8; ITEM_MAX]);

/// The queue type of both the boot counter and the log: one instantiation of
/// sequential-storage's code, not two.
type Queue = QueueStorage<FileFlash, Cache<Uncached, Uncached, Uncached, ()>>;

/// Reads the boot counter, persists its next value, and returns that value: the session of
/// this power-up, with the flash handed back. See the module docs for why no two power-ups
/// share a session.
pub fn boot(flash: FileFlash) -> (FileFlash, Result<u32, Error>) {
    let Ok(config) = QueueConfig::try_new(0..BOOT_PAGES * PAGE) else {
        return (flash, Err(Error::LogicBug {}));
    };
    let mut queue: Queue = QueueStorage::new(flash, config, Cache::new_uncached());
    let session = next_session(&mut queue);
    (queue.destroy().0, session)
}

fn next_session(queue: &mut Queue) -> Result<u32, Error> {
    let mut buf = Buf([0; ITEM_MAX]);
    let mut last = 0u32;
    {
        let mut it = block_on(queue.iter())?;
        while let Some(entry) = block_on(it.next(&mut buf.0))? {
            if let Ok(value) = <[u8; 4]>::try_from(&entry[..]) {
                last = last.max(u32::from_le_bytes(value));
            }
        }
    }
    let session = last.checked_add(1).ok_or(Error::FullStorage)?;
    block_on(queue.push(&session.to_le_bytes(), false))?;
    // The new value is durable: the older ones may go.
    let mut it = block_on(queue.iter())?;
    while let Some(entry) = block_on(it.next(&mut buf.0))? {
        let older = <[u8; 4]>::try_from(&entry[..])
            .map(|v| u32::from_le_bytes(v) < session)
            .unwrap_or(true);
        if older {
            block_on(entry.pop())?;
        }
    }
    Ok(session)
}

/// What the log keeps of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// A reading: its offset and value as they were sent.
    Reading {
        /// Offset from the schedule, ms.
        offset_ms: i32,
        /// The value relative to the header's reference.
        celsius_delta: i32,
    },
    /// A sample that failed.
    Fault(FaultKind),
}

/// One frame in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The power-up that sent it.
    pub session: u32,
    /// Why that power-up started.
    pub reset: ResetReason,
    /// Its seq.
    pub seq: u32,
    /// The frame.
    pub kept: Kept,
}

impl Record {
    /// Bytes of a record in flash.
    const LEN: usize = 20;

    /// A reading frame of `session`.
    pub fn reading(session: u32, reset: ResetReason, w: &WireReading) -> Self {
        Self {
            session,
            reset,
            seq: w.seq,
            kept: Kept::Reading {
                offset_ms: w.offset_ms,
                celsius_delta: w.celsius_delta,
            },
        }
    }

    /// The reading it keeps, if it keeps one.
    pub fn wire(&self) -> Option<WireReading> {
        match self.kept {
            Kept::Reading {
                offset_ms,
                celsius_delta,
            } => Some(WireReading {
                seq: self.seq,
                offset_ms,
                celsius_delta,
            }),
            Kept::Fault(_) => None,
        }
    }

    /// Layout: kind (1 reading, 2 fault), fault kind, reset reason, 0, then session, seq,
    /// offset and value, little-endian.
    fn to_bytes(self) -> [u8; Self::LEN] {
        let (kind, aux, a, b) = match self.kept {
            Kept::Reading {
                offset_ms,
                celsius_delta,
            } => (1, 0, offset_ms, celsius_delta),
            Kept::Fault(k) => (2, k as u8, 0, 0),
        };
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&[kind, aux, self.reset as u8, 0]);
        out[4..8].copy_from_slice(&self.session.to_le_bytes());
        out[8..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..16].copy_from_slice(&a.to_le_bytes());
        out[16..20].copy_from_slice(&b.to_le_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at..at + 4]);
            w
        };
        let reset = match bytes[2] {
            0 => ResetReason::Unknown,
            1 => ResetReason::PowerOn,
            2 => ResetReason::Watchdog,
            3 => ResetReason::Software,
            _ => return None,
        };
        let kept = match (bytes[0], bytes[1]) {
            (1, 0) => Kept::Reading {
                offset_ms: i32::from_le_bytes(word(12)),
                celsius_delta: i32::from_le_bytes(word(16)),
            },
            (2, k) => Kept::Fault(match k {
                0 => FaultKind::NoAcknowledge,
                1 => FaultKind::Bus,
                2 => FaultKind::Timeout,
                3 => FaultKind::InvalidData,
                _ => return None,
            }),
            _ => return None,
        };
        Some(Self {
            session: u32::from_le_bytes(word(4)),
            reset,
            seq: u32::from_le_bytes(word(8)),
            kept,
        })
    }
}

/// The frame log.
pub struct Store {
    log: QueueStorage<
        FileFlash,
        Cache<
            sequential_storage::cache::Uncached,
            sequential_storage::cache::Uncached,
            sequential_storage::cache::Uncached,
            (),
        >,
    >,
    dropped: u32,
}

impl Store {
    /// The log in `BOOT_PAGES..BOOT_PAGES + pages` of `flash`, as the last power-up left it.
    pub fn new(flash: FileFlash, pages: u32) -> Result<Self, Error> {
        let config = QueueConfig::try_new(BOOT_PAGES * PAGE..(BOOT_PAGES + pages) * PAGE)
            .map_err(|_| Error::LogicBug {})?;
        Ok(Self {
            log: QueueStorage::new(flash, config, Cache::new_uncached()),
            dropped: 0,
        })
    }

    /// Records the log gave up unacknowledged since power-up (and items it could not read,
    /// which it removes rather than trip over forever).
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Appends `record`, giving up the oldest records (counted) while the log is full.
    pub fn append(&mut self, record: &Record) -> Result<(), Error> {
        let bytes = record.to_bytes();
        loop {
            match block_on(self.log.push(&bytes, false)) {
                Err(Error::FullStorage) => {
                    let mut buf = Buf([0; ITEM_MAX]);
                    match block_on(self.log.pop(&mut buf.0))? {
                        Some(_) => self.dropped = self.dropped.saturating_add(1),
                        // Full and empty at once: nothing can ever fit.
                        None => return Err(Error::FullStorage),
                    }
                }
                other => return other,
            }
        }
    }

    /// Calls `each` with every record, oldest first, removing those for which it returns
    /// true. A record that cannot be read is removed and counted as dropped.
    pub fn scan(&mut self, mut each: impl FnMut(&Record) -> bool) -> Result<(), Error> {
        let mut buf = Buf([0; ITEM_MAX]);
        let mut it = block_on(self.log.iter())?;
        while let Some(entry) = block_on(it.next(&mut buf.0))? {
            let remove = match Record::from_bytes(&entry) {
                Some(r) => each(&r),
                None => {
                    self.dropped = self.dropped.saturating_add(1);
                    true
                }
            };
            if remove {
                block_on(entry.pop())?;
            }
        }
        Ok(())
    }
}
