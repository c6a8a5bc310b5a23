//! A run of a sensor's stream: the replay of its frames from the stored checkpoint and
//! engine state, giving the rows, dead letters, checkpoint and state its commit writes.

use std::sync::mpsc;

use anyhow::Context;

use super::commit::DeadLetter;
use super::state::State;
use super::Prepared;
use crate::checkpoint::Checkpoint;
use crate::engine::{EngineState, Uncaptured};
use crate::fleet::rows::RowSink;
use crate::input::seek::InputPlan;
use crate::input::InputSource;
use crate::replay::{first_pass, run_planned, Carry, Outputs, ReplayConfig};

/// Replays a sensor's stream from its checkpoint: the new rows (in `sink`, emptied first),
/// the dead letters, and the new checkpoint.
fn replay_stream(
    mut cfg: ReplayConfig,
    sensor: u32,
    bytes: Vec<u8>,
    state: &State,
    settle: bool,
    mut sink: RowSink,
) -> anyhow::Result<RunResult> {
    let input_len = bytes.len();
    let sources = [InputSource::Bytes(bytes.into())];
    let plans = [InputPlan::default()];
    cfg.engine.hold_back = !settle;
    // The stream may start after sessions that were trimmed once they had ended.
    cfg.engine.resume_ended = true;
    // Frames of another sensor in this sensor's raw stream (added by hand, or by another
    // publisher) are not this sensor's rows.
    cfg.engine.only_sensor = Some(sensor);
    // Positions count from the stream's first entry ever; the bytes start after the
    // trimmed ones.
    let mut checkpoint = state.checkpoint.clone();
    for seen in &mut checkpoint.seen {
        *seen = seen.saturating_sub(state.trimmed);
    }
    let mut pass = first_pass(&sources)?;
    loop {
        sink.reuse(input_len);
        let mut dead: Vec<u8> = Vec::new();
        let mut carry = Carry {
            restore: state.engine.clone(),
            ..Carry::default()
        };
        let result = run_planned(
            &sources,
            &plans,
            &cfg,
            checkpoint.clone(),
            pass,
            Outputs {
                records: &mut sink,
                dead_letters: Some(Box::new(&mut dead)),
                aggregates: None,
                progress: None,
                keep_dead_letters: 0,
                carry: Some(&mut carry),
            },
        )?;
        match result.spill {
            Some(set) => pass = crate::engine::Pass::Second(set),
            None => {
                let dead = dead
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).context("cannot read a dead letter"))
                    .collect::<anyhow::Result<Vec<DeadLetter>>>()?;
                let mut checkpoint = result.checkpoint;
                for seen in &mut checkpoint.seen {
                    *seen += state.trimmed;
                }
                let captured = carry.captured.context("the replay left no engine state")?;
                return Ok((sink, dead, checkpoint, captured, carry.undecided));
            }
        }
    }
}

/// What a run over a sensor's stream gives: the new rows, the dead letters, the checkpoint,
/// the engine state for the next run (or why there is none), and the positions of readings
/// left undecided.
pub(super) type RunResult = (
    RowSink,
    Vec<DeadLetter>,
    Checkpoint,
    Result<EngineState, Uncaptured>,
    Vec<u64>,
);

/// A run to replay: the settings, the sensor as read, its frames, and a sink for its rows.
pub(super) struct Job {
    pub(super) cfg: ReplayConfig,
    pub(super) prep: Box<Prepared>,
    pub(super) bytes: Vec<u8>,
    pub(super) sink: RowSink,
}

/// What the replay of a [`Job`] gave, with the sensor as read.
type Replayed = (Box<Prepared>, anyhow::Result<RunResult>);

/// Replays runs, one at a time, on one thread kept for the worker's life, while the worker
/// reads the next sensor: a thread started per run cost its start, its stack's pages and
/// their release again for every sensor.
pub(super) struct Replayer {
    jobs: mpsc::SyncSender<Job>,
    done: mpsc::Receiver<Replayed>,
}

impl Replayer {
    /// Starts the replay thread; it ends when the replayer is dropped.
    pub(super) fn new() -> Self {
        let (jobs, todo) = mpsc::sync_channel::<Job>(1);
        let (finished, done) = mpsc::channel();
        std::thread::spawn(move || {
            for j in todo {
                let result = replay_stream(
                    j.cfg,
                    j.prep.sensor,
                    j.bytes,
                    &j.prep.state,
                    j.prep.settle,
                    j.sink,
                );
                if finished.send((j.prep, result)).is_err() {
                    break;
                }
            }
        });
        Self { jobs, done }
    }

    /// Hands a run over; the worker waits for one before it starts the next.
    ///
    /// # Errors
    /// The replay thread is gone.
    pub(super) fn start(&self, job: Job) -> anyhow::Result<()> {
        self.jobs
            .send(job)
            .ok()
            .context("the replay thread is gone")
    }

    /// Waits for the run handed over last.
    ///
    /// # Errors
    /// The replay thread is gone (it failed).
    pub(super) fn wait(&self) -> anyhow::Result<Replayed> {
        self.done.recv().ok().context("the replay thread is gone")
    }
}
