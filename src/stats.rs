//! `seqwin stats`: the document-length distribution and, for candidate
//! `seq_len` values, how many windows a run would write.
//!
//! Window counts come from [`stream_counts`], the closed form of the §3.1/§3.2
//! loop; tests check it against the windower and against `run`.

use serde::Serialize;

use crate::config::{ExtraColumn, Remainder};
use crate::error::Result;
use crate::pipeline::Pipeline;
use crate::plan::RowOrder;

/// Default candidate `seq_len` values.
pub const DEFAULT_SEQ_LENS: &[usize] = &[64, 128, 256, 512, 1024, 2048, 4096, 8192];

/// Windows and token coverage of one stream (a document, or a packed partition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
    fn add(&mut self, o: Counts) {
        self.windows += o.windows;
        self.padded_windows += o.padded_windows;
        self.padding_positions += o.padding_positions;
        self.targeted += o.targeted;
    }
}

/// Closed form of SPEC §3.1/§3.2 for a stream of `n` tokens.
pub fn stream_counts(n: u64, seq_len: u64, stride: u64, remainder: Remainder) -> Counts {
    let l = seq_len;
    let s = stride;
    let full = if n > l { (n - l - 1) / s + 1 } else { 0 };
    let mut c = Counts {
        windows: full,
        ..Counts::default()
    };
    let covered_end = if full > 0 {
        c.targeted = if s <= l { (full - 1) * s + l } else { full * l };
        (full - 1) * s + l + 1
    } else {
        0
    };
    if remainder == Remainder::Pad && covered_end < n {
        let start = full * s;
        if start + 1 < n {
            let len = n - 1 - start;
            c.windows += 1;
            c.padded_windows += 1;
            c.padding_positions += l - len;
            c.targeted += n - (start + 1).max(covered_end);
        }
    }
    c
}

/// TBPTT counts for a packed stream of `n` tokens in `lanes` lanes.
pub fn tbptt_counts(n: u64, seq_len: u64, lanes: u64) -> Counts {
    let lane_len = n / lanes;
    let steps = if lane_len > seq_len {
        (lane_len - 1) / seq_len
    } else {
        0
    };
    Counts {
        windows: steps * lanes,
        targeted: steps * lanes * seq_len,
        ..Counts::default()
    }
}

/// One row of the candidate table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeqLenRow {
    /// Candidate window length.
    pub seq_len: usize,
    /// Stride used with it.
    pub stride: usize,
    /// Windows a run would write.
    pub windows: u64,
    /// Padded windows.
    pub padded_windows: u64,
    /// Share of input tokens that become targets.
    pub targeted_share: f64,
    /// Share of output positions that are padding.
    pub padding_share: f64,
    /// Uncompressed bytes of the window columns.
    pub output_bytes: u64,
}

/// A histogram bin of document lengths: `[lo, hi)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bin {
    /// Inclusive lower bound.
    pub lo: u64,
    /// Exclusive upper bound.
    pub hi: u64,
    /// Documents in the bin.
    pub documents: u64,
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    /// Documents.
    pub documents: u64,
    /// Tokens (without separators).
    pub tokens: u64,
    /// Shortest document.
    pub min: u64,
    /// Median length.
    pub median: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Longest document.
    pub max: u64,
    /// Log2 bins (`[0,1)`, `[1,2)`, `[2,4)`, …).
    pub histogram: Vec<Bin>,
    /// The candidate table.
    pub candidates: Vec<SeqLenRow>,
}

