//! The wire format: how readings travel from a node's UART into a capture file and back.
//!
//! A log is a sequence of frames. Each frame is a postcard-encoded [`Frame`], followed by a
//! CRC-16/IBM-SDLC (the X.25/HDLC CRC) of those bytes in little-endian order, COBS-encoded and
//! terminated by one `0x00`. Because COBS output never contains `0x00`, a reader that lands
//! anywhere in a stream — after damage, after a seek, after a torn write — finds the start of
//! the next frame at the next `0x00`. The [`Decoder`] does exactly that, and reports every byte
//! it could not use with a [`Span`] and a [`SkipReason`], so that a capture's bytes can always
//! be accounted for: good frames + bad frames + skipped bytes = file size.
//!
//! A reading frame is small because it does not repeat what the session's [`Header`] says: the
//! timestamp travels as its offset from `epoch + seq × period`, which is `0` for a node that
//! samples on time. In version 1 the seq travelled whole, so a reading frame grew from 9 to
//! 12 bytes as a session went on. Version 2 sends only the seq's low 7 bits (one byte, at any
//! seq): the decoder places the reading at the nearest seq with those bits, counting from the
//! reading before it or from the base seq of the latest header, and the frame's check covers
//! the rest of the seq and the header's identity (its *seal*), so a reading placed wrongly,
//! or read under the header of another session, fails its check instead of becoming a wrong
//! reading.
//! A lost repeated header costs nothing: its readings still follow the ones before. The edge
//! repeats the header whenever a reading lands 64 or more seqs from where the decoder expects
//! it, so a clean version-2 reading frame is 9 bytes at any seq.
//!
//! Every version that was ever written is decoded: a version-1 header and its readings (whose
//! frames carry the whole seq) read as they always did, in a file of their own or mixed with
//! version-2 frames.
//!
//! Encoding is deterministic: postcard has exactly one encoding for a value, so the same
//! frames always give the same bytes, on the MCU and on the host.

mod decode;
mod encode;
#[cfg(test)]
mod tests;
mod types;

pub use decode::*;
pub use encode::*;
pub use types::*;
