//! `mend generate`, wired to files and the terminal.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::cli::GenerateArgs;
use super::exit::EXIT_OK;
use mend::fs::AtomicFile;
use mend::replay::outputs::{same_path, MainOut};

/// `mend generate`: a simulated capture, and its truth.
pub fn run(a: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.plan()?;
    if let Some(t) = &a.truth {
        if same_path(t, &a.output) {
            bail!("{}: --truth and -o name the same file", t.display());
        }
    }
    // `-o -` writes the capture to standard output, for a pipe into `mend replay -`.
    let mut capture = MainOut::open(Some(&a.output))?;
    let mut truth = a.truth.as_deref().map(AtomicFile::create).transpose()?;
    let stats = mend::generate::generate(
        &cfg,
        &mut capture,
        truth.as_mut().map(|t| t as &mut dyn Write),
    )
    .with_context(|| format!("{}: cannot write capture", a.output.display()))?;
    capture.finish()?;
    if let Some(t) = truth {
        t.commit()?;
    }
    eprintln!(
        "mend generate: {} readings ({} out of band), {} frames sent: {} dropped, {} duplicated, {} delayed, {} corrupted, {} cut short; {} bytes → {}",
        stats.readings,
        stats.out_of_band,
        stats.sent,
        stats.dropped,
        stats.duplicated,
        stats.delayed,
        stats.corrupted,
        stats.truncated,
        stats.bytes,
        if a.output.as_os_str() == "-" {
            "standard output".into()
        } else {
            a.output.display().to_string()
        }
    );
    Ok(ExitCode::from(EXIT_OK))
}
