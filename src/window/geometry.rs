//! Window geometry, in one place: where windows start in a stream of `n`
//! tokens for `(seq_len, stride, remainder)`, how many there are and which
//! tokens they make targets; the lanes and steps of TBPTT; the bytes of an
//! output row. The kernel, `check`'s estimate, `stats`, the token account and
//! the planner all ask here.
//!
//! ```text
//!   n = 10, seq_len 4, stride 3, remainder pad
//!   starts 0, 3        full windows (s + seq_len + 1 <= n)
//!   start 6            padded window: input t6..t8 + pad, target t7..t9 + ignore
//! ```

use super::{ExtraColumn, Remainder, WindowSpec};

/// Window counts and token coverage of one stream (a document, or a packed
/// partition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Windows.
    pub windows: u64,
    /// Padded windows.
    pub padded_windows: u64,
    /// Padding positions.
    pub padding_positions: u64,
    /// Tokens that are the target of at least one window.
    pub targeted: u64,
}

impl Counts {
    /// The counts of `k` streams like this one.
    pub fn times(self, k: u64) -> Counts {
        Counts {
            windows: self.windows * k,
            padded_windows: self.padded_windows * k,
            padding_positions: self.padding_positions * k,
            targeted: self.targeted * k,
        }
    }

    /// Adds another stream's counts.
    pub fn add(&mut self, o: Counts) {
        self.windows += o.windows;
        self.padded_windows += o.padded_windows;
        self.padding_positions += o.padding_positions;
        self.targeted += o.targeted;
    }
}

/// `(seq_len, stride, remainder)`: where windows start and end in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Tokens per window.
    pub seq_len: u64,
    /// Distance between window starts.
    pub stride: u64,
    /// Whether a padded window covers the end of a stream.
    pub pad: bool,
}

impl Geometry {
    /// The geometry of a window spec.
    pub fn of(spec: &WindowSpec) -> Geometry {
        Geometry::new(spec.seq_len as u64, spec.stride as u64, spec.remainder)
    }

    /// A geometry from its parts.
    pub fn new(seq_len: u64, stride: u64, remainder: Remainder) -> Geometry {
        Geometry {
            seq_len,
            stride,
            pad: remainder == Remainder::Pad,
        }
    }

    /// Whether the full window starting at `start` lies inside a stream of
    /// `end` tokens (its last target is token `start + seq_len`).
    #[inline]
    pub fn fits(&self, start: u64, end: u64) -> bool {
        start + self.seq_len < end
    }

    /// Full windows of a stream of `n` tokens: `floor((n - seq_len - 1) / stride) + 1`
    /// when `n >= seq_len + 1`, else 0.
    pub fn full_windows(&self, n: u64) -> u64 {
        if n > self.seq_len {
            (n - self.seq_len - 1) / self.stride + 1
        } else {
            0
        }
    }

    /// One past the last target position of the first `full` full windows.
    fn covered_end(&self, full: u64) -> u64 {
        if full == 0 {
            0
        } else {
            (full - 1) * self.stride + self.seq_len + 1
        }
    }

    /// The padded window at the end of a stream of `n` tokens, if there is
    /// one: `(start, real input tokens)`. `next` is the first start that is
    /// not a full window and `covered` one past the last targeted position.
    pub fn padded(&self, next: u64, covered: u64, n: u64) -> Option<(u64, u64)> {
        (self.pad && covered < n && next + 1 < n).then(|| (next, n - 1 - next))
    }

    /// Counts of a stream of `n` tokens (the closed form of the plain loop).
    pub fn stream(&self, n: u64) -> Counts {
        let (l, s) = (self.seq_len, self.stride);
        let full = self.full_windows(n);
        let mut c = Counts {
            windows: full,
            ..Counts::default()
        };
        if full > 0 {
            c.targeted = if s <= l { (full - 1) * s + l } else { full * l };
        }
        let covered = self.covered_end(full);
        if let Some((start, len)) = self.padded(full * s, covered, n) {
            c.windows += 1;
            c.padded_windows += 1;
            c.padding_positions += l - len;
            c.targeted += n - (start + 1).max(covered);
        }
        c
    }

    /// An estimate of the windows of `tokens` tokens in `docs` documents
    /// (from Parquet footers, before reading data): exact for one stream,
    /// otherwise assuming every document is longer than a window.
    pub fn estimate(&self, tokens: u64, docs: u64, pack: bool, separator: bool) -> u64 {
        let pad = self.pad as u64;
        if pack {
            let stream = tokens + docs * separator as u64;
            stream.saturating_sub(self.seq_len) / self.stride + 1 + pad
        } else {
            tokens.saturating_sub(docs * self.seq_len) / self.stride + pad * docs
        }
    }

    /// An upper bound on the windows of `tokens` tokens in `docs` documents
    /// (packed with separators or not): a stream of `n` tokens has at most
    /// `n / stride + 1` windows, plus a padded one, per document.
    pub fn upper_bound(&self, tokens: u64, docs: u64, separator: bool) -> u64 {
        (tokens + docs * separator as u64) / self.stride + 2 * docs + 2
    }
}

