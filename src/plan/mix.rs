//! `source:` / `sources:` / `mix:` → the [`SourcePlan`] of each corpus and,
//! for several, a [`MixPlan`]: names, amounts (`weight`, `repeat` or
//! `max_tokens`) and the mix settings, every broken rule recorded at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::source::compile_source;
use super::{Problems, SourceColumns, SourcePlan};
use crate::config::PipelineConfig;
use crate::location::Location;

/// How much of one corpus a mix takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Share of the output's tokens.
    Weight(f64),
    /// Passes over the corpus.
    Repeat(f64),
    /// Tokens taken from the corpus.
    MaxTokens(u64),
}

/// One validated entry of `sources:`.
#[derive(Debug, Clone)]
pub struct MixSourcePlan {
    /// The source's name.
    pub name: String,
    /// Where it is read from and which columns.
    pub source: SourcePlan,
    /// How much of it the mix takes.
    pub amount: Amount,
}

/// Validated `sources:` and `mix:`.
#[derive(Debug, Clone)]
pub struct MixPlan {
    /// The sources in the order given.
    pub sources: Vec<MixSourcePlan>,
    /// `mix.total_tokens` (weights only).
    pub total_tokens: Option<u64>,
    /// `mix.upsample` (weights only).
    pub upsample: bool,
    /// `mix.seed`: key of the fractional-pass hash.
    pub seed: u64,
}

/// The column `mix.source_column` writes.
pub const SOURCE_COLUMN: &str = "source";

/// Tolerance of the weights' sum.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;

/// Compiles the input sections: the [`SourcePlan`] read by a one-source run
/// (the first source of a mix) and the [`MixPlan`] when `sources:` is given.
pub fn compile_inputs(
    config: &PipelineConfig,
    base: &Path,
    problems: &mut Problems,
) -> (SourcePlan, Option<MixPlan>) {
    match (&config.source, config.sources.is_empty()) {
        (Some(_), false) => problems.push(
            "`source` and `sources` cannot both be given: list every corpus under `sources`".into(),
        ),
        (None, true) => problems.push("one of `source` or `sources` is required".into()),
        _ => {}
    }
    if let Some(src) = &config.source {
        if config.mix.is_some() {
            problems.push(
                "`mix` only applies to `sources`; remove it or list the corpus under `sources`"
                    .into(),
            );
        }
        return (compile_source(src, base, problems), None);
    }
    let mix = compile_mix(config, base, problems);
    match mix.sources.first() {
        Some(first) => (first.source.clone(), Some(mix)),
        None => (
            SourcePlan {
                path: Location::Local(PathBuf::new()),
                columns: SourceColumns {
                    tokens: String::new(),
                    id: None,
                    carry: Vec::new(),
                },
                storage_options: Default::default(),
                constants: Vec::new(),
            },
            None,
        ),
    }
}

