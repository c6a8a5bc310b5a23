//! Files: outputs that appear whole or not at all, and the background writer that keeps
//! formatting and writing on separate threads.

pub mod atomic;
pub mod background;

pub use atomic::{remove_temporary_files, AtomicFile};
