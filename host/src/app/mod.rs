//! The `mend` command line, private to the binary: the arguments ([`cli`]) and one file per
//! command, each a thin layer over the library.

use std::process::ExitCode;

pub mod cli;
mod demo;
pub mod exit;
mod fleet;
mod generate;
mod inspect;
mod listen;
mod progress;
mod replay;

use cli::{Cli, Command};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Generate(a) => generate::run(&a),
        Command::Replay(a) => replay::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Publish(a) => fleet::publish(&a),
        Command::Work(a) => fleet::work(&a),
        Command::Export(a) => fleet::export(&a),
        Command::Status(a) => fleet::status(&a),
        Command::Listen(a) => listen::run(&a),
    }
}
