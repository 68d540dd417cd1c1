//! `sink.mode: append` (docs/format.md §5.1): what an append may add to an
//! existing dataset, and how the manifest of the new version is made.
//!
//! ```text
//!   previous manifest ──► same window-shaping settings?  (else exit 2 naming the key)
//!                    ──► recorded inputs unchanged?      (else exit 2 naming the file)
//!                    ──► new files only, ordinals continued
//!   new windows ──► new part files numbered after each partition's last
//!   previous + new ──► manifest of version + 1
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{AppendCheck, Outcome};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::hive::data_file_seq;
use crate::plan::Plan;
use crate::sink::Target;
use crate::sink::{FieldEntry, InputEntry, Manifest, PartitionEntry};
use crate::source::{Source, Stamp};
use crate::window::{ExtraColumn, TokenAccount};

/// The settings that shape windows, in the order they are compared: an
/// append must use the dataset's values, or existing and new windows would
/// differ in geometry, columns, split or partitioning.
const SHAPING_KEYS: &[&str] = &[
    "source.tokens",
    "source.id",
    "source.carry",
    "windows.seq_len",
    "windows.stride",
    "windows.pack",
    "windows.separator",
    "windows.remainder",
    "windows.pad_id",
    "windows.ignore_index",
    "windows.dtype",
    "windows.vocab_size",
    "windows.columns",
    "split.fractions",
    "split.seed",
    "shuffle.seed",
    "tbptt.batch_size",
    "sink.partition_by",
];

/// The value of a dotted key of a config (`Null` when unset); `stride`
/// defaults to `seq_len`, and `shuffle.seed` stands for the shuffle itself.
fn shaping_value(config: &PipelineConfig, key: &str) -> serde_json::Value {
    let tree = serde_json::to_value(config).unwrap_or_default();
    let mut node = &tree;
    for part in key.split('.') {
        node = match node.get(part) {
            Some(v) => v,
            None => &serde_json::Value::Null,
        };
    }
    match (key, node) {
        ("windows.stride", serde_json::Value::Null) => serde_json::json!(config.windows.seq_len),
        ("source.carry" | "windows.columns" | "sink.partition_by", serde_json::Value::Null) => {
            serde_json::json!([])
        }
        _ => node.clone(),
    }
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "not set".into(),
        other => other.to_string(),
    }
}

/// The first window-shaping key whose value differs between `old` and
/// `new`, with both values.
fn first_difference(
    old: &PipelineConfig,
    new: &PipelineConfig,
) -> Option<(&'static str, serde_json::Value, serde_json::Value)> {
    SHAPING_KEYS.iter().find_map(|key| {
        let (expected, found) = (shaping_value(old, key), shaping_value(new, key));
        (expected != found).then_some((*key, expected, found))
    })
}

/// Checks that `new` shapes windows as `previous` (the dataset's config) did.
///
/// # Errors
/// [`Error::Sink`] naming the first key that differs, expected vs found.
pub(super) fn check_config(sink: &Path, previous: &Manifest, new: &PipelineConfig) -> Result<()> {
    match first_difference(&previous.config, new) {
        None => Ok(()),
        Some((key, expected, found)) => Err(Error::sink(
            sink,
            format!(
                "sink.mode: append cannot change `{key}`: expected {} (as in version {} of the dataset), found {}; append with the dataset's settings, or write a new dataset with sink.mode: overwrite",
                show(&expected),
                previous.version,
                show(&found)
            ),
        )),
    }
}

/// Checks that the new windows have the dataset's columns (an id or carried
/// column whose type changed in the new files would make mixed files).
///
/// # Errors
/// [`Error::Sink`] naming the first column that differs.
pub(super) fn check_schema(sink: &Path, previous: &Manifest, new: &[FieldEntry]) -> Result<()> {
    let line = |f: Option<&FieldEntry>| {
        f.map_or("no column".to_string(), |f| {
            format!(
                "`{}` {}{}",
                f.name,
                f.data_type,
                if f.nullable { "" } else { " not null" }
            )
        })
    };
    for k in 0..previous.schema.len().max(new.len()) {
        let (a, b) = (previous.schema.get(k), new.get(k));
        if a != b {
            return Err(Error::sink(
                sink,
                format!(
                    "sink.mode: append would write files with another schema: column {k} expected {}, found {}; write a new dataset with sink.mode: overwrite",
                    line(a),
                    line(b)
                ),
            ));
        }
    }
    Ok(())
}

/// The input files a dataset has ingested, to pick the new ones. Files are
/// recognised by their path relative to the source's root (the whole path
/// for entries of manifests that did not record it).
#[derive(Debug)]
pub(super) struct Ingested {
    by_key: HashMap<String, InputEntry>,
    /// The last recorded input in source order, when new files must sort after it.
    ordered_after: Option<InputEntry>,
    /// Rows of every recorded file: the first ordinal of the new documents.
    pub(super) rows: u64,
}

