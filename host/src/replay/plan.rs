//! What to read: the inputs, the settings, and how each input is read for `--from` and
//! `--until` (a seek, an early stop) where the probes of [`crate::input::seek::plan`] allow it.

use crate::input::seek::{self, InputPlan, PlanNote, SeekSettings};
use crate::input::{Format, InputSource};
use crate::replay::ReplayConfig;

/// Validated settings of a replay (or an inspection) over a set of inputs.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    /// The inputs.
    pub sources: Vec<InputSource>,
    /// The replay settings.
    pub config: ReplayConfig,
    /// Take the shortcuts for `--from` and `--until` (seek, early stop) where the input allows.
    pub seek: bool,
}

impl ReadPlan {
    /// Decides how each input is read: a seek for `--from` and an early stop for `--until`,
    /// where the probes of [`crate::input::seek::plan`] allow them (never without
    /// [`ReadPlan::seek`]). What was decided, and why, is added to `notes`.
    ///
    /// # Errors
    /// An input that cannot be probed (unreadable file).
    pub fn input_plans(&self, notes: &mut Vec<String>) -> anyhow::Result<Vec<InputPlan>> {
        let mut plans = vec![InputPlan::default(); self.sources.len()];
        let e = &self.config.engine;
        // A seek finds frames; JSONL read as such is read from the start.
        let jsonl = self.config.input_format == Some(Format::Jsonl);
        if !self.seek || jsonl || (e.from.is_none() && e.until.is_none()) {
            return Ok(plans);
        }
        let settings = SeekSettings::from_env();
        for (s, out) in self.sources.iter().zip(plans.iter_mut()) {
            match s {
                // Probing a pipe would take the bytes the replay then reads.
                InputSource::Path(p) if s.rereadable() => {
                    let (got, said) = seek::plan(p, &e.seek_window(), &settings)?;
                    *out = got;
                    notes.extend(said.iter().map(|n| format!("{}: {n}", p.display())));
                }
                _ if e.until.is_some() => {
                    notes.push(format!("{}: {}", s.name(), PlanNote::NotAFile));
                }
                _ => {}
            }
        }
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    fn plan(sources: Vec<InputSource>, engine: EngineConfig, seek: bool) -> ReadPlan {
        ReadPlan {
            sources,
            config: ReplayConfig {
                engine,
                ..ReplayConfig::default()
            },
            seek,
        }
    }

    #[test]
    fn without_a_window_or_with_no_seek_every_input_is_read_whole() {
        let until = EngineConfig {
            until: Some(1_000),
            ..EngineConfig::default()
        };
        for p in [
            plan(vec![InputSource::Stdin], EngineConfig::default(), true),
            plan(vec![InputSource::Stdin], until.clone(), false),
        ] {
            let mut notes = Vec::new();
            assert_eq!(p.input_plans(&mut notes).unwrap(), [InputPlan::default()]);
            assert!(notes.is_empty(), "{notes:?}");
        }
    }

    #[test]
    fn standard_input_cannot_stop_early_and_says_so() {
        let p = plan(
            vec![InputSource::Stdin],
            EngineConfig {
                until: Some(1_000),
                ..EngineConfig::default()
            },
            true,
        );
        let mut notes = Vec::new();
        assert_eq!(p.input_plans(&mut notes).unwrap(), [InputPlan::default()]);
        assert_eq!(notes, [format!("-: {}", PlanNote::NotAFile)]);
    }
}
