//! The subcommands, wired to files and the terminal.
//!
//! Everything here is plumbing around [`mend::replay::run`]: checking that no output would
//! overwrite an input, creating every output up front (so an unwritable path fails before
//! the work, not after), committing them in the crash-safe order (outputs, then the
//! checkpoint), and printing the summary.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mend_core::{Flag, Outage, Record};

use crate::app::cli::{
    Cli, Command, GenerateArgs, InspectArgs, ListenArgs, OutFormat, ReadPlan, ReplayArgs,
};
use mend::chart::{Chart, ChartSpec, PointKind};
use mend::checkpoint::{Checkpoint, InputMark};
use mend::engine::Pass;
use mend::fs::AtomicFile;
use mend::input::seek::{InputPlan, SeekSettings};
use mend::input::{InputSource, StreamMeta};
use mend::replay::{self, Outputs, ReplayReport};
use mend::sink::{MlogWriter, RecordSink, RowFormat, RowWriter, Tee};
use mend::text::summary;

mod fleet;

/// Exit code for success (also when some input was rejected without `--strict`).
pub const EXIT_OK: u8 = 0;
/// Exit code for `--strict` runs that rejected something.
pub const EXIT_REJECTED: u8 = 1;
/// Exit code for usage and I/O errors.
pub const EXIT_ERROR: u8 = 2;
/// Exit code after Ctrl-C or a termination signal (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => crate::app::demo::run(&a),
        Command::Generate(a) => generate(&a),
        Command::Replay(a) => replay_cmd(&a),
        Command::Inspect(a) => inspect(&a),
        Command::Publish(a) => fleet::publish(&a),
        Command::Work(a) => fleet::work(&a),
        Command::Export(a) => fleet::export(&a),
        Command::Status(a) => fleet::status(&a),
        Command::Listen(a) => listen(&a),
    }
}