fn key_of(entry: &InputEntry) -> &str {
    entry.rel_path.as_deref().unwrap_or(&entry.path)
}

impl Ingested {
    /// The recorded inputs of `previous`; `ordinals` says whether documents
    /// are numbered by their ordinal (no `source.id`) and the ordinal shows
    /// (a split or a `doc_id` column).
    pub(super) fn new(previous: &Manifest, ordinals: bool) -> Ingested {
        Ingested {
            by_key: (previous.inputs.iter())
                .map(|i| (key_of(i).to_string(), i.clone()))
                .collect(),
            ordered_after: ordinals
                .then(|| {
                    previous
                        .inputs
                        .iter()
                        .max_by(|a, b| key_of(a).cmp(key_of(b)))
                })
                .flatten()
                .cloned(),
            rows: previous.inputs.iter().map(|i| i.rows).sum(),
        }
    }

    /// Whether a listed file is new (read it), already ingested and
    /// unchanged (skip it), or changed since (an error).
    ///
    /// # Errors
    /// [`Error::Input`] naming a recorded file whose size, time or ETag
    /// changed, or a new file that sorts before an ingested one when
    /// ordinals number the documents.
    pub(super) fn select(&self, stamp: &Stamp) -> Result<bool> {
        let recorded = (self.by_key.get(&stamp.rel))
            .or_else(|| self.by_key.get(stamp.path.to_string_lossy().as_ref()));
        let Some(old) = recorded else {
            if let Some(last) = &self.ordered_after {
                if Path::new(&stamp.rel) < Path::new(key_of(last)) {
                    return Err(Error::input(
                        &stamp.path,
                        format!(
                            "this new input file sorts before {}, which the dataset already holds: without `source.id` documents are numbered in source order (docs/format.md §1.4), so appending it would assign splits and doc ids differently from one run over all files; set `source.id`, or name new files so that they sort after the ingested ones",
                            last.path
                        ),
                    ));
                }
            }
            return Ok(true);
        };
        let mut changes = Vec::new();
        if old.bytes != stamp.bytes {
            changes.push(format!("size {} bytes, now {}", old.bytes, stamp.bytes));
        }
        for (what, was, now) in [
            ("modified", &old.modified, &stamp.modified),
            ("etag", &old.etag, &stamp.etag),
        ] {
            if was.is_some() && was != now {
                changes.push(format!(
                    "{what} {}, now {}",
                    was.as_deref().unwrap_or_default(),
                    now.as_deref().unwrap_or("not set")
                ));
            }
        }
        if changes.is_empty() {
            return Ok(false);
        }
        Err(Error::input(
            &stamp.path,
            format!(
                "this input file changed after version {} ingested it ({}); append never reads a file twice: restore it, put new data in a new file, or rebuild with sink.mode: overwrite",
                old.version,
                changes.join(", ")
            ),
        ))
    }
}

/// Whether documents are numbered by ordinal in a way the output shows.
pub(super) fn ordinals_show(config: &PipelineConfig) -> bool {
    config.source.as_ref().is_some_and(|s| s.id.is_none())
        && (config.split.is_some() || config.windows.columns.contains(&ExtraColumn::DocId))
}

/// The number each partition's next part file gets: one more than the
/// largest of its files in `previous`.
pub(super) fn next_file_seq(previous: &Manifest) -> HashMap<String, usize> {
    previous
        .partitions
        .iter()
        .map(|p| {
            let next = p
                .files
                .iter()
                .filter_map(|f| data_file_seq(f.name.rsplit('/').next().unwrap_or(&f.name)))
                .max()
                .map_or(0, |s| s + 1);
            (p.path.clone(), next)
        })
        .collect()
}

/// The manifest a run commits and what it did: `manifest` as it stands for
/// a new dataset, or the next version of `previous` for an append.
pub(super) fn finish(previous: Option<&Manifest>, manifest: Manifest) -> (Manifest, Outcome) {
    match previous {
        Some(previous) => {
            let outcome = Outcome::Appended {
                inputs: manifest.inputs.len(),
                windows: manifest.totals.windows,
                files: manifest.partitions.iter().map(|p| p.files.len()).sum(),
            };
            (next_version(previous, manifest), outcome)
        }
        None => (manifest, Outcome::Written),
    }
}

