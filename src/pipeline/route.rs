//! Routing decoded documents to output partitions in source order, and
//! decoding row groups in parallel waves for passes that only read.

use std::collections::HashMap;

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::prepare::{next_piece, prepare, Context, Decoded, OwnedKey, PartKey, Prepared};
use crate::error::Result;
use crate::window::Token;

/// A routing event: what the windower of partition `part` must do.
pub(crate) enum Event {
    Begin {
        part: usize,
        row: usize,
    },
    Tokens {
        part: usize,
        range: std::ops::Range<usize>,
    },
    End {
        part: usize,
    },
}

/// Maps unit-local partitions to global ones and tracks flat-stream documents
/// that continue across row groups.
#[derive(Default)]
pub(crate) struct Router {
    pub(crate) keys: Vec<PartKey>,
    pub(super) index: HashMap<String, usize>,
    pub(super) open_flat: Option<(usize, OwnedKey)>,
    /// The partition of a list-column document that continues in the next
    /// piece of a row group read in pieces.
    pub(super) open_doc: Option<usize>,
}

impl Router {
    pub(crate) fn global(&mut self, key: &PartKey) -> usize {
        if let Some(&i) = self.index.get(&key.dir) {
            return i;
        }
        self.keys.push(key.clone());
        self.index.insert(key.dir.clone(), self.keys.len() - 1);
        self.keys.len() - 1
    }

    pub(crate) fn events<T: Token>(&mut self, p: &Prepared<T>) -> Vec<Event> {
        // A partition is registered when a document begins in it: the piece
        // that continues a flat-stream document from the previous row group
        // stays in that document's partition, whatever its own row says.
        let mut map: Vec<Option<usize>> = vec![None; p.partitions.len()];
        let mut global = |router: &mut Router, local: usize| {
            *map[local].get_or_insert_with(|| router.global(&p.partitions[local]))
        };
        let mut events = Vec::with_capacity(p.pieces.len() * 3);
        for piece in &p.pieces {
            match &piece.key {
                None => {
                    // A piece that continues a document stays in its
                    // partition (the same: its row's values are the same).
                    let part = match self.open_doc.take() {
                        Some(open) if !piece.starts => open,
                        open => {
                            if let Some(open) = open {
                                events.push(Event::End { part: open });
                            }
                            let part = global(self, piece.part);
                            events.push(Event::Begin {
                                part,
                                row: piece.row,
                            });
                            part
                        }
                    };
                    events.push(Event::Tokens {
                        part,
                        range: piece.range.clone(),
                    });
                    if piece.ends {
                        events.push(Event::End { part });
                    } else {
                        self.open_doc = Some(part);
                    }
                }
                Some(key) => {
                    let continues = matches!(&self.open_flat, Some((_, k)) if k == key);
                    let part = if continues {
                        self.open_flat.as_ref().expect("open").0
                    } else {
                        let part = global(self, piece.part);
                        if let Some((open, _)) = self.open_flat.take() {
                            events.push(Event::End { part: open });
                        }
                        self.open_flat = Some((part, key.clone()));
                        events.push(Event::Begin {
                            part,
                            row: piece.row,
                        });
                        part
                    };
                    events.push(Event::Tokens {
                        part,
                        range: piece.range.clone(),
                    });
                }
            }
        }
        events
    }

    /// The partition of a flat-stream document still open at the end of the
    /// source, which must be ended.
    pub(crate) fn finish(&mut self) -> Option<usize> {
        self.open_flat
            .take()
            .map(|(p, _)| p)
            .or(self.open_doc.take())
    }
}

/// Calls `f` on every prepared unit in source order, decoding waves in
/// parallel. With `progress`, advances the bar by rows.
pub(super) fn for_each_wave<T: Token>(
    ctx: &Context<'_>,
    progress: Option<&ProgressBar>,
    mut f: impl FnMut(Prepared<T>) -> Result<()>,
) -> Result<()> {
    let wave = wave_size();
    let n = ctx.source.units.len();
    let mut start = 0;
    while start < n {
        let end = (start + wave).min(n);
        let decoded = decode_wave::<T>(ctx, start..end)?;
        for d in decoded {
            let mut next = Some(d);
            // A unit read in pieces: its pieces one after the other.
            while let Some(Decoded { prepared, rest }) = next.take() {
                if let Some(pb) = progress {
                    pb.inc(prepared.rows as u64);
                }
                f(prepared)?;
                if let Some(rest) = rest {
                    next = Some(next_piece::<T>(ctx, rest)?);
                }
            }
        }
        start = end;
    }
    Ok(())
}

pub(super) fn wave_size() -> usize {
    (rayon::current_num_threads() * 2).max(2)
}

pub(super) fn decode_wave<T: Token>(
    ctx: &Context<'_>,
    units: std::ops::Range<usize>,
) -> Result<Vec<Decoded<T>>> {
    let results: Vec<Result<Decoded<T>>> = units
        .into_par_iter()
        .map(|u| prepare::<T>(ctx, u))
        .collect();
    // The first error in source order, whatever finished first.
    results.into_iter().collect()
}
