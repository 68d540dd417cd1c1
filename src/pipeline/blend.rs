//! The proportional interleave of an unshuffled mix ([`RowOrder::Blend`]):
//! a first pass counts the windows of each source in each partition, then
//! the main pass gives every window its position in the partition's
//! [`Blend`] and the spill buckets put the rows in that order.
//!
//! ```text
//!   pass 1: documents → (partition, source) → windows W[p][s]
//!           (no packing: the windows of each document; packing: those of
//!           the source's stream in the partition, documents + separators)
//!   pass 2: window j of source s in partition p → position of the j-th s
//!           in Blend(W[p]) → spill key → rows sorted by position
//! ```
//!
//! Neither pass keeps anything per document: pass 1 holds three counters
//! per (partition, source), pass 2 one cursor of `O(k)` counters per
//! (partition, source). Each cursor replays its partition's interleave, at
//! `O(k)` per position: `O(k²)` per window in the calling thread, cheap
//! next to materialising and encoding it for the few sources a mix has.
//!
//! [`RowOrder::Blend`]: crate::plan::RowOrder::Blend

use std::collections::HashMap;

use super::prepare::Context;
use super::route::for_each_wave;
use crate::error::{Error, Result};
use crate::order::Blend;
use crate::window::{Geometry, Token};

/// Partition directory → windows of each source (by unit origin).
pub(super) type Targets = HashMap<String, Vec<u64>>;

/// What pass 1 adds up for one (partition, source).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    documents: u64,
    tokens: u64,
    /// Windows of the documents (no packing).
    windows: u64,
}

/// Counts the windows each source gives each partition: the documents the
/// mix's passes select, decoded as tokens of type `T` and routed as the main
/// pass routes them, windowed by [`Geometry::stream`] (per document, or per
/// source's packed stream).
///
/// # Errors
/// Input errors of decoding, as in the main pass.
pub(super) fn count_windows<T: Token>(ctx: &Context<'_>, sources: usize) -> Result<Targets> {
    let w = &ctx.plan.window;
    let g = Geometry::of(w);
    let mut tallies: HashMap<String, Vec<Tally>> = HashMap::new();
    for_each_wave::<T>(ctx, None, |prepared| {
        for piece in &prepared.pieces {
            let dir = &prepared.partitions[piece.part].dir;
            if !tallies.contains_key(dir) {
                tallies.insert(dir.clone(), vec![Tally::default(); sources]);
            }
            let t = &mut tallies.get_mut(dir).expect("inserted")[prepared.origin];
            let n = piece.range.len() as u64;
            t.documents += 1;
            t.tokens += n;
            if !w.pack {
                t.windows += g.stream(n).windows;
            }
        }
        Ok(())
    })?;
    let separator = w.separator.is_some() as u64;
    Ok(tallies
        .into_iter()
        .map(|(dir, t)| {
            let windows = (t.iter())
                .map(|t| {
                    if w.pack {
                        g.stream(t.tokens + t.documents * separator).windows
                    } else {
                        t.windows
                    }
                })
                .collect();
            (dir, windows)
        })
        .collect())
}

/// The blend of one partition: a cursor per source.
#[derive(Debug)]
pub(super) struct PartBlend {
    cursors: Vec<Blend>,
    targets: Vec<u64>,
}

impl PartBlend {
    /// The blend of a partition whose sources give `targets` windows.
    pub(super) fn new(targets: Vec<u64>) -> PartBlend {
        PartBlend {
            cursors: vec![Blend::new(targets.clone()); targets.len()],
            targets,
        }
    }

    /// Windows in the partition.
    pub(super) fn rows(&self) -> u64 {
        self.targets.iter().sum()
    }

    /// The positions of the next `n` windows of `source`.
    ///
    /// # Errors
    /// [`Error::Internal`] if the source cuts more windows than pass 1 counted.
    pub(super) fn positions(&mut self, source: usize, n: usize) -> Result<Vec<u64>> {
        let cursor = &mut self.cursors[source];
        (0..n)
            .map(|_| {
                cursor.next_of(source).ok_or_else(|| {
                    Error::Internal(format!(
                        "source {source} cut more than the {} windows counted in pass 1",
                        self.targets[source]
                    ))
                })
            })
            .collect()
    }

    /// Checks that every source cut the windows pass 1 counted.
    ///
    /// # Errors
    /// [`Error::Internal`] naming the partition and the first short source.
    pub(super) fn check_complete(&self, dir: &str) -> Result<()> {
        for (s, (c, &t)) in self.cursors.iter().zip(&self.targets).enumerate() {
            if c.placed(s) != t {
                return Err(Error::Internal(format!(
                    "partition `{dir}`: source {s} cut {} windows, pass 1 counted {t}",
                    c.placed(s)
                )));
            }
        }
        Ok(())
    }
}
