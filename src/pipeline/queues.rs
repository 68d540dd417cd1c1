//! Cutting the windows queued in each partition into row groups (or
//! shuffle/TBPTT spill jobs), within one run-level budget of queued windows.

use std::sync::Arc;

use super::jobs::{Cut, Jobs, Part, Payload, SpillJob};
use super::run::Run;
use crate::error::Result;
use crate::sink::Take;
use crate::window::Token;

/// Budget of the windows queued (cut, not yet in a row group) over all
/// partitions, in output row bytes: eight default row groups. Only runs
/// with many partitions reach it (each holds less than one row group).
const QUEUED_BYTES: u64 = 32 << 20;

impl<T: Token> Run<'_, T> {
    /// Seals touched windowers and cuts full row groups (all rows when
    /// `finish`); then, while the windows queued in all partitions exceed
    /// [`QUEUED_BYTES`], flushes the longest queues as short row groups.
    pub(super) fn collect_jobs(&mut self, touched: &[usize], finish: bool) -> Result<Jobs<T>> {
        let mut jobs = (Vec::new(), Vec::new());
        let take = if finish { Take::All } else { Take::Full };
        for &i in touched {
            let part = &mut self.parts[i];
            part.windower.seal();
            let ready = part.windower.take_ready();
            // Windows of a packed stream (the only ones a windower cuts in
            // a mix): a stream ends where its source does, so all belong to
            // the source being read.
            if let Some(a) = self.sources.get_mut(self.origin) {
                *a.windows.get_or_insert(0) += ready.len() as u64;
            }
            part.enqueue(ready, self.origin)?;
            self.cut_part(i, take, &mut jobs)?;
        }
        if !finish {
            self.flush_over_budget(&mut jobs)?;
        }
        Ok(jobs)
    }

    /// Queued windows pin the decoded tokens they were cut from, in every
    /// partition until it has a row group's worth: with many partitions
    /// that is most of the corpus. Over the budget, the partitions with the
    /// most queued windows (ties: the first) are flushed until half of it is
    /// left. Decided here, in source order, so the output stays the same at
    /// any thread count.
    fn flush_over_budget(&mut self, jobs: &mut Jobs<T>) -> Result<()> {
        let row_bytes = self.row_bytes;
        let queued = move |p: &Part<T>| p.queue.len() as u64 * row_bytes;
        let mut total: u64 = self.parts.iter().map(queued).sum();
        if total <= QUEUED_BYTES {
            return Ok(());
        }
        let mut order: Vec<usize> = (0..self.parts.len())
            .filter(|&i| !self.parts[i].queue.is_empty())
            .collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.parts[i].queue.len()), i));
        for i in order {
            if total <= QUEUED_BYTES / 2 {
                break;
            }
            total -= queued(&self.parts[i]);
            self.cut_part(i, Take::Flush, jobs)?;
        }
        Ok(())
    }

    /// Cuts the queue of partition `i` into row groups (or spill jobs).
    fn cut_part(&mut self, i: usize, take: Take, (jobs, spills): &mut Jobs<T>) -> Result<()> {
        let rg = self.write.row_group_rows;
        let part = &mut self.parts[i];
        if let Some(spill) = &part.spill {
            let (keying, schema, buckets) = (
                spill.keying().clone(),
                Arc::clone(spill.schema()),
                spill.buckets(),
            );
            while part.queue.len() >= rg || (take != Take::Full && !part.queue.is_empty()) {
                let n = rg.min(part.queue.len());
                spills.push(SpillJob {
                    part: i,
                    first_index: part.windows_spilled,
                    windows: part.queue.drain(..n).collect(),
                    positions: (part.blend.is_some()).then(|| part.positions.drain(..n).collect()),
                    keying: keying.clone(),
                    schema: Arc::clone(&schema),
                    buckets,
                });
                part.windows_spilled += n as u64;
            }
            crate::window::compact(part.queue.make_contiguous());
            return Ok(());
        }
        let available = part.queue.len();
        for evicted in self.open_files.admit(&part.files, available, take) {
            if let Some(file_seq) = self.parts[evicted].files.end_current() {
                jobs.push(Cut::Close {
                    part: evicted,
                    file_seq,
                });
            }
        }
        let part = &mut self.parts[i];
        let queue = &mut part.queue;
        let mut take_rows = |n: usize| Ok(Payload::Windows(queue.drain(..n).collect()));
        let mut cut = Vec::new();
        part.files.cut(available, take, &mut take_rows, &mut cut)?;
        crate::window::compact(part.queue.make_contiguous());
        self.open_files.record(&part.files);
        jobs.extend(cut.into_iter().map(Cut::Encode));
        Ok(())
    }
}