fn listen(a: &ListenArgs) -> anyhow::Result<ExitCode> {
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

fn generate(a: &GenerateArgs) -> anyhow::Result<ExitCode> {
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

/// True when `a` and `b` name the same file (or would, once created).
pub fn same_path(a: &Path, b: &Path) -> bool {
    fn resolve(p: &Path) -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let name = p.file_name()?;
        let parent = match p.parent() {
            Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(parent.canonicalize().ok()?.join(name))
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            if x.dev() == y.dev() && x.ino() == y.ino() {
                return true;
            }
        }
    }
    match (resolve(a), resolve(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The identity (device, inode) of a regular file open as standard input or output.
#[cfg(unix)]
fn std_file_id(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::File::from(fd.try_clone_to_owned().ok()?)
        .metadata()
        .ok()?;
    m.is_file().then(|| (m.dev(), m.ino()))
}

/// The identity (device, inode) of the file at `p`, if it exists.
#[cfg(unix)]
fn path_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Refuses outputs that are inputs (by path, or the file behind standard input), a
/// standard output that is an input file, and outputs given twice.
fn check_outputs(
    sources: &[InputSource],
    outputs: &[(&str, &Path)],
    stdout_is_output: bool,
) -> anyhow::Result<()> {
    for (flag, out) in outputs {
        for s in sources {
            if let InputSource::Path(p) = s {
                if same_path(p, out) {
                    bail!(
                        "{}: {flag} would overwrite an input; mend never writes into its input",
                        out.display()
                    );
                }
            }
        }
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if sources.contains(&InputSource::Stdin) {
            if let Some(stdin) = std_file_id(io::stdin().as_fd()) {
                for (flag, out) in outputs {
                    if path_id(out) == Some(stdin) {
                        bail!(
                            "{}: {flag} is the file standard input reads; mend never writes into its input",
                            out.display()
                        );
                    }
                }
            }
        }
        if stdout_is_output {
            if let Some(stdout) = std_file_id(io::stdout().as_fd()) {
                for s in sources {
                    let input = match s {
                        InputSource::Path(p) => path_id(p),
                        InputSource::Stdin => std_file_id(io::stdin().as_fd()),
                        InputSource::Bytes(_) => None,
                    };
                    if input == Some(stdout) {
                        bail!(
                            "{}: standard output is this input; mend never writes into its input",
                            s.name()
                        );
                    }
                }
            }
        }
    }
    for (i, (fa, a)) in outputs.iter().enumerate() {
        for (fb, b) in outputs.iter().skip(i + 1) {
            if same_path(a, b) {
                bail!("{}: given to both {fa} and {fb}", a.display());
            }
        }
    }
    Ok(())
}

/// Fails when standard output is closed (`>&-`): the output would vanish with a success.
/// A pipe whose reader quit (`| head -1`) is open; its broken pipe ends the run as a success.
///
/// On Linux the Rust runtime puts `/dev/null` (opened for reading and writing) in place of
/// a closed standard output before `main`, so that is what a closed one looks like; a
/// `>/dev/null` of the shell opens it for writing only, and stays a success.
fn check_stdout_open() -> anyhow::Result<()> {
    const HINT: &str = "give -o FILE, or redirect it";
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Err(e) = io::stdout().as_fd().try_clone_to_owned() {
            bail!("standard output is closed ({e}): {HINT}");
        }
    }
    if stdout_replaced_by_the_runtime() {
        bail!("standard output is closed: {HINT}");
    }
    Ok(())
}

/// True when standard output is the `/dev/null` the Rust runtime opened (read-write) for a
/// closed one; false when it cannot be told (no `/proc`).
fn stdout_replaced_by_the_runtime() -> bool {
    let is_null = std::fs::read_link("/proc/self/fd/1").is_ok_and(|t| t == Path::new("/dev/null"));
    let read_write = || {
        std::fs::read_to_string("/proc/self/fdinfo/1").is_ok_and(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                // O_ACCMODE is 0o3, O_RDWR 0o2.
                .is_some_and(|flags| flags & 0o3 == 0o2)
        })
    };
    is_null && read_write()
}

/// Where the main output goes.
enum MainOut {
    File(AtomicFile),
    Stdout(BufWriter<io::Stdout>),
    /// Nothing (a first pass whose records cannot be taken back).
    Discard,
}

impl MainOut {
    /// The file at `path`, or standard output for none or `-`.
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        Ok(match path {
            Some(p) if p.as_os_str() != "-" => MainOut::File(AtomicFile::create(p)?),
            _ => {
                check_stdout_open()?;
                MainOut::Stdout(BufWriter::with_capacity(1 << 20, io::stdout()))
            }
        })
    }

    /// Puts a file in place, or flushes standard output.
    fn finish(self) -> anyhow::Result<()> {
        match self {
            MainOut::File(f) => f.commit(),
            MainOut::Stdout(mut s) => s.flush().context("cannot write to standard output"),
            MainOut::Discard => Ok(()),
        }
    }
}

impl mend::fs::background::BlockWrite for MainOut {
    fn write_block(&mut self, block: &mut mend::fs::background::Block) -> io::Result<()> {
        match self {
            MainOut::File(f) => f.write_block(block),
            MainOut::Stdout(s) => s.write_block(block),
            MainOut::Discard => {
                block.clear();
                Ok(())
            }
        }
    }
}

impl Write for MainOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MainOut::File(f) => f.write(buf),
            MainOut::Stdout(s) => s.write(buf),
            MainOut::Discard => Ok(buf.len()),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            MainOut::File(f) => f.write_all(buf),
            MainOut::Stdout(s) => s.write_all(buf),
            MainOut::Discard => Ok(()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            MainOut::File(f) => f.flush(),
            MainOut::Stdout(s) => s.flush(),
            MainOut::Discard => Ok(()),
        }
    }
}

/// Feeds output records to a [`Chart`].
pub struct ChartSink<'c> {
    /// The chart.
    pub chart: &'c mut Chart,
}

impl RecordSink for ChartSink<'_> {
    fn record(&mut self, rec: &Record, _meta: &StreamMeta) -> io::Result<()> {
        let kind = if rec.is_synthetic() {
            PointKind::Synthetic
        } else if rec.flags.iter().any(|f| f != Flag::Late) {
            PointKind::Flagged
        } else {
            PointKind::Measured
        };
        self.chart
            .add(rec.reading.timestamp, rec.reading.celsius.to_bits(), kind);
        Ok(())
    }

    fn outage(&mut self, o: &Outage) -> io::Result<()> {
        self.chart.add_outage(o.before.timestamp, o.after.timestamp);
        Ok(())
    }
}

