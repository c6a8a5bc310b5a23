//! How a stream ends (a newer session of its sensor started, or the replay finished):
//! everything it holds goes out, except, at the end of a checkpointed run that is not final,
//! the unsettled tail, which waits for the next run; then its books are closed.

use std::io;

use mend_core::Counters;

use super::clock::Verdict;
use super::config::EngineConfig;
use super::emit::{dead_letter, Refusal, Sinks};
use super::stream::{place_set_aside, process_live, Pass, Stream};

impl Stream {
    /// Ends the stream: `at_finish` at the end of the replay (where a checkpointed run that
    /// is not final holds back its tail), otherwise because a newer session started. Its
    /// pipeline is freed; its report stays.
    pub(super) fn end(
        &mut self,
        cfg: &EngineConfig,
        pass: &mut Pass,
        at_finish: bool,
        sinks: &mut Sinks,
    ) -> io::Result<()> {
        // At the end of a run that holds back its tail, a reading held by the clock check is
        // undecided: the next reading decides, so it waits for the next run with the tail.
        // Otherwise a held reading that nothing contradicted goes on.
        let hold = at_finish && cfg.hold_back;
        let (verdict, undecided) = match self.live.as_mut() {
            Some(live) if hold => (Verdict::default(), live.guard.held() as u64),
            Some(live) => {
                let v = live.guard.finish();
                for g in &v.glitches {
                    self.out.extra.input = self.out.extra.input.wrapping_add(1);
                    self.out.extra.rejected = self.out.extra.rejected.wrapping_add(1);
                    let why = Refusal::ClockJump {
                        frontier: live.guard.frontier(),
                    };
                    dead_letter(sinks, g, &g.reading, why)?;
                }
                (v, 0)
            }
            None => return Ok(()),
        };
        for x in verdict.pass {
            self.admit(cfg, pass, x, sinks)?;
        }
        self.close(cfg, at_finish, undecided, sinks)
    }

    /// Releases what the stream holds (its settled part only, at the end of a run that holds
    /// back), writes its last aggregates and closes its books; `undecided` readings held by
    /// the clock check wait for a later run.
    fn close(
        &mut self,
        cfg: &EngineConfig,
        at_finish: bool,
        undecided: u64,
        sinks: &mut Sinks,
    ) -> io::Result<()> {
        let Some(mut live) = self.live.take() else {
            return Ok(());
        };
        let out = &mut self.out;
        out.extra.input = out
            .extra
            .input
            .wrapping_add(u32::try_from(undecided).unwrap_or(u32::MAX));
        let settled = (at_finish && cfg.hold_back).then(|| {
            live.guard
                .frontier()
                .map_or(0, |f| f.saturating_sub(cfg.lateness_ms + cfg.max_gap_ms))
        });
        let mut held_back = undecided;
        while let Some(rel) = live.reorder.pop_any() {
            if settled.is_some_and(|b| rel.reading.timestamp > b) {
                held_back += 1;
                continue;
            }
            let key = (rel.reading.timestamp, rel.reading.seq);
            place_set_aside(&mut live, out, cfg, Some(key), sinks)?;
            process_live(&mut live, out, cfg, rel.reading, sinks)?;
        }
        // Popped by the loop above but not written: they stay held for a later run.
        let popped_unwritten = held_back - undecided;
        let last = settled.map(|b| (b, u32::MAX));
        place_set_aside(&mut live, out, cfg, last, sinks)?;
        if let Some(cursor) = live.spill.as_mut() {
            // What is left at the end of a checkpointed run waits for the next one.
            while cursor.pop()?.is_some() {
                held_back += 1;
                out.extra.input = out.extra.input.wrapping_add(1);
                out.report.received += 1;
            }
        }
        live.filler.finish();
        if let Some(mut agg) = out.aggregator.take() {
            for a in agg.finish() {
                out.windows
                    .push(out.key, a, sinks.aggregates.as_deref_mut())?;
            }
        }
        // A window that reaches past --until misses the records after it: a later run
        // writes it whole.
        let windows_settled = settled.map(|b| cfg.until.map_or(b, |u| b.min(u)));
        out.windows
            .finish(out.key, windows_settled, sinks.aggregates.as_deref_mut())?;
        let mut c = live.reorder.counters();
        c.emitted = c
            .emitted
            .wrapping_sub(u32::try_from(popped_unwritten).unwrap_or(u32::MAX));
        c.add(&out.extra);
        // Released, then refused for their seq: rejected, not emitted.
        c.emitted = c.emitted.wrapping_sub(live.seq_refused);
        c.rejected = c.rejected.wrapping_add(live.seq_refused);
        out.extra = Counters::default();
        let rep = &mut out.report;
        rep.held_back += held_back;
        rep.counters.add(&c);
        // Held-back readings stay in the books as held: a later run writes them.
        rep.balanced = rep
            .counters
            .balanced(usize::try_from(rep.held_back).unwrap_or(usize::MAX));
        Ok(())
    }
}