/// Reads the source once and computes the report for `seq_lens`.
///
/// The configured stride is used as is when it differs from the configured
/// `seq_len`; otherwise each candidate uses `stride = seq_len`.
///
/// # Errors
/// Input errors as in [`Pipeline::run`].
pub fn stats(
    pipeline: &Pipeline,
    seq_lens: &[usize],
    threads: Option<usize>,
) -> Result<StatsReport> {
    let plan = pipeline.plan();
    let lengths = pipeline.document_lengths(threads)?;
    let mut all: Vec<u64> = lengths.partitions.values().flatten().copied().collect();
    all.sort_unstable();
    let documents = all.len() as u64;
    let tokens: u64 = all.iter().sum();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            0
        } else {
            all[(((all.len() - 1) as f64) * p).round() as usize]
        }
    };
    let mut histogram: Vec<Bin> = Vec::new();
    for &n in &all {
        let (lo, hi) = if n == 0 {
            (0, 1)
        } else {
            (
                1u64 << (63 - n.leading_zeros()),
                1u64 << (64 - n.leading_zeros()),
            )
        };
        match histogram.last_mut() {
            Some(b) if b.lo == lo => b.documents += 1,
            _ => histogram.push(Bin {
                lo,
                hi,
                documents: 1,
            }),
        }
    }
    let w = &plan.window;
    let sep = w.separator.is_some() as u64;
    let follows = w.stride == w.seq_len;
    let mut candidates = Vec::new();
    for &l in seq_lens {
        let stride = if follows { l } else { w.stride };
        let mut c = Counts::default();
        let mut stream_tokens = 0u64;
        for docs in lengths.partitions.values() {
            let total: u64 = docs.iter().map(|n| n + sep * w.pack as u64).sum();
            stream_tokens += total;
            match plan.order {
                RowOrder::Tbptt { batch_size } => {
                    c.add(tbptt_counts(total, l as u64, batch_size as u64))
                }
                _ if w.pack => c.add(stream_counts(total, l as u64, stride as u64, w.remainder)),
                _ => {
                    for &n in docs {
                        c.add(stream_counts(n, l as u64, stride as u64, w.remainder));
                    }
                }
            }
        }
        let mut row_bytes = 2 * l as u64 * w.dtype.width() as u64;
        for col in &w.columns {
            row_bytes += match col {
                ExtraColumn::DocId | ExtraColumn::Start => 8,
                ExtraColumn::LossMask => l as u64,
                ExtraColumn::PositionIds | ExtraColumn::SegmentIds => 4 * l as u64,
            };
        }
        candidates.push(SeqLenRow {
            seq_len: l,
            stride,
            windows: c.windows,
            padded_windows: c.padded_windows,
            targeted_share: c.targeted as f64 / stream_tokens.max(1) as f64,
            padding_share: c.padding_positions as f64 / (c.windows * l as u64).max(1) as f64,
            output_bytes: c.windows * row_bytes,
        });
    }
    Ok(StatsReport {
        documents,
        tokens,
        min: all.first().copied().unwrap_or(0),
        median: pct(0.5),
        p90: pct(0.9),
        p99: pct(0.99),
        max: all.last().copied().unwrap_or(0),
        histogram,
        candidates,
    })
}

impl StatsReport {
    /// The terminal rendering: histogram, percentiles and the candidate table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{} documents, {} tokens; length min {} / median {} / p90 {} / p99 {} / max {}\n\n",
            self.documents, self.tokens, self.min, self.median, self.p90, self.p99, self.max
        ));
        out.push_str("document length (tokens)    documents\n");
        let peak = self
            .histogram
            .iter()
            .map(|b| b.documents)
            .max()
            .unwrap_or(1)
            .max(1);
        for b in &self.histogram {
            let bar = "#".repeat(((b.documents as f64 / peak as f64) * 40.0).ceil() as usize);
            out.push_str(&format!(
                "  [{:>8}, {:>8})  {:>10}  {}\n",
                b.lo, b.hi, b.documents, bar
            ));
        }
        out.push_str(
            "\n seq_len   stride      windows  targeted  padding   output (uncompressed)\n",
        );
        for r in &self.candidates {
            out.push_str(&format!(
                "{:>8} {:>8} {:>12} {:>8.1}% {:>7.1}%   {:.1} MB\n",
                r.seq_len,
                r.stride,
                r.windows,
                r.targeted_share * 100.0,
                r.padding_share * 100.0,
                r.output_bytes as f64 / 1e6
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain loop of SPEC §3.1/§3.2.
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

    #[test]
    fn closed_form_equals_loop() {
        for n in 0..40 {
            for l in 1..9 {
                for s in 1..12 {
                    for pad in [false, true] {
                        let r = if pad { Remainder::Pad } else { Remainder::Drop };
                        assert_eq!(
                            stream_counts(n, l, s, r),
                            reference(n, l, s, pad),
                            "n={n} l={l} s={s} pad={pad}"
                        );
                    }
                }
            }
        }
    }
}
