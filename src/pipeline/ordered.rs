//! Row orders other than source order: windows are scattered into shuffle,
//! TBPTT or blend buckets during the main pass, then each partition's buckets are
//! read back in key order and written.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::sink::encode::RowGroupEncoder;
use arrow_array::RecordBatch;
use rayon::prelude::*;

use super::jobs::{encode_job, Job, Payload, SpillJob};
use super::run::Run;
use crate::error::{Error, Result};
use crate::order::{Keying, Spill};
use crate::plan::Plan;
use crate::sink::{EncodedRowGroup, Take};
use crate::source::Source;
use crate::window::geometry::{self, Geometry};
use crate::window::{materialize, OutputLayout, Token};

impl<'a, T: Token> Run<'a, T> {
    /// Reads each partition's buckets back in key order and writes them.
    pub(super) fn ordered_pass(&mut self) -> Result<()> {
        let output = Arc::clone(&self.layout.schema);
        for i in 0..self.parts.len() {
            let mut spill = self.parts[i].spill.take().expect("ordered mode spills");
            spill.flush()?;
            let buckets = spill.buckets();
            for b in 0..buckets {
                crate::cancel::interrupted()?;
                let part = &mut self.parts[i];
                if let Some(batch) = spill.read_sorted(b, &output)? {
                    part.batches.push_back(batch);
                }
                let take = if b + 1 == buckets {
                    Take::All
                } else {
                    Take::Full
                };
                let available: usize = part.batches.iter().map(|b| b.num_rows()).sum();
                let batches = &mut part.batches;
                let mut take_rows = |n: usize| take_rows(batches, n).map(Payload::<T>::Batch);
                let mut jobs = Vec::new();
                part.files.cut(available, take, &mut take_rows, &mut jobs)?;
                for e in encode_all(jobs, &self.write.factory, &self.layout, &self.carry_columns)? {
                    self.parts[i].files.append(e)?;
                }
            }
            spill.remove();
            self.parts[i].files.close_open()?;
        }
        let _ = std::fs::remove_dir_all(&self.spill_root);
        Ok(())
    }
}

/// Removes the first `n` rows from a queue of batches.
pub(super) fn take_rows(batches: &mut VecDeque<RecordBatch>, n: usize) -> Result<RecordBatch> {
    let mut parts = Vec::new();
    let mut need = n;
    while need > 0 {
        let front = batches.pop_front().expect("enough rows queued");
        if front.num_rows() <= need {
            need -= front.num_rows();
            parts.push(front);
        } else {
            parts.push(front.slice(0, need));
            batches.push_front(front.slice(need, front.num_rows() - need));
            need = 0;
        }
    }
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one"));
    }
    arrow_select::concat::concat_batches(&parts[0].schema(), &parts)
        .map_err(|e| Error::Internal(e.to_string()))
}

pub(super) fn encode_all<T: Token>(
    jobs: Vec<Job<T>>,
    factory: &RowGroupEncoder,
    layout: &OutputLayout,
    carry: &[usize],
) -> Result<Vec<EncodedRowGroup>> {
    let results: Vec<Result<EncodedRowGroup>> = jobs
        .into_par_iter()
        .map(|job| encode_job(job, factory, layout, carry))
        .collect();
    results.into_iter().collect()
}

/// Rows of one partition split by bucket.
pub(super) type ScatteredPart = (usize, Vec<(usize, RecordBatch)>);

pub(super) fn scatter_job<T: Token>(
    job: SpillJob<T>,
    layout: &OutputLayout,
    carry: &[usize],
) -> Result<ScatteredPart> {
    let mut local = layout.clone();
    if let Keying::Tbptt(lanes) = &job.keying {
        local.lanes = Some(*lanes);
    }
    let starts: Vec<u64> = job.windows.iter().map(|w| w.start).collect();
    let batch = materialize(&job.windows, &local, carry)?;
    let pieces = Spill::scatter(
        &job.keying,
        job.buckets,
        &job.schema,
        &batch,
        job.first_index,
        &starts,
        job.positions.as_deref(),
    )?;
    Ok((job.part, pieces))
}

pub(super) fn buckets_for(
    plan: &Plan,
    source: &Source,
    layout: &OutputLayout,
    memory_bytes: usize,
) -> (usize, usize) {
    // An upper bound on the output from the footers.
    let w = &plan.window;
    let tokens: u64 = source.units.iter().map(|u| u.tokens_estimate).sum();
    let windows = Geometry::of(w).upper_bound(tokens, source.total_rows(), w.separator.is_some());
    let estimate = windows * geometry::row_bytes(&layout.spec);
    // A bucket read back is copied once to sort, so it may take a third of the
    // budget; the write buffers take another third.
    let per_bucket = (memory_bytes / 3).max(1 << 20) as u64;
    let buckets = (estimate.div_ceil(per_bucket) * 2).clamp(1, 4096) as usize;
    (buckets, (memory_bytes / 3).max(1 << 20))
}
