//! The `mend` command: parses the command line and runs it; see the library for the work.

use std::process::ExitCode;

mod app;

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> anyhow::Result<ExitCode> {
    // clap prints usage errors itself and exits with 2; --help and --version exit with 0;
    // a value mend refuses is an error like any other.
    let cli = app::cli::parse()?;
    app::run(cli)
}

fn main() -> ExitCode {
    // Interrupted (Ctrl-C, SIGTERM, SIGHUP): outputs not yet complete are removed, and no
    // temporary file stays.
    // Without a handler (it cannot be installed) the signal simply ends the process.
    let _ = ctrlc::set_handler(|| {
        // `mend listen` stops by itself, with its capture synced.
        if mend::listen::request_stop() {
            return;
        }
        mend::fs::remove_temporary_files();
        eprintln!("mend: interrupted; unfinished outputs were removed");
        std::process::exit(i32::from(app::exit::EXIT_INTERRUPTED));
    });
    match run() {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mend: {e:#}");
            ExitCode::from(app::exit::EXIT_ERROR)
        }
    }
}
