//! The `mend` command line: argument parsing ([`cli`]), the commands ([`commands`]) and the
//! demo ([`demo`]). Private to the binary; the work is done by the library.

pub mod cli;
pub mod commands;
pub mod demo;