fn progress_bar(sources: &[InputSource], quiet: bool) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = sources
        .iter()
        .map(|s| match s {
            InputSource::Path(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum();
    if total < 8 << 20 {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} replaying [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// Decides how each input is read: a seek for `--from` and an early stop for `--until`,
/// where the probes of [`mend::input::seek::plan`] allow them (never with `--no-seek`).
fn read_plans(plan: &ReadPlan, notes: &mut Vec<String>) -> anyhow::Result<Vec<InputPlan>> {
    let mut plans = vec![InputPlan::default(); plan.sources.len()];
    let e = &plan.config.engine;
    // A seek finds frames; JSONL read as such is read from the start.
    let jsonl = plan.config.input_format == Some(mend::input::Format::Jsonl);
    if !plan.seek || jsonl || (e.from.is_none() && e.until.is_none()) {
        return Ok(plans);
    }
    let settings = SeekSettings::from_env();
    for (s, out) in plan.sources.iter().zip(plans.iter_mut()) {
        match s {
            InputSource::Path(p) => {
                let (got, said) = mend::input::seek::plan(p, e, &settings)?;
                *out = got;
                notes.extend(said.iter().map(|n| format!("{}: {n}", p.display())));
            }
            _ if e.until.is_some() => {
                notes.push(format!(
                    "{}: {}",
                    s.name(),
                    mend::input::seek::PlanNote::NotAFile
                ));
            }
            _ => {}
        }
    }
    Ok(plans)
}

/// The files of one replay.
#[derive(Clone, Debug, Default)]
pub struct ReplayFiles {
    /// The records (standard output when `None`).
    pub output: Option<PathBuf>,
    /// Their format.
    pub format: Option<OutFormat>,
    /// The dead-letter file.
    pub dlq: Option<PathBuf>,
    /// The SVG chart.
    pub chart: Option<PathBuf>,
    /// The aggregates CSV.
    pub aggregates: Option<PathBuf>,
    /// The checkpoint to resume from and update.
    pub checkpoint: Option<PathBuf>,
    /// The summary as JSON.
    pub summary_json: Option<PathBuf>,
}

fn replay_cmd(a: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let plan = a.plan()?;
    let files = ReplayFiles {
        output: a.output.clone(),
        format: Some(a.format),
        dlq: a.dlq.clone(),
        chart: a.chart.clone(),
        aggregates: a.aggregates.clone(),
        checkpoint: a.checkpoint.clone(),
        summary_json: a.summary_json.clone(),
    };
    let report = replay_to_files(&plan, &files, a.quiet)?;
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

/// Runs a replay with file outputs: checks paths, creates every output up front, and
/// commits them in crash-safe order (outputs, then the checkpoint).
pub fn replay_to_files(
    plan: &ReadPlan,
    files: &ReplayFiles,
    quiet: bool,
) -> anyhow::Result<ReplayReport> {
    let mut outs: Vec<(&str, &Path)> = Vec::new();
    let named = [
        ("-o", &files.output),
        ("--dlq", &files.dlq),
        ("--chart", &files.chart),
        ("--aggregates", &files.aggregates),
        ("--checkpoint", &files.checkpoint),
        ("--summary-json", &files.summary_json),
    ];
    for (flag, p) in &named {
        if let Some(p) = p {
            outs.push((flag, p));
        }
    }
    let to_stdout = files.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    outs.retain(|(_, p)| p.as_os_str() != "-");
    check_outputs(&plan.sources, &outs, to_stdout)?;
    for s in &plan.sources {
        if let InputSource::Path(p) = s {
            let m = std::fs::metadata(p)
                .with_context(|| format!("{}: cannot open input", p.display()))?;
            if m.is_dir() {
                bail!("{}: is a directory, not a capture", p.display());
            }
        }
    }
    let checkpoint = match &files.checkpoint {
        Some(p) => {
            let ck = Checkpoint::load(p)?;
            ck.check_inputs(&plan.sources, p)?;
            ck
        }
        None => Checkpoint::default(),
    };
    // Fingerprints now, before the inputs grow any further.
    let input_marks = match &files.checkpoint {
        Some(_) => plan
            .sources
            .iter()
            .map(InputMark::of)
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let mut notes = Vec::new();
    let plans = read_plans(plan, &mut notes)?;

    // The files written after the replay exist (as temporary files) before any work starts.
    let chart_file = files.chart.as_deref().map(AtomicFile::create).transpose()?;
    let summary_file = files
        .summary_json
        .as_deref()
        .map(AtomicFile::create)
        .transpose()?;
    let progress = progress_bar(&plan.sources, quiet);
    let to_stdout = files.output.as_deref().is_none_or(|p| p.as_os_str() == "-");

    // A first pass may set readings far out of place aside; then its outputs are dropped
    // (their temporary files removed) and a second pass puts those readings in their place.
    // Standard output cannot be taken back, so a first pass writes nothing there.
    let mut pass = replay::first_pass(&plan.sources)?;
    let (mut report, mut new_checkpoint, outs) = loop {
        let dry = to_stdout && matches!(pass, Pass::First(_));
        let mut outs = PassOutputs::create(plan, files, dry)?;
        if let Some(p) = &progress {
            p.reset();
        }
        let result = outs.run(plan, &plans, checkpoint.clone(), pass, progress.clone())?;
        match result.spill {
            Some(set) => pass = Pass::Second(set),
            None if dry => pass = Pass::Only,
            None => break (result.report, result.checkpoint, outs),
        }
    };
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    report.notes.splice(0..0, notes);

    // Outputs first (synced, renamed), the checkpoint last.
    let chart = outs.commit()?;
    if let (Some(mut f), Some(c)) = (chart_file, chart.as_ref()) {
        let svg = c.render_svg().context("cannot draw the chart")?;
        f.write_all(svg.as_bytes())
            .with_context(|| format!("{}: cannot write chart", f.path().display()))?;
        f.commit()?;
    }
    if let Some(mut f) = summary_file {
        serde_json::to_writer_pretty(&mut f, &report)
            .with_context(|| format!("{}: cannot write summary", f.path().display()))?;
        f.write_all(b"\n")?;
        f.commit()?;
    }
    if let Some(p) = &files.checkpoint {
        new_checkpoint.inputs = input_marks;
        new_checkpoint.save(p)?;
    }
    Ok(report)
}

/// The outputs of one pass: created before it starts, committed after the last one.
struct PassOutputs {
    main: MainOut,
    dry: bool,
    format: OutFormat,
    dlq: Option<AtomicFile>,
    aggs: Option<AtomicFile>,
    chart: Option<Chart>,
}

impl PassOutputs {
    /// Creates every output of a pass; a `dry` pass writes no records.
    fn create(plan: &ReadPlan, files: &ReplayFiles, dry: bool) -> anyhow::Result<Self> {
        let main = if dry {
            MainOut::Discard
        } else {
            MainOut::open(files.output.as_deref())?
        };
        Ok(Self {
            main,
            dry,
            format: files.format.unwrap_or(OutFormat::Csv),
            dlq: files.dlq.as_deref().map(AtomicFile::create).transpose()?,
            aggs: files
                .aggregates
                .as_deref()
                .map(AtomicFile::create)
                .transpose()?,
            chart: files.chart.as_ref().map(|_| {
                let band = plan.config.engine.validate.band;
                Chart::new(ChartSpec {
                    title: chart_title(&plan.sources),
                    band: (band.0.to_num(), band.1.to_num()),
                    ..ChartSpec::default()
                })
            }),
        })
    }

    /// Runs one pass into these outputs.
    fn run(
        &mut self,
        plan: &ReadPlan,
        plans: &[InputPlan],
        checkpoint: Checkpoint,
        pass: Pass,
        progress: Option<ProgressBar>,
    ) -> anyhow::Result<replay::PassResult> {
        let mut tee = Tee::default();
        if !self.dry {
            match self.format {
                OutFormat::Csv => tee
                    .sinks
                    .push(Box::new(RowWriter::new(&mut self.main, RowFormat::Csv)?)),
                OutFormat::Jsonl => tee
                    .sinks
                    .push(Box::new(RowWriter::new(&mut self.main, RowFormat::Jsonl)?)),
                OutFormat::Mlog => tee.sinks.push(Box::new(MlogWriter::new(&mut self.main))),
            }
        }
        if let Some(c) = self.chart.as_mut() {
            tee.sinks.push(Box::new(ChartSink { chart: c }));
        }
        replay::run_planned(
            &plan.sources,
            plans,
            &plan.config,
            checkpoint,
            pass,
            Outputs {
                records: tee.single_or_all(),
                dead_letters: self.dlq.as_mut().map(|f| Box::new(f) as Box<dyn Write>),
                aggregates: self.aggs.as_mut().map(|f| Box::new(f) as Box<dyn Write>),
                progress,
                keep_dead_letters: 0,
                carry: None,
            },
        )
    }

    /// Puts the records, dead letters and aggregates in place; gives back the chart to draw.
    fn commit(self) -> anyhow::Result<Option<Chart>> {
        self.main.finish()?;
        if let Some(f) = self.dlq {
            f.commit()?;
        }
        if let Some(f) = self.aggs {
            f.commit()?;
        }
        Ok(self.chart)
    }
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

fn chart_title(sources: &[InputSource]) -> String {
    let names: Vec<String> = sources.iter().map(InputSource::name).collect();
    format!("mend replay of {}", names.join(", "))
}

/// A sink that writes nothing.
struct Discard;

impl RecordSink for Discard {
    fn record(&mut self, _rec: &Record, _meta: &StreamMeta) -> io::Result<()> {
        Ok(())
    }
}

fn inspect(a: &InspectArgs) -> anyhow::Result<ExitCode> {
    let plan = a.read.plan(mend_core::FillMethod::None, 0)?;
    check_stdout_open()?;
    let mut notes = Vec::new();
    let plans = read_plans(&plan, &mut notes)?;
    // One pass: inspect reports the log as it is, readings out of place included.
    let mut report = replay::run_planned(
        &plan.sources,
        &plans,
        &plan.config,
        Checkpoint::default(),
        Pass::Only,
        Outputs {
            records: &mut Discard,
            dead_letters: None,
            aggregates: None,
            progress: progress_bar(&plan.sources, false),
            keep_dead_letters: a.list,
            carry: None,
        },
    )?
    .report;
    report.notes.splice(0..0, notes);
    let mut out = io::stdout().lock();
    write_inspect(&mut out, &report, a.list)?;
    Ok(ExitCode::from(EXIT_OK))
}

fn write_inspect(out: &mut impl Write, r: &ReplayReport, list: usize) -> io::Result<()> {
    use mend::text::timefmt::{human_ms, to_rfc3339};
    let sensors: std::collections::BTreeSet<u32> = r.streams.iter().map(|s| s.sensor).collect();
    writeln!(
        out,
        "sensors: {}",
        sensors
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    for i in &r.inputs {
        writeln!(out, "{}", summary::input_line(i))?;
    }
    let first = r.streams.iter().filter_map(|s| s.first_ms).min();
    let last = r.streams.iter().filter_map(|s| s.last_ms).max();
    if let (Some(a), Some(b)) = (first, last) {
        writeln!(
            out,
            "time span: {} .. {} ({})",
            to_rfc3339(a),
            to_rfc3339(b),
            human_ms(b - a)
        )?;
    }
    for s in &r.streams {
        writeln!(
            out,
            "session: sensor {} session {}: period {}, {} clock{}; {} readings received{}",
            s.sensor,
            s.session,
            human_ms(u64::from(s.period_ms)),
            s.clock,
            if s.has_seq { "" } else { ", no seq" },
            s.received,
            match (s.first_ms, s.last_ms) {
                (Some(a), Some(b)) => format!(" from {} to {}", to_rfc3339(a), to_rfc3339(b)),
                _ => String::new(),
            }
        )?;
        let mut lines = String::new();
        summary::resend_lines(&mut lines, s);
        write!(out, "{lines}")?;
        writeln!(out, "  {}", summary::counters_line(s))?;
        writeln!(
            out,
            "  quality of the readings kept: good {}, doubtful {}, bad {}",
            s.good, s.doubtful, s.bad
        )?;
        writeln!(
            out,
            "  gaps: {} ({} readings missing); outages: {} ({} readings missing)",
            s.gaps, s.missing, s.outages, s.missing_in_outages
        )?;
        for o in &s.outage_list {
            writeln!(
                out,
                "    outage {} .. {} ({} missing)",
                to_rfc3339(o.start_ms),
                to_rfc3339(o.end_ms),
                o.missing
            )?;
        }
        let mut edge = String::new();
        summary::stream_section(&mut edge, s, None);
        for line in edge.lines().filter(|l| {
            let l = l.trim_start();
            l.starts_with("edge stats") || l.starts_with("sensor faults")
        }) {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "damaged or unusable input: {}", r.dead_letters)?;
    for (reason, n) in &r.dead_by_reason {
        writeln!(out, "  {reason}: {n}")?;
    }
    for d in r.first_dead_letters.iter().take(list) {
        writeln!(
            out,
            "  {} {}: {} ({})",
            d.input, d.location, d.reason, d.detail
        )?;
    }
    if r.dead_letters > r.first_dead_letters.len() as u64 {
        writeln!(
            out,
            "  … and {} more",
            r.dead_letters - r.first_dead_letters.len() as u64
        )?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}
