//! Seeking in a frame log for `--from`, without reading it from the start.
//!
//! COBS frames end at the only `0x00` bytes in a log, so a reader dropped at any byte
//! offset finds the next frame boundary at the next `0x00`. Reading frames only make sense
//! after their session header, which the edge repeats with every stats frame (every 60
//! readings by default). So a probe at an offset scans to the next boundary, decodes until a
//! header and then a reading, and learns the time at that point of the file. Bisecting on
//! probes finds the last header whose first reading is before the target, in a few dozen
//! small reads however large the log is.
//!
//! This only works when time grows through the file. A log with boot-clock sessions starts
//! again at zero at every power-up, so when any probe sees a boot clock, or the probed times
//! do not grow with the offset, the seek gives up and the log is read from the start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;
use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header};

use crate::input::{detect, Format};

/// Files smaller than this are read from the start: a seek would not save anything.
pub const MIN_SEEK_SIZE: u64 = 1 << 20;

/// How far a probe reads looking for a header and a reading.
const PROBE_LIMIT: u64 = 1 << 20;

/// Bisection stops when the candidate range is this small.
const CLOSE_ENOUGH: u64 = 64 * 1024;

/// The outcome of [`seek_offset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekResult {
    /// Start decoding here (0: from the start).
    Offset(u64),
    /// Time does not grow through the file; read it from the start.
    NotSorted,
    /// Not a frame log (JSONL), so no seek.
    NotFrames,
}

/// What a probe found: the offset of a header frame and the time of the first reading
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    header_at: u64,
    first_ms: u64,
    clock: ClockKind,
}

fn probe(f: &mut File, at: u64, size: u64) -> anyhow::Result<Option<Probe>> {
    f.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut pos = at;
    let mut synced = at == 0;
    let mut dec: Decoder = Decoder::at(at);
    let mut header: Option<(u64, Header)> = None;
    while pos < size && pos - at < PROBE_LIMIT {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in buf.get(..n).unwrap_or(&[]) {
            pos += 1;
            if !synced {
                if b == 0 {
                    synced = true;
                    dec = Decoder::at(pos);
                }
                continue;
            }
            let Some(ev) = dec.push(b) else {
                continue;
            };
            if let DecodeEvent::Frame { frame, span } = ev {
                match frame {
                    Frame::Header(h) if h.period_ms > 0 => header = Some((span.start, h)),
                    Frame::Reading(w) => {
                        if let Some((header_at, h)) = header {
                            if let Ok(r) = h.from_wire(&w) {
                                return Ok(Some(Probe {
                                    header_at,
                                    first_ms: r.timestamp,
                                    clock: h.clock,
                                }));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(None)
}

/// Finds where to start decoding `path` so that every reading at or after `target_ms` is
/// read: the offset of the last header whose first reading is earlier than `target_ms`.
pub fn seek_offset(path: &Path, target_ms: u64) -> anyhow::Result<SeekResult> {
    let name = path.display();
    let mut f = File::open(path).with_context(|| format!("{name}: cannot open input"))?;
    let size = f
        .metadata()
        .with_context(|| format!("{name}: cannot read metadata"))?
        .len();
    let mut head = vec![0u8; 64 * 1024];
    let n = f
        .read(&mut head)
        .with_context(|| format!("{name}: cannot read"))?;
    if detect(head.get(..n).unwrap_or(&[])) != Some(Format::Frames) {
        return Ok(SeekResult::NotFrames);
    }
    if size < MIN_SEEK_SIZE {
        return Ok(SeekResult::Offset(0));
    }
    let mut probes: Vec<(u64, Probe)> = Vec::new();
    let mut lo: u64 = 0;
    let mut hi: u64 = size;
    while hi - lo > CLOSE_ENOUGH {
        let mid = lo + (hi - lo) / 2;
        let p = probe(&mut f, mid, size).with_context(|| format!("{name}: cannot read"))?;
        match p {
            Some(p) => {
                if p.clock == ClockKind::Boot {
                    return Ok(SeekResult::NotSorted);
                }
                probes.push((mid, p));
                if p.first_ms < target_ms && p.header_at > lo {
                    lo = p.header_at;
                } else {
                    hi = mid;
                }
            }
            None => hi = mid,
        }
    }
    probes.sort_by_key(|(at, _)| *at);
    if probes.windows(2).any(|w| w[0].1.first_ms > w[1].1.first_ms) {
        return Ok(SeekResult::NotSorted);
    }
    // The start of the file may itself be a boot-clock session.
    if let Some(p) = probe(&mut f, 0, size)? {
        if p.clock == ClockKind::Boot {
            return Ok(SeekResult::NotSorted);
        }
    }
    Ok(SeekResult::Offset(lo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GenerateConfig};

    fn capture(count: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mlog");
        let mut cfg = GenerateConfig::clean(1, count);
        cfg.sim.epoch_ms = 1_000_000;
        let mut f = File::create(&path).unwrap();
        generate(&cfg, &mut f, None).unwrap();
        (dir, path)
    }

    #[test]
    fn the_seek_lands_on_a_header_before_the_target() {
        let (_dir, path) = capture(200_000);
        let size = std::fs::metadata(&path).unwrap().len();
        let target = 1_000_000 + 150_000 * 1_000;
        let SeekResult::Offset(at) = seek_offset(&path, target).unwrap() else {
            panic!("no seek");
        };
        assert!(at > size / 2 && at < size, "{at} of {size}");
        let bytes = std::fs::read(&path).unwrap();
        let mut dec: Decoder = Decoder::at(at);
        let mut events = dec.feed(&bytes[at as usize..]);
        let Some(DecodeEvent::Frame {
            frame: Frame::Header(h),
            ..
        }) = events.next()
        else {
            panic!("no header at {at}");
        };
        let first = events
            .find_map(|e| match e {
                DecodeEvent::Frame {
                    frame: Frame::Reading(w),
                    ..
                } => Some(h.from_wire(&w).unwrap().timestamp),
                _ => None,
            })
            .unwrap();
        // The bisection stops within 64 KiB, a few thousand readings before the target.
        assert!(first < target && target - first < 7_000_000, "{first}");
        // Before the first reading: from the start.
        assert_eq!(seek_offset(&path, 0).unwrap(), SeekResult::Offset(0));
    }

    #[test]
    fn small_files_and_jsonl_are_not_bisected() {
        let (dir, path) = capture(100);
        assert_eq!(seek_offset(&path, u64::MAX).unwrap(), SeekResult::Offset(0));
        let j = dir.path().join("x.jsonl");
        std::fs::write(&j, b"{\"timestamp\": 1}\n").unwrap();
        assert_eq!(seek_offset(&j, 5).unwrap(), SeekResult::NotFrames);
    }
}
