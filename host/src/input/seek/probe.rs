//! Probes of a frame log: what time it is at a byte offset, and whether time grows through
//! the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header};

use super::note::Distrust;

/// The fewest probes over a file, the first at byte 0.
pub const MIN_PROBES: u64 = 64;

/// The widest spacing between two probes, in bytes.
pub const MAX_SPACING: u64 = 256 * 1024;

/// How far a probe reads looking for a header and a reading.
const PROBE_LIMIT: u64 = 1 << 20;

/// What a probe found: the offset of a header frame and the first reading after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) header_at: u64,
    pub(super) first_ms: u64,
    clock: ClockKind,
    period_ms: u32,
}

/// What a probe at an offset saw.
enum Seen {
    Probe(Probe),
    /// The file ended before a header and a reading.
    End,
    /// [`PROBE_LIMIT`] bytes without a header and a reading.
    Nothing,
}

fn probe(f: &mut File, at: u64, size: u64) -> std::io::Result<Seen> {
    f.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; 4 * 1024];
    let mut pos = at;
    let mut synced = at == 0;
    let mut dec: Decoder = Decoder::at(at);
    let mut header: Option<(u64, Header)> = None;
    while pos < size {
        if pos - at >= PROBE_LIMIT {
            return Ok(Seen::Nothing);
        }
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
                                return Ok(Seen::Probe(Probe {
                                    header_at,
                                    first_ms: r.timestamp,
                                    clock: h.clock,
                                    period_ms: h.period_ms,
                                }));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(Seen::End)
}

/// The probes of a trusted file, by offset.
pub(super) struct Survey {
    pub(super) probes: Vec<Probe>,
    pub(super) max_period_ms: u64,
}

/// Probes `at` and adds what it finds to `probes`; an untrustworthy finding is an error.
pub(super) fn probe_into(
    f: &mut File,
    at: u64,
    size: u64,
    probes: &mut Vec<Probe>,
) -> anyhow::Result<Result<(), Distrust>> {
    match probe(f, at, size)? {
        Seen::Probe(p) if p.clock == ClockKind::Boot => {
            Ok(Err(Distrust::BootClock { at: p.header_at }))
        }
        Seen::Probe(p) => {
            probes.push(p);
            Ok(Ok(()))
        }
        Seen::End => Ok(Ok(())),
        Seen::Nothing => Ok(Err(Distrust::NoFrames { at })),
    }
}

/// Orders `probes` by offset (one per header) and checks that time never falls by more
/// than `tolerance_ms` from one to the next.
pub(super) fn check(probes: &mut Vec<Probe>, tolerance_ms: u64) -> Result<(), Distrust> {
    probes.sort_by_key(|p| p.header_at);
    probes.dedup_by_key(|p| p.header_at);
    for w in probes.windows(2) {
        if let [a, b] = w {
            if b.first_ms.saturating_add(tolerance_ms) < a.first_ms {
                return Err(Distrust::Falls {
                    at: b.header_at,
                    ms: b.first_ms,
                    prev_at: a.header_at,
                    prev_ms: a.first_ms,
                });
            }
        }
    }
    Ok(())
}

pub(super) fn survey(
    f: &mut File,
    size: u64,
    tolerance_ms: u64,
) -> anyhow::Result<Result<Survey, Distrust>> {
    let n = MIN_PROBES.max(size.div_ceil(MAX_SPACING));
    let mut probes = Vec::new();
    for k in 0..n {
        // Evenly spread: byte 0, then every size/n bytes.
        let at = u64::try_from(u128::from(size) * u128::from(k) / u128::from(n)).unwrap_or(0);
        if let Err(d) = probe_into(f, at, size, &mut probes)? {
            return Ok(Err(d));
        }
    }
    if let Err(d) = check(&mut probes, tolerance_ms) {
        return Ok(Err(d));
    }
    let max_period_ms = probes
        .iter()
        .map(|p| u64::from(p.period_ms))
        .max()
        .unwrap_or(0);
    Ok(Ok(Survey {
        probes,
        max_period_ms,
    }))
}
