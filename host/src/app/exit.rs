//! The exit codes of `mend`, one meaning each.

/// Exit code for success (also when some input was rejected without `--strict`).
pub const EXIT_OK: u8 = 0;
/// Exit code for `--strict` runs that rejected something, and for a worker that left a
/// sensor alone (its keys unusable).
pub const EXIT_REJECTED: u8 = 1;
/// Exit code for usage and I/O errors.
pub const EXIT_ERROR: u8 = 2;
/// Exit code after Ctrl-C or a termination signal (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;
