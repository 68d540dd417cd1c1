//! Checking a file's schema against `source:` and projecting the columns a
//! run reads: tokens, id, carried columns (hive directories included).

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::plan::SourceColumns;
use crate::window::is_token_column;

type Projection = (SchemaRef, Vec<Option<usize>>, bool);

/// Checks a file's schema against the plan; returns the batch schema, the root
/// column index of each output column (None for hive columns) and whether the
/// token column is flat.
pub(crate) fn project(
    plan: &SourceColumns,
    path: &Path,
    schema: &Schema,
    hive: &[(String, String)],
    constants: &[(String, String)],
) -> Result<Projection> {
    let available = || {
        let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        names.extend(hive.iter().map(|(k, _)| k.clone()));
        names.join(", ")
    };
    let find = |name: &str, key: &str| -> Result<(Field, Option<usize>)> {
        if constants.iter().any(|(k, _)| k == name) {
            return Ok((Field::new(name, DataType::Utf8, false), None));
        }
        if let Ok(i) = schema.index_of(name) {
            return Ok((schema.field(i).clone(), Some(i)));
        }
        if hive.iter().any(|(k, _)| k == name) {
            return Ok((Field::new(name, DataType::Utf8, true), None));
        }
        Err(Error::input(
            path,
            format!(
                "column `{name}` ({key}) not found; available columns: {}",
                available()
            ),
        ))
    };
    let (tokens, tokens_root) = find(&plan.tokens, "source.tokens")?;
    if tokens_root.is_none() || !is_token_column(tokens.data_type()) {
        return Err(Error::input(
            path,
            format!(
                "column `{}` (source.tokens) must be a list of integers or an integer column, found {}",
                plan.tokens,
                tokens.data_type()
            ),
        ));
    }
    let flat = tokens.data_type().is_integer();
    let mut fields = vec![tokens];
    let mut roots = vec![tokens_root];
    if let Some(id) = &plan.id {
        let (f, r) = find(id, "source.id")?;
        if !(f.data_type().is_integer()
            || matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ))
        {
            return Err(Error::input(
                path,
                format!(
                    "column `{id}` (source.id) must be an integer or string column, found {}",
                    f.data_type()
                ),
            ));
        }
        fields.push(f.with_name("__id"));
        roots.push(r);
    }
    for c in &plan.carry {
        let (f, r) = find(c, "source.carry")?;
        fields.push(f);
        roots.push(r);
    }
    Ok((Arc::new(Schema::new(fields)), roots, flat))
}
