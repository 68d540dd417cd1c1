//! The planned mix of a `sources:` pipeline: each corpus opened with
//! [`Source::open`], its tokens taken from the footers, its passes resolved
//! by [`crate::plan::MixPlan::passes`], and the sources concatenated into one
//! [`Source`] whose units are repeated once per pass.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::source::Source;

/// One source of the planned mix, as `seqwin check` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixCheck {
    /// The source's name.
    pub name: String,
    /// Input files.
    pub files: usize,
    /// Input rows (documents, for list token columns).
    pub rows: u64,
    /// Tokens in the source (footer estimate).
    pub tokens: u64,
    /// Passes over the source (fractional: a keyed-hash share of its documents).
    pub passes: f64,
    /// Tokens the mix takes from it (`tokens · passes`, rounded).
    pub tokens_selected: u64,
    /// Its share of the mix's selected tokens.
    pub weight: f64,
}

/// A mix opened for reading: the sources as one [`Source`] (units repeated
/// for each pass), the passes over each source, and the planned mix.
pub(super) type OpenedMix = (Source, Vec<f64>, Vec<MixCheck>);

/// Opens every source of the plan's mix and resolves its passes.
///
/// # Errors
/// Input errors of [`Source::open`]; [`Error::ConfigInvalid`] naming the
/// source when its output columns differ from the first source's, when its
/// token column is flat, or when a weight needs more passes than allowed.
pub(super) fn open(plan: &Plan) -> Result<Option<OpenedMix>> {
    let Some(mix) = &plan.mix else {
        return Ok(None);
    };
    let invalid = |problems: Vec<String>| Error::ConfigInvalid {
        path: plan.pipeline_path.clone(),
        problems,
    };
    let mut opened = Vec::with_capacity(mix.sources.len());
    for s in &mix.sources {
        let source = Source::open(&s.source)?;
        if source.flat {
            return Err(invalid(vec![format!(
                "source `{}`: a flat token column (one token per row) cannot be mixed; give every source a list column of documents",
                s.name
            )]));
        }
        if let Some((first, f)) = opened.first().map(|f: &Source| (&mix.sources[0], f)) {
            let columns = |src: &Source| -> Vec<String> {
                (src.schema.fields().iter().skip(1))
                    .map(|f| format!("{}: {}", f.name(), f.data_type()))
                    .collect()
            };
            if columns(f) != columns(&source) || f.flat != source.flat {
                return Err(invalid(vec![format!(
                    "source `{}` gives other columns than source `{}`: expected [{}], found [{}]",
                    s.name,
                    first.name,
                    columns(f).join(", "),
                    columns(&source).join(", ")
                )]));
            }
        }
        opened.push(source);
    }
    let tokens: Vec<u64> = (opened.iter())
        .map(|s| s.units.iter().map(|u| u.tokens_estimate).sum())
        .collect();
    let passes = mix.passes(&tokens).map_err(invalid)?;
    let selected: Vec<u64> = (tokens.iter().zip(&passes))
        .map(|(&t, &r)| (t as f64 * r).round() as u64)
        .collect();
    let total = selected.iter().sum::<u64>().max(1) as f64;
    let checks = (mix.sources.iter().zip(&opened).enumerate())
        .map(|(i, (s, source))| MixCheck {
            name: s.name.clone(),
            files: source.files.len(),
            rows: source.total_rows(),
            tokens: tokens[i],
            passes: passes[i],
            tokens_selected: selected[i],
            weight: selected[i] as f64 / total,
        })
        .collect();
    let rounds: Vec<u32> = passes.iter().map(|r| r.ceil() as u32).collect();
    let source = Source::concat(opened, &rounds)?;
    Ok(Some((source, passes, checks)))
}

/// Refuses what a mix does not support yet: measuring document lengths
/// (`seqwin stats`) over several sources (exit code 2).
///
/// # Errors
/// [`Error::ConfigInvalid`] when the plan has `sources:`.
pub(super) fn refuse_run(plan: &Plan) -> Result<()> {
    match &plan.mix {
        None => Ok(()),
        Some(_) => Err(Error::ConfigInvalid {
            path: plan.pipeline_path.clone(),
            problems: vec![
                "`sources`: `seqwin stats` reads one source; run it on each corpus with `source:`"
                    .into(),
            ],
        }),
    }
}
