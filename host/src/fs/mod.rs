//! Files: outputs that appear whole or not at all, the background writer that keeps
//! formatting and writing on separate threads, and scratch directories that never outlive
//! their run.

pub mod atomic;
pub mod background;
pub mod scratch;

pub use atomic::{discards, remove_temporary_files, stdout_discards, writes_in_place, AtomicFile};
pub use scratch::ScratchDir;
