//! Hive partition paths, written and read in one place: `key=value`
//! directory names with Hive/Spark escaping, and the names of data files.

use std::path::Path;

/// Hive's name for a null or empty partition value.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Whether values of a column can name partition directories that readers
/// decode back to the same value: text, numbers, booleans, dates — not bytes.
///
/// # Errors
/// A message saying why the type cannot partition.
pub fn check_value_type(dt: &arrow_schema::DataType) -> Result<(), String> {
    use arrow_schema::DataType::*;
    match dt {
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Err(format!(
            "{dt} values cannot name partition directories (readers would decode text, not the bytes); carry it without partitioning on it"
        )),
        List(_) | LargeList(_) | FixedSizeList(..) | Struct(_) | Map(..) => Err(format!(
            "{dt} values cannot name partition directories"
        )),
        _ => Ok(()),
    }
}

/// Whether a (non-null) value names a directory that readers decode back to
/// it: the empty string and the literal [`HIVE_DEFAULT_PARTITION`] both read
/// back as null.
///
/// # Errors
/// A message saying why the value cannot round-trip.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err(format!("an empty string would be written as {HIVE_DEFAULT_PARTITION} and read back as null; map it to a value first"))
    } else if value == HIVE_DEFAULT_PARTITION {
        Err(format!("the value {HIVE_DEFAULT_PARTITION} is how readers spell null; it cannot be a partition value"))
    } else {
        Ok(())
    }
}

/// Escapes a partition value the way Hive and Spark do: `%XX` for control
/// characters and `"#%'*/:=?\{[]^` and DEL; other characters as they are.
pub fn escape_partition_value(value: Option<&str>) -> String {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return HIVE_DEFAULT_PARTITION.to_string();
    };
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if (c as u32) < 0x20 || c == '\u{7f}' || "\"#%'*/:=?\\{[]^".contains(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape_partition_value`] (`%XX` → the byte), leaving malformed escapes as they are.
pub fn unescape_partition_value(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A partition directory, `key=value/key=value` (empty for no partitioning).
pub fn partition_dir(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                escape_partition_value(Some(k)),
                escape_partition_value(*v)
            )
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The name of the `seq`-th data file of partition directory `dir` (empty:
/// no partitioning): `dir/part-00000.parquet`.
pub fn part_file_name(dir: &str, seq: usize) -> String {
    if dir.is_empty() {
        format!("part-{seq:05}.parquet")
    } else {
        format!("{dir}/part-{seq:05}.parquet")
    }
}

/// Whether a file name is a data file of a dataset: `part-NNNNN.parquet`
/// as [`part_file_name`] makes it, or `part-NNNNN-T.parquet` as an object
/// store overwrite tags it.
pub fn is_data_file_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("part-")
        .and_then(|r| r.strip_suffix(".parquet"))
        .is_some_and(|stem| match stem.split_once('-') {
            Some((seq, tag)) => seq.len() >= 5 && digits(seq) && digits(tag),
            None => stem.len() >= 5 && digits(stem),
        })
}

/// The sequence number of a data file name (`part-00012.parquet` and
/// `part-00012-1.parquet` are both 12); `None` for other names. An append
/// numbers its files after the largest number of each partition, so its
/// names never collide with existing ones.
pub fn data_file_seq(name: &str) -> Option<usize> {
    if !is_data_file_name(name) {
        return None;
    }
    let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    stem.split('-').next()?.parse().ok()
}

/// Whether a file name (the last path component) is one [`part_file_name`] makes.
pub fn is_part_file_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|r| r.strip_suffix(".parquet"))
        .is_some_and(|digits| digits.len() >= 5 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// `key=value` directory components of `file` below `root`.
pub fn directory_values(root: &Path, file: &Path) -> Vec<(String, String)> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let mut out = Vec::new();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            let s = c.as_os_str().to_string_lossy();
            if let Some((k, v)) = s.split_once('=') {
                if !k.is_empty() {
                    let v = unescape_partition_value(v);
                    out.push((k.to_string(), v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_numbers() {
        assert_eq!(data_file_seq("part-00012.parquet"), Some(12));
        assert_eq!(data_file_seq("part-00012-1.parquet"), Some(12));
        assert_eq!(
            data_file_seq("part-123456-17646551234567890120001234.parquet"),
            Some(123456)
        );
        for other in [
            "part-12.parquet",
            "part-00012.parquet.bak",
            "x.parquet",
            "part-00012-a.parquet",
        ] {
            assert_eq!(data_file_seq(other), None, "{other}");
        }
    }
}
