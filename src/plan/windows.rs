//! `windows:` → [`WindowSpec`]: ranges, duplicate columns, values that must
//! fit the output type, and what the user wrote (a stride given or not).

use super::{check_range, Problems, MAX_SEQ_LEN, MAX_STRIDE};
use crate::config::WindowsConfig;
use crate::window::{ExtraColumn, Remainder, WindowSpec};

/// Compiles `windows:`; `tbptt` (a `tbptt:` section is present) implies packing.
pub fn compile_windows(w: &WindowsConfig, tbptt: bool, problems: &mut Problems) -> WindowSpec {
    let seq_len = check_range(problems, "windows.seq_len", w.seq_len, 1, MAX_SEQ_LEN);
    let stride = match w.stride {
        Some(s) => check_range(problems, "windows.stride", s, 1, MAX_STRIDE),
        None => seq_len,
    };
    let vocab_size = match w.vocab_size {
        Some(v) if v < 1 => {
            problems.push(format!("`windows.vocab_size` must be at least 1, got {v}"));
            None
        }
        Some(v) => Some(v as u64),
        None => None,
    };
    let mut columns = w.columns.clone();
    columns.sort();
    for pair in columns.windows(2) {
        if pair[0] == pair[1] {
            problems.push(format!(
                "`windows.columns` lists `{}` twice",
                pair[0].name()
            ));
        }
    }
    columns.dedup();
    if w.remainder == Remainder::Pad && !columns.contains(&ExtraColumn::LossMask) {
        columns.push(ExtraColumn::LossMask);
        columns.sort();
    }

    let window = WindowSpec {
        seq_len,
        stride,
        stride_given: w.stride.is_some(),
        pack: w.pack || tbptt,
        separator: w.separator,
        remainder: w.remainder,
        pad_id: w.pad_id,
        ignore_index: w.ignore_index,
        dtype: w.dtype,
        vocab_size,
        columns,
    };
    window.validate(problems);
    window
}
