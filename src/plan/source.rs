//! `source:` → [`SourcePlan`]: where the corpus is (classified once) and
//! which columns are read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Problems, SourceColumns, SourcePlan, RESERVED_COLUMNS};
use crate::config::{OptionValue, SourceConfig};
use crate::location::Location;

/// Compiles `source:`; relative paths resolve against `base`.
pub fn compile_source(src: &SourceConfig, base: &Path, problems: &mut Problems) -> SourcePlan {
    let columns = compile_columns(&src.tokens, src.id.as_deref(), &src.carry, problems);
    if src.path.is_empty() {
        problems.push("`source.path` must not be empty".into());
    }
    let path = locate(problems, "source.path", base, &src.path);
    check_storage_options(
        problems,
        "source.storage_options",
        &src.storage_options,
        path.as_ref(),
    );
    SourcePlan {
        path: path.unwrap_or_else(|| Location::Local(PathBuf::new())),
        columns,
        storage_options: text_options(&src.storage_options),
        constants: Vec::new(),
    }
}

/// Checks the column names of `source:` (also those of in-memory windowing).
pub fn compile_columns(
    tokens: &str,
    id: Option<&str>,
    carry: &[String],
    problems: &mut Problems,
) -> SourceColumns {
    if tokens.is_empty() {
        problems.push("`source.tokens` must name a column".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in carry {
        if RESERVED_COLUMNS.contains(&c.as_str()) {
            problems.push(format!(
                "`source.carry` column `{c}` clashes with a column seqwin writes ({})",
                RESERVED_COLUMNS.join(", ")
            ));
        }
        if c == tokens {
            problems.push(format!(
                "`source.carry` cannot carry the token column `{c}`"
            ));
        }
        if !seen.insert(c) {
            problems.push(format!("`source.carry` lists `{c}` twice"));
        }
    }
    SourceColumns {
        tokens: tokens.to_string(),
        id: id.map(str::to_string),
        carry: carry.to_vec(),
    }
}

/// Classifies a path key; a problem is recorded (and `None` returned) when
/// it cannot be read.
pub(super) fn locate(
    problems: &mut Problems,
    key: &str,
    base: &Path,
    path: &str,
) -> Option<Location> {
    Location::parse(path, base)
        .map_err(|message| problems.push(format!("`{key}`: {message}")))
        .ok()
}

/// `storage_options` only make sense with an object store path (not
/// checked when the path itself is broken).
pub(super) fn check_storage_options(
    problems: &mut Problems,
    key: &str,
    options: &BTreeMap<String, OptionValue>,
    path: Option<&Location>,
) {
    if !options.is_empty() && path.is_some_and(|p| !p.is_remote()) {
        problems.push(format!(
            "`{key}` is only used with an object store path (s3://, gs://, az://)"
        ));
    }
}

/// Storage option values as text, as the store clients read them.
pub(super) fn text_options(options: &BTreeMap<String, OptionValue>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}
