//! The token account: every token in is either the target of a window or
//! counted as never targeted, and why.

/// The token account of one partition (docs/format.md §4).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenAccount {
    /// Documents (including empty ones).
    pub documents: u64,
    /// Tokens in, including separators when packing.
    pub tokens_in: u64,
    /// Tokens that are the target of at least one window.
    pub tokens_targeted: u64,
    /// Tokens never a target: `tokens_in - tokens_targeted`.
    pub tokens_never_targeted: u64,
    /// Separators added (packing).
    pub separators: u64,
    /// Windows written.
    pub windows: u64,
    /// Windows with padding.
    pub padded_windows: u64,
    /// Padding positions over all windows.
    pub padding_positions: u64,
    /// Windows whose input holds tokens of more than one document (packing).
    pub spanning_windows: u64,
}

impl TokenAccount {
    /// Counts a window of `len` real tokens at `start` of a stream whose
    /// target positions below `covered` are already counted.
    pub(super) fn count_window(&mut self, covered: &mut u64, start: u64, len: u64, seq_len: u64) {
        let target_end = start + len + 1;
        self.tokens_targeted += target_end - (start + 1).max((*covered).min(target_end));
        *covered = (*covered).max(target_end);
        self.windows += 1;
        if len < seq_len {
            self.padded_windows += 1;
            self.padding_positions += seq_len - len;
        }
    }

    /// Sets `tokens_never_targeted` from the other counts.
    pub fn settle(&mut self) {
        self.tokens_never_targeted = self.tokens_in - self.tokens_targeted;
    }

    /// Adds another account to this one.
    pub fn add(&mut self, o: &TokenAccount) {
        self.documents += o.documents;
        self.tokens_in += o.tokens_in;
        self.tokens_targeted += o.tokens_targeted;
        self.tokens_never_targeted += o.tokens_never_targeted;
        self.separators += o.separators;
        self.windows += o.windows;
        self.padded_windows += o.padded_windows;
        self.padding_positions += o.padding_positions;
        self.spanning_windows += o.spanning_windows;
    }
}
