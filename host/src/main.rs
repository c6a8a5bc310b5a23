//! The `mend` command: parses the command line and runs it; see the library for the work.

use std::process::ExitCode;

use clap::Parser;

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> anyhow::Result<ExitCode> {
    // clap prints usage errors itself and exits with 2; --help and --version exit with 0.
    let cli = mend::cli::Cli::parse();
    mend::commands::run(cli)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mend: {e:#}");
            ExitCode::from(mend::commands::EXIT_ERROR)
        }
    }
}