/// The manifest of the version after `previous`: its inputs and files
/// followed by the new ones, partition accounts and totals summed.
fn next_version(previous: &Manifest, mut new: Manifest) -> Manifest {
    let mut inputs = previous.inputs.clone();
    inputs.append(&mut new.inputs);
    let mut parts: BTreeMap<String, PartitionEntry> = previous
        .partitions
        .iter()
        .map(|p| (p.path.clone(), p.clone()))
        .collect();
    for p in new.partitions.drain(..) {
        match parts.get_mut(&p.path) {
            Some(old) => {
                old.account.add(&p.account);
                old.account.settle();
                old.files.extend(p.files);
            }
            None => {
                parts.insert(p.path.clone(), p);
            }
        }
    }
    let mut totals = TokenAccount::default();
    for p in parts.values() {
        totals.add(&p.account);
    }
    Manifest {
        inputs,
        partitions: parts.into_values().collect(),
        totals,
        ..new
    }
}

/// The source of an append: the files its dataset does not hold yet
/// (`None`: there are none), after checking that the pipeline shapes windows
/// as the dataset's does and that no ingested file changed.
///
/// # Errors
/// [`Error::Sink`] naming a window-shaping key that differs; [`Error::Input`]
/// naming a changed file, or a new file that would renumber documents.
pub(super) fn open_new_files(
    plan: &Plan,
    pool: &rayon::ThreadPool,
    staging: &Target,
) -> Result<Option<Source>> {
    let sink = plan.sink.path.to_path_buf();
    let Some(previous) = staging.previous() else {
        return pool.install(|| Source::open(&plan.source)).map(Some);
    };
    check_config(&sink, previous, &plan.config)?;
    let ingested = Ingested::new(previous, ordinals_show(&plan.config));
    let select = |stamp: &crate::source::Stamp| ingested.select(stamp);
    let source = pool.install(|| Source::open_selected(&plan.source, &select, ingested.rows))?;
    if let Some(s) = &source {
        if s.flat && plan.source.columns.id.is_none() {
            return Err(Error::sink(
                &sink,
                "sink.mode: append cannot extend a flat token column without `source.id`: the whole source is one document, which new files would continue; set `source.id`, or rebuild with sink.mode: overwrite",
            ));
        }
    }
    Ok(source)
}

/// What `seqwin check` says of an append: which files of `source` are new
/// (by index), and the dataset's state (`None` when there is no dataset yet).
///
/// # Errors
/// As [`open_new_files`]: a window-shaping key that differs, a changed file.
pub(super) fn plan(plan: &Plan, source: &Source) -> Result<(Vec<bool>, Option<AppendCheck>)> {
    let Some(previous) = crate::sink::current_version(&plan.sink)? else {
        return Ok((vec![true; source.files.len()], None));
    };
    check_config(&plan.sink.path.to_path_buf(), &previous, &plan.config)?;
    let ingested = Ingested::new(&previous, ordinals_show(&plan.config));
    let new = (source.files.iter())
        .map(|f| {
            ingested.select(&Stamp {
                path: f.path.clone(),
                rel: f.rel.clone(),
                bytes: f.bytes,
                modified: f.modified.clone(),
                etag: f.etag.clone(),
            })
        })
        .collect::<Result<Vec<bool>>>()?;
    let check = AppendCheck {
        version: previous.version,
        ingested: previous.inputs.len(),
        new_files: new.iter().filter(|n| **n).count(),
    };
    Ok((new, Some(check)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> PipelineConfig {
        PipelineConfig::parse_str(text, Path::new("p.yaml")).unwrap()
    }

    const BASE: &str = "source: {path: d, tokens: t}\nwindows: {seq_len: 8}\nsink: {path: o}\n";

    #[test]
    fn defaults_spelled_out_are_no_change() {
        let spelled = "source: {path: elsewhere, tokens: t, carry: []}\nwindows: {seq_len: 8, stride: 8, pad_id: 0, columns: []}\nsink: {path: o, partition_by: [], compression: none, mode: append}\n";
        assert_eq!(first_difference(&config(BASE), &config(spelled)), None);
    }

    #[test]
    fn the_first_differing_key_is_named_with_both_values() {
        let cases = [
            (
                "windows: {seq_len: 8}",
                "windows: {seq_len: 8, stride: 4}",
                "windows.stride",
                "8",
                "4",
            ),
            (
                "windows: {seq_len: 8}",
                "windows: {seq_len: 9, stride: 4}",
                "windows.seq_len",
                "8",
                "9",
            ),
            (
                "sink: {path: o}",
                "shuffle: {seed: 2}\nsink: {path: o}",
                "shuffle.seed",
                "null",
                "2",
            ),
            (
                "tokens: t}",
                "tokens: t, id: i}",
                "source.id",
                "null",
                "\"i\"",
            ),
        ];
        for (from, to, key, expected, found) in cases {
            let (a, b) = (config(BASE), config(&BASE.replace(from, to)));
            let (k, e, f) = first_difference(&a, &b).expect(key);
            assert_eq!(
                (k, e.to_string(), f.to_string()),
                (key, expected.into(), found.into())
            );
        }
    }
}
