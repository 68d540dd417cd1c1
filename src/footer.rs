//! A pre-check of a Parquet footer's schema before the parquet crate decodes
//! it: no schema element may claim more children than elements follow it,
//! and the schema may not nest deeper than [`MAX_DEPTH`].
//!
//! The parquet crate reserves `num_children` slots up front and recurses once
//! per nesting level, so a crafted footer (one `num_children` of 2^31−1, or
//! thousands of nested groups) makes it ask for 17 GB or overflow the stack:
//! an abort, not an error. This walk reads the Thrift compact encoding of
//! `FileMetaData` (field 2, the schema list) without allocating; everything
//! else in the footer it skips, and leaves to the parquet crate to judge.

use std::fmt;

use parquet::file::reader::ChunkReader;

use crate::thrift::{Malformed, Reader, Walk, BINARY, I32, LIST, STRUCT};

/// The deepest schema accepted (real schemas nest a handful of levels).
pub const MAX_DEPTH: usize = 128;

/// Why a footer was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterError(String);

impl fmt::Display for FooterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt footer: {}", self.0)
    }
}

impl std::error::Error for FooterError {}

/// The footer's Thrift bytes, when `tail` (the last bytes of a file of
/// `file_len` bytes) holds all of them; `None` when it does not (not
/// Parquet, encrypted, or more bytes are needed): the parquet crate then
/// reports or asks for more.
pub fn metadata_in_tail(tail: &[u8], file_len: u64) -> Option<&[u8]> {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return None;
    }
    let len = u32::from_le_bytes(tail[n - 8..n - 4].try_into().ok()?) as usize;
    if len as u64 + 8 > file_len || len + 8 > n {
        return None;
    }
    Some(&tail[n - 8 - len..n - 8])
}

/// Checks the footer of a whole file (local file, bytes in memory); reads
/// that fail are left to the parquet crate, which reads the footer next.
///
/// # Errors
/// As [`check_metadata`].
pub fn check_file<R: ChunkReader>(file: &R) -> Result<(), FooterError> {
    let len = file.len();
    let Some(meta_len) = len
        .checked_sub(8)
        .and_then(|at| file.get_bytes(at, 8).ok())
        .filter(|end| &end[4..] == b"PAR1")
        .map(|end| u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]])))
        .filter(|n| n + 8 <= len)
    else {
        return Ok(());
    };
    match file.get_bytes(len - 8 - meta_len, meta_len as usize + 8) {
        Ok(tail) => metadata_in_tail(&tail, len).map_or(Ok(()), check_metadata),
        Err(_) => Ok(()),
    }
}

/// Checks the schema list of a footer's Thrift bytes (see the module doc).
///
/// # Errors
/// The first element whose `num_children` cannot hold, or too deep a schema;
/// a footer the walk cannot read at all is left to the parquet crate.
pub fn check_metadata(thrift: &[u8]) -> Result<(), FooterError> {
    match schema_counts(&mut Reader::new(thrift)) {
        Ok(Some(elements)) => check_tree(&elements),
        // Unreadable before or inside the schema: the parquet crate's own
        // decoder reports it (it checks list sizes against the bytes left).
        Ok(None) | Err(Malformed) => Ok(()),
    }
}

/// `(name, num_children)` per schema element, in order.
type Elements = Vec<(String, i64)>;

fn check_tree(elements: &Elements) -> Result<(), FooterError> {
    let mut open: Vec<i64> = Vec::new();
    for (i, (name, n)) in elements.iter().enumerate() {
        let after = (elements.len() - i - 1) as i64;
        if *n > after {
            return Err(FooterError(format!(
                "schema element {i} ({name:?}) claims {n} children, but only {after} elements follow it"
            )));
        }
        if let Some(parent) = open.last_mut() {
            *parent -= 1;
        }
        if *n > 0 {
            open.push(*n);
            if open.len() > MAX_DEPTH {
                return Err(FooterError(format!(
                    "schema element {i} ({name:?}) nests deeper than {MAX_DEPTH} levels"
                )));
            }
        }
        while open.last() == Some(&0) {
            open.pop();
        }
    }
    Ok(())
}

