//! `mend listen`, wired to the terminal: a live status line, the report, the exit code.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use super::cli::ListenArgs;
use super::exit::{EXIT_INTERRUPTED, EXIT_OK};

/// `mend listen`: the gateway, with a status line on a terminal and its report at the end.
pub fn run(a: &ListenArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.plan()?;
    let live = !a.quiet && io::stderr().is_terminal();
    // Redrawn at most ten times a second, and whenever the link changes state.
    let mut drawn: Option<(std::time::Instant, mend::listen::LinkState)> = None;
    let mut status = |s: &mend::listen::Status| {
        let due = drawn.is_none_or(|(at, link)| {
            link != s.link || at.elapsed() >= std::time::Duration::from_millis(100)
        });
        if live && due {
            drawn = Some((std::time::Instant::now(), s.link));
            let redis = s.redis.map_or_else(String::new, |r| {
                format!(
                    "; redis {}, published {}, pending {} bytes",
                    r.state, r.published, r.pending
                )
            });
            eprint!(
                "\r\x1b[2K{}: link {}; received {}, recovered {}, missing {}, bad bytes {}{redis}",
                cfg.endpoint, s.link, s.received, s.recovered, s.missing, s.bad_bytes
            );
        }
    };
    // Ctrl-C and SIGTERM stop the run; what was received is synced before it returns.
    let stop = mend::listen::arm_stop();
    let report = mend::listen::run(&cfg, &stop, &mut status)?;
    if live {
        eprint!("\r\x1b[2K");
    }
    if !a.quiet {
        eprint!("{}", report.render(&a.output.display().to_string()));
    }
    Ok(ExitCode::from(
        if report.stop == Some(mend::listen::StopReason::Interrupted) {
            EXIT_INTERRUPTED
        } else {
            EXIT_OK
        },
    ))
}
