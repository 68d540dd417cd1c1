//! `shuffle:` / `tbptt:` → [`RowOrder`]: the two exclude each other; TBPTT
//! needs `stride == seq_len` and `remainder: drop`.

use super::{check_range, Problems, RowOrder, MAX_TBPTT_BATCH};
use crate::config::{ShuffleConfig, TbpttConfig};
use crate::window::{Remainder, WindowSpec};

/// Compiles the row order from `shuffle:` and `tbptt:` for `window`.
pub fn compile_order(
    shuffle: Option<&ShuffleConfig>,
    tbptt: Option<&TbpttConfig>,
    window: &WindowSpec,
    problems: &mut Problems,
) -> RowOrder {
    match (shuffle, tbptt) {
        (Some(_), Some(_)) => {
            problems
                .push("`shuffle` and `tbptt` exclude each other: tbptt fixes the row order".into());
            RowOrder::Source
        }
        (Some(s), None) => {
            if s.memory_mb < 1 || s.memory_mb > (1 << 22) {
                problems.push(format!(
                    "`shuffle.memory_mb` must be between 1 and {}, got {}",
                    1u64 << 22,
                    s.memory_mb
                ));
            }
            RowOrder::Shuffle {
                seed: s.seed,
                memory_bytes: (s.memory_mb.clamp(1, 1 << 22) as usize) << 20,
            }
        }
        (None, Some(t)) => {
            let batch_size = check_range(
                problems,
                "tbptt.batch_size",
                t.batch_size,
                1,
                MAX_TBPTT_BATCH,
            );
            if window.stride != window.seq_len {
                problems.push(format!(
                    "`tbptt` requires `windows.stride` equal to `windows.seq_len` ({}), got {}",
                    window.seq_len, window.stride
                ));
            }
            if window.remainder != Remainder::Drop {
                problems.push("`tbptt` requires `windows.remainder: drop`".into());
            }
            RowOrder::Tbptt { batch_size }
        }
        (None, None) => RowOrder::Source,
    }
}