/// TBPTT geometry of a packed stream: `lanes` contiguous lanes of `lane_len`
/// tokens (the tail that does not divide evenly is dropped), each cut into
/// `steps` consecutive windows of `seq_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// Tokens per lane.
    pub lane_len: u64,
    /// Windows per lane.
    pub steps: u64,
    /// Number of lanes (`tbptt.batch_size`).
    pub lanes: u64,
    /// Tokens per window.
    pub seq_len: u64,
}

impl Lanes {
    /// The lanes of a stream of `total` tokens.
    pub fn new(total: u64, lanes: u64, seq_len: u64) -> Lanes {
        let lane_len = total / lanes.max(1);
        Lanes {
            lane_len,
            steps: if lane_len > seq_len {
                (lane_len - 1) / seq_len
            } else {
                0
            },
            lanes,
            seq_len,
        }
    }

    /// Stream start of the window at `(lane, step)`.
    pub fn start(&self, lane: u64, step: u64) -> u64 {
        lane * self.lane_len + step * self.seq_len
    }

    /// `(lane, step)` of the window that starts at stream position `start`.
    pub fn position(&self, start: u64) -> (u64, u64) {
        let lane_len = self.lane_len.max(1);
        (start / lane_len, (start % lane_len) / self.seq_len)
    }

    /// Output row of the window at `start`: rows go step by step, lanes within a step.
    pub fn row(&self, start: u64) -> u64 {
        let (lane, step) = self.position(start);
        step * self.lanes + lane
    }

    /// Rows (windows) of the stream.
    pub fn rows(&self) -> u64 {
        self.steps * self.lanes
    }

    /// Counts of the stream (TBPTT windows are never padded).
    pub fn counts(&self) -> Counts {
        Counts {
            windows: self.rows(),
            targeted: self.rows() * self.seq_len,
            ..Counts::default()
        }
    }
}

/// Uncompressed bytes of one window's `input` and `target`.
pub fn window_bytes(spec: &WindowSpec) -> u64 {
    2 * spec.seq_len as u64 * spec.dtype.width() as u64
}

/// Uncompressed bytes of one output row: `input`, `target` and the extra columns.
pub fn row_bytes(spec: &WindowSpec) -> u64 {
    let l = spec.seq_len as u64;
    window_bytes(spec)
        + spec
            .columns
            .iter()
            .map(|c| match c {
                ExtraColumn::DocId | ExtraColumn::Start => 8,
                ExtraColumn::LossMask => l,
                ExtraColumn::PositionIds | ExtraColumn::SegmentIds => 4 * l,
            })
            .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain loop of the dataset contract: windows start at 0, stride, …
    /// while `s + seq_len + 1 <= n`; with pad, one more at the next start when
    /// the last token is not yet a target and `s' + 1 < n`.
    fn reference(n: u64, l: u64, s: u64, pad: bool) -> Counts {
        let mut c = Counts::default();
        let mut targeted = vec![false; n as usize];
        let mut start = 0;
        while start + l < n {
            for t in start + 1..=start + l {
                targeted[t as usize] = true;
            }
            c.windows += 1;
            start += s;
        }
        if pad && n > 0 && !targeted[n as usize - 1] && start + 1 < n {
            for t in start + 1..n {
                targeted[t as usize] = true;
            }
            c.windows += 1;
            c.padded_windows += 1;
            c.padding_positions += l - (n - 1 - start);
        }
        c.targeted = targeted.iter().filter(|&&t| t).count() as u64;
        c
    }

    /// TBPTT by the plain loop: lane k holds tokens `k·lane_len ..`, windows
    /// of `seq_len` while the target stays inside the lane.
    fn tbptt_reference(n: u64, lanes: u64, l: u64) -> Vec<(u64, u64, u64)> {
        let lane_len = n / lanes;
        let mut rows = Vec::new();
        for lane in 0..lanes {
            let mut step = 0;
            while step * l + l < lane_len {
                rows.push((step * lanes + lane, lane, lane * lane_len + step * l));
                step += 1;
            }
        }
        rows.sort();
        rows
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn stream_counts_equal_the_plain_loop(n in 0u64..200, l in 1u64..20, s in 1u64..25, pad in any::<bool>()) {
            let g = Geometry::new(l, s, if pad { Remainder::Pad } else { Remainder::Drop });
            prop_assert_eq!(g.stream(n), reference(n, l, s, pad));
            prop_assert_eq!(g.full_windows(n), reference(n, l, s, false).windows);
            prop_assert!(g.upper_bound(n, 1, false) >= g.stream(n).windows);
        }

        #[test]
        fn lanes_equal_the_plain_loop(n in 0u64..300, lanes in 1u64..9, l in 1u64..12) {
            let g = Lanes::new(n, lanes, l);
            let expected = tbptt_reference(n, lanes, l);
            prop_assert_eq!(g.rows(), expected.len() as u64);
            for (row, lane, start) in expected {
                prop_assert_eq!(g.position(start), (lane, (start - lane * g.lane_len) / l));
                prop_assert_eq!(g.row(start), row);
                prop_assert_eq!(g.start(lane, g.position(start).1), start);
            }
        }
    }

    #[test]
    fn row_bytes_count_every_column() {
        let mut spec = WindowSpec::new(4);
        assert_eq!(window_bytes(&spec), 32);
        assert_eq!(row_bytes(&spec), 32);
        spec.columns = ExtraColumn::ALL.to_vec();
        assert_eq!(row_bytes(&spec), 32 + 8 + 8 + 4 + 16 + 16);
    }
}
