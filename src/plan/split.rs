//! `split:` → [`SplitSpec`]: split names in sorted order with cumulative
//! upper bounds; fractions positive and summing to 1.

use super::{Problems, SplitSpec};
use crate::config::SplitConfig;

/// Compiles `split:`.
pub fn compile_split(s: &SplitConfig, problems: &mut Problems) -> SplitSpec {
    let mut names = Vec::new();
    let mut cumulative = Vec::new();
    let mut total = 0.0;
    for (name, &fraction) in &s.fractions {
        if !(fraction > 0.0 && fraction <= 1.0) {
            problems.push(format!(
                "`split.fractions.{name}` must be in (0, 1], got {fraction}"
            ));
        }
        if name.is_empty() {
            problems.push("`split.fractions` has an empty split name".into());
        }
        total += fraction;
        names.push(name.clone());
        cumulative.push(total);
    }
    if s.fractions.is_empty() {
        problems.push("`split.fractions` must name at least one split".into());
    } else if (total - 1.0).abs() > 1e-9 {
        problems.push(format!(
            "`split.fractions` must sum to 1, got {}",
            (total * 1e9).round() / 1e9
        ));
    }
    if let Some(last) = cumulative.last_mut() {
        *last = 1.0;
    }
    SplitSpec {
        names,
        cumulative,
        seed: s.seed,
    }
}
