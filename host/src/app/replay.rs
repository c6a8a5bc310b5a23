//! `mend replay`, wired to the terminal: the library writes the files; this prints the
//! summary and gives each outcome its exit code.

use std::process::ExitCode;

use super::cli::ReplayArgs;
use super::exit::{EXIT_OK, EXIT_REJECTED};
use super::progress::progress_bar;
use mend::replay::files::replay_to_files;
use mend::replay::ReplayReport;
use mend::text::summary;

/// `mend replay`: a replay into files, its summary, and the exit code of `--strict`.
pub fn run(a: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let plan = a.plan()?;
    let bar = || progress_bar(&plan.sources, a.quiet);
    let report = replay_to_files(&plan, &a.files(), bar)?;
    if !a.quiet {
        let dead_name = a.dlq.as_ref().map(|p| p.display().to_string());
        eprint!("{}", summary::render(&report, dead_name.as_deref()));
    } else if report.records() == 0 {
        for n in &report.notes {
            eprintln!("mend: {n}");
        }
    }
    if a.quiet && a.strict && report.anything_rejected() {
        eprintln!("mend: --strict: {}", rejected_line(&report));
    }
    Ok(exit_for(&report, a.strict))
}

/// Why a `--strict` run fails, in one line: what was rejected, and where it is.
fn rejected_line(report: &ReplayReport) -> String {
    let (rejected, late) = report.streams.iter().fold((0, 0), |(r, l), s| {
        (r + s.counters.rejected, l + s.counters.late)
    });
    format!(
        "{} dead-letter records, {rejected} readings rejected, {late} late; exit code {EXIT_REJECTED}",
        report.dead_letters
    )
}

fn exit_for(report: &ReplayReport, strict: bool) -> ExitCode {
    if strict && report.anything_rejected() {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::from(EXIT_OK)
    }
}