fn compile_mix(config: &PipelineConfig, base: &Path, problems: &mut Problems) -> MixPlan {
    let mut names = BTreeSet::new();
    let mut sources = Vec::new();
    let mut weighted = Vec::new();
    let mut unweighted = Vec::new();
    for (i, s) in config.sources.iter().enumerate() {
        let key = format!("sources[{i}]");
        let mut own = Problems::new();
        let mut source = compile_source(&s.source(), base, &mut own);
        if config.mix.as_ref().is_some_and(|m| m.source_column) {
            if s.carry.iter().any(|c| c == SOURCE_COLUMN) {
                own.push(format!("`source.carry` lists `{SOURCE_COLUMN}`, which `mix.source_column` writes; rename the carried column or drop `mix.source_column`"));
            }
            source.columns.carry.push(SOURCE_COLUMN.to_string());
            source
                .constants
                .push((SOURCE_COLUMN.to_string(), s.name.clone()));
        }
        problems.extend(
            own.into_iter()
                .map(|p| p.replace("`source.", &format!("`{key}."))),
        );
        if s.name.is_empty() {
            problems.push(format!("`{key}.name` must not be empty"));
        } else if !names.insert(s.name.as_str()) {
            problems.push(format!(
                "`{key}.name` `{}` is used by an earlier source",
                s.name
            ));
        }
        let given: Vec<&str> = [
            ("weight", s.weight.is_some()),
            ("repeat", s.repeat.is_some()),
            ("max_tokens", s.max_tokens.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, g)| g.then_some(k))
        .collect();
        let amount = match (s.weight, s.repeat, s.max_tokens) {
            _ if given.len() != 1 => {
                problems.push(format!(
                    "`{key}` ({}) must give exactly one of `weight`, `repeat`, `max_tokens`, got {}",
                    s.name,
                    if given.is_empty() { "none".to_string() } else { given.join(", ") }
                ));
                Amount::Repeat(1.0)
            }
            (Some(w), _, _) => {
                if !(w.is_finite() && w > 0.0) {
                    problems.push(format!("`{key}.weight` must be positive, got {w}"));
                }
                Amount::Weight(w)
            }
            (_, Some(r), _) => {
                if !(r.is_finite() && r > 0.0) {
                    problems.push(format!("`{key}.repeat` must be positive, got {r}"));
                }
                Amount::Repeat(r)
            }
            (None, None, m) => {
                let m = m.unwrap_or(1);
                if m < 1 {
                    problems.push(format!("`{key}.max_tokens` must be at least 1, got {m}"));
                }
                Amount::MaxTokens(m.max(0) as u64)
            }
        };
        if given.len() == 1 {
            if given[0] == "weight" {
                &mut weighted
            } else {
                &mut unweighted
            }
            .push(s.name.as_str());
        }
        if let Some(f) = config.sources.first().filter(|_| i > 0) {
            if f.carry != s.carry {
                problems.push(format!(
                    "`{key}.carry` must list the columns of `sources[0].carry` ([{}]): every source gives the same output columns, got [{}]",
                    f.carry.join(", "),
                    s.carry.join(", ")
                ));
            }
        }
        sources.push(MixSourcePlan {
            name: s.name.clone(),
            source,
            amount,
        });
    }
    if !weighted.is_empty() && !unweighted.is_empty() {
        problems.push(format!(
            "`sources`: either every source gives `weight` or none does; `weight` in {}, `repeat` or `max_tokens` in {}",
            weighted.join(", "),
            unweighted.join(", ")
        ));
    }
    let weights: Vec<f64> = (sources.iter())
        .filter_map(|s| match s.amount {
            Amount::Weight(w) => Some(w),
            _ => None,
        })
        .collect();
    let sum: f64 = weights.iter().sum();
    if unweighted.is_empty() && !weights.is_empty() && (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        problems.push(format!("`sources` weights must sum to 1, got {sum}"));
    }
    let mix = config.mix.clone().unwrap_or(crate::config::MixConfig {
        total_tokens: None,
        upsample: false,
        seed: 0,
        source_column: false,
    });
    if config.tbptt.is_some() {
        problems.push("`sources` cannot be combined with `tbptt`: its lanes cut one packed stream per partition, and a mix keeps one per source; mix with `shuffle:` or without an order (proportional interleave)".into());
    }
    if weighted.is_empty() {
        if mix.total_tokens.is_some() {
            problems.push("`mix.total_tokens` only applies to sources given by `weight`".into());
        }
        if mix.upsample {
            problems.push("`mix.upsample` only applies to sources given by `weight`".into());
        }
    }
    if let Some(t) = mix.total_tokens.filter(|&t| t < 1) {
        problems.push(format!("`mix.total_tokens` must be at least 1, got {t}"));
    }
    MixPlan {
        sources,
        total_tokens: mix.total_tokens.map(|t| t.max(0) as u64),
        upsample: mix.upsample,
        seed: mix.seed,
    }
}

impl MixPlan {
    /// The passes over each source given its tokens (from the footers): the
    /// `repeat`, `max_tokens / tokens`, or `weight · T / tokens` where `T` is
    /// `mix.total_tokens` or the largest total that takes no source more
    /// than once.
    ///
    /// # Errors
    /// One message per source a weight would take more than once without
    /// `mix.upsample`, naming the source.
    pub fn passes(&self, tokens: &[u64]) -> Result<Vec<f64>, Problems> {
        let total = self.total_tokens.map(|t| t as f64).unwrap_or_else(|| {
            (self.sources.iter().zip(tokens))
                .filter_map(|(s, &t)| match s.amount {
                    Amount::Weight(w) => Some(t as f64 / w),
                    _ => None,
                })
                .fold(f64::INFINITY, f64::min)
        });
        let mut problems = Problems::new();
        let passes = (self.sources.iter().zip(tokens))
            .map(|(s, &t)| {
                let per = |wanted: f64| if t == 0 { 0.0 } else { wanted / t as f64 };
                match s.amount {
                    Amount::Repeat(r) => r,
                    Amount::MaxTokens(m) => per(m as f64),
                    Amount::Weight(w) => {
                        let r = per(w * total);
                        if r > 1.0 + 1e-12 && !self.upsample {
                            problems.push(format!(
                                "source `{}` has {t} tokens, too few for weight {w} of {} tokens without `mix.upsample: true` ({r:.3} passes)",
                                s.name,
                                total.round()
                            ));
                        }
                        r
                    }
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(passes)
        } else {
            Err(problems)
        }
    }
}
