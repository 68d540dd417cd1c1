//! The window spec: everything the kernel needs to cut and materialise
//! windows (geometry, padding values, element type, extra columns). Config
//! and plan build it; the kernel never sees the pipeline file.

use serde::{Deserialize, Serialize};

/// Default `windows.pad_id`.
pub const DEFAULT_PAD_ID: i64 = 0;
/// Default `windows.ignore_index` (PyTorch `CrossEntropyLoss` default).
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// `windows.remainder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Remainder {
    /// Tokens not in a full window are dropped (and counted).
    #[default]
    Drop,
    /// One more, padded window covers the end of the document.
    Pad,
}

/// `windows.dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDtype {
    /// 32-bit signed.
    #[default]
    Int32,
    /// 64-bit signed.
    Int64,
    /// 16-bit unsigned.
    Uint16,
    /// 32-bit unsigned.
    Uint32,
}

impl TokenDtype {
    /// The smallest value this type holds.
    pub fn min(self) -> i64 {
        match self {
            TokenDtype::Int32 => i32::MIN as i64,
            TokenDtype::Int64 => i64::MIN,
            TokenDtype::Uint16 | TokenDtype::Uint32 => 0,
        }
    }
    /// The largest value this type holds.
    pub fn max(self) -> i64 {
        match self {
            TokenDtype::Int32 => i32::MAX as i64,
            TokenDtype::Int64 => i64::MAX,
            TokenDtype::Uint16 => u16::MAX as i64,
            TokenDtype::Uint32 => u32::MAX as i64,
        }
    }
    /// Bytes per element.
    pub fn width(self) -> usize {
        match self {
            TokenDtype::Uint16 => 2,
            TokenDtype::Int32 | TokenDtype::Uint32 => 4,
            TokenDtype::Int64 => 8,
        }
    }
    /// The name used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            TokenDtype::Int32 => "int32",
            TokenDtype::Int64 => "int64",
            TokenDtype::Uint16 => "uint16",
            TokenDtype::Uint32 => "uint32",
        }
    }
    /// Whether `v` fits this type.
    pub fn holds(self, v: i64) -> bool {
        v >= self.min() && v <= self.max()
    }
}

/// An extra per-window column (`windows.columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraColumn {
    /// The document id (of the window's first token when packing).
    DocId,
    /// Offset of the window in its document (or in the packed stream).
    Start,
    /// 1 where the target is real, 0 where it is padding.
    LossMask,
    /// Position of each input token within its own document.
    PositionIds,
    /// Index of each input token's document within the window.
    SegmentIds,
}

impl ExtraColumn {
    /// Every extra column, in output order.
    pub const ALL: [ExtraColumn; 5] = [
        ExtraColumn::DocId,
        ExtraColumn::Start,
        ExtraColumn::LossMask,
        ExtraColumn::PositionIds,
        ExtraColumn::SegmentIds,
    ];

    /// The column name in the output.
    pub fn name(self) -> &'static str {
        match self {
            ExtraColumn::DocId => "doc_id",
            ExtraColumn::Start => "start",
            ExtraColumn::LossMask => "loss_mask",
            ExtraColumn::PositionIds => "position_ids",
            ExtraColumn::SegmentIds => "segment_ids",
        }
    }
}

/// Validated window geometry: the input of the window kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// Tokens per window.
    pub seq_len: usize,
    /// Distance between window starts.
    pub stride: usize,
    /// Whether the stride was given (`windows.stride`) rather than defaulted to `seq_len`.
    pub stride_given: bool,
    /// Concatenate documents before windowing.
    pub pack: bool,
    /// Token appended after every document when packing.
    pub separator: Option<i64>,
    /// Remainder handling.
    pub remainder: Remainder,
    /// Input padding value.
    pub pad_id: i64,
    /// Target padding value.
    pub ignore_index: i64,
    /// Output element type.
    pub dtype: TokenDtype,
    /// Exclusive upper bound on token ids.
    pub vocab_size: Option<u64>,
    /// Extra columns, in the output order of docs/format.md §2.1.
    pub columns: Vec<ExtraColumn>,
}

impl WindowSpec {
    /// A spec with the defaults of the pipeline file for the given `seq_len`.
    pub fn new(seq_len: usize) -> Self {
        WindowSpec {
            seq_len,
            stride: seq_len,
            stride_given: false,
            pack: false,
            separator: None,
            remainder: Remainder::Drop,
            pad_id: DEFAULT_PAD_ID,
            ignore_index: DEFAULT_IGNORE_INDEX,
            dtype: TokenDtype::Int32,
            vocab_size: None,
            columns: Vec::new(),
        }
    }

    /// Whether a column is written.
    pub fn has(&self, column: ExtraColumn) -> bool {
        self.columns.contains(&column)
    }

    /// Checks the rules of the pipeline file that concern windows; `problems` gets one
    /// line per broken rule.
    pub fn validate(&self, problems: &mut Vec<String>) {
        let dtype = self.dtype;
        if self.remainder == Remainder::Pad {
            if !dtype.holds(self.pad_id) {
                problems.push(format!(
                    "`windows.pad_id` {} does not fit dtype {} ({}..={})",
                    self.pad_id,
                    dtype.name(),
                    dtype.min(),
                    dtype.max()
                ));
            }
            if !dtype.holds(self.ignore_index) {
                problems.push(format!(
                    "`windows.ignore_index` {} does not fit dtype {} ({}..={}); set an ignore_index the dtype holds or use int32/int64",
                    self.ignore_index,
                    dtype.name(),
                    dtype.min(),
                    dtype.max()
                ));
            }
        }
        if let Some(sep) = self.separator {
            if sep < 0 || !dtype.holds(sep) {
                problems.push(format!(
                    "`windows.separator` {sep} must be a token id that fits dtype {} (0..={})",
                    dtype.name(),
                    dtype.max()
                ));
            } else if let Some(vocab) = self.vocab_size {
                if sep as u64 >= vocab {
                    problems.push(format!(
                        "`windows.separator` {sep} must be below `windows.vocab_size` {vocab}"
                    ));
                }
            }
            if !self.pack {
                problems.push("`windows.separator` is only used when packing: set `windows.pack: true` or remove it".into());
            }
        }
        if let Some(vocab) = self.vocab_size {
            if vocab as i128 - 1 > dtype.max() as i128 {
                problems.push(format!(
                    "`windows.vocab_size` {vocab} does not fit dtype {} (largest id {}); use a wider dtype",
                    dtype.name(),
                    dtype.max()
                ));
            }
        }
    }
}