/// The schema elements of `FileMetaData`, or `None` without a schema.
/// The schema elements of `FileMetaData`, or `None` without a schema.
fn schema_counts(r: &mut Reader) -> Walk<Option<Elements>> {
    let mut last = 0i16;
    while let Some((id, ty)) = r.field(&mut last)? {
        if id == 2 && ty == LIST {
            return elements(r).map(Some);
        }
        r.skip(ty, 0)?;
    }
    Ok(None)
}

/// `(name, num_children)` of each element of the schema list.
fn elements(r: &mut Reader) -> Walk<Elements> {
    let (size, ty) = r.list_header()?;
    // Every element takes at least one byte: a larger size is a lie.
    if ty != STRUCT || size > r.left() {
        return Err(Malformed);
    }
    let mut out = Vec::with_capacity(size);
    for _ in 0..size {
        let (mut name, mut children) = (String::new(), 0i64);
        let mut last = 0i16;
        while let Some((id, ty)) = r.field(&mut last)? {
            match (id, ty) {
                (4, BINARY) => name = String::from_utf8_lossy(r.binary()?).into_owned(),
                (5, I32) => children = r.zigzag()?,
                _ => r.skip(ty, 0)?,
            }
        }
        out.push((name, children));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(b: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }

    /// A footer's Thrift bytes for a schema of `(name, num_children)`.
    fn footer(schema: &[(&str, i32)]) -> Vec<u8> {
        let mut b = vec![0x15, 0x02]; // field 1 (i32 version) = 1
        b.push(0x19); // field 2 (delta 1), list
        b.push(0xfc); // size 15 → varint follows; element type struct
        varint(&mut b, schema.len() as u64);
        for (name, n) in schema {
            b.push(0x48); // field 4 (delta 4), binary
            varint(&mut b, name.len() as u64);
            b.extend_from_slice(name.as_bytes());
            b.push(0x15); // field 5 (delta 1), i32 (zigzag)
            varint(&mut b, u64::from(((*n << 1) ^ (*n >> 31)) as u32));
            b.push(0x00); // end of the element
        }
        b.push(0x00); // end of FileMetaData
        b
    }

    #[test]
    fn a_sound_schema_passes() {
        let f = footer(&[
            ("schema", 2),
            ("doc_id", 0),
            ("tokens", 1),
            ("list", 1),
            ("item", 0),
        ]);
        assert_eq!(check_metadata(&f), Ok(()));
    }

    #[test]
    fn too_many_children_is_refused_naming_the_element() {
        let f = footer(&[("schema", 1), ("tokens", i32::MAX), ("x", 0)]);
        assert_eq!(
            check_metadata(&f).unwrap_err().to_string(),
            "corrupt footer: schema element 1 (\"tokens\") claims 2147483647 children, but only 1 elements follow it"
        );
    }

    #[test]
    fn too_deep_a_schema_is_refused() {
        let mut schema = vec![("g", 1); MAX_DEPTH + 1];
        schema.push(("leaf", 0));
        assert_eq!(
            check_metadata(&footer(&schema)).unwrap_err().to_string(),
            format!("corrupt footer: schema element {MAX_DEPTH} (\"g\") nests deeper than {MAX_DEPTH} levels")
        );
        let mut ok = vec![("g", 1); MAX_DEPTH];
        ok.push(("leaf", 0));
        assert_eq!(check_metadata(&footer(&ok)), Ok(()));
    }

    #[test]
    fn the_tail_gives_the_metadata_only_when_whole() {
        let mut file = b"PAR1....".to_vec();
        file.extend_from_slice(&[1, 2, 3]);
        file.extend_from_slice(&3u32.to_le_bytes());
        file.extend_from_slice(b"PAR1");
        let len = file.len() as u64;
        assert_eq!(metadata_in_tail(&file, len), Some(&[1u8, 2, 3][..]));
        assert_eq!(metadata_in_tail(&file[file.len() - 9..], len), None);
        assert_eq!(metadata_in_tail(b"PARE", 4), None);
    }
}
