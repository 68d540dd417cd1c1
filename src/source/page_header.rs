//! A Parquet page header, read from its Thrift compact encoding (the
//! `parquet` crate keeps its page header type private): the fields needed to
//! read a page as a stream ([`super::pages`]); the rest, statistics among
//! them, are skipped.

use parquet::basic::Encoding;

use crate::thrift::{Reader, BOOL_FALSE, BOOL_TRUE, I32, STRUCT};

/// The kind of a page and the fields of its kind's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PageKind {
    Dictionary {
        values: usize,
    },
    DataV1 {
        values: usize,
        encoding: Encoding,
        def_encoding: Encoding,
        rep_encoding: Encoding,
    },
    DataV2 {
        values: usize,
        encoding: Encoding,
        def_bytes: u64,
        rep_bytes: u64,
        compressed: bool,
    },
    /// An index page, or one of a kind this reader does not know: skipped.
    Other,
}

/// A page header and its length in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageHeader {
    pub(super) kind: PageKind,
    pub(super) compressed_size: u64,
    pub(super) uncompressed_size: u64,
    /// Bytes of the header itself.
    pub(super) header_len: u64,
}

/// A reader of the header's Thrift values, errors as messages.
struct Compact<'a, 'b>(&'b mut Reader<'a>);

const MALFORMED: &str = "a page header is not valid Thrift compact encoding";

impl Compact<'_, '_> {
    fn i32(&mut self) -> Result<i32, String> {
        let v = self.0.zigzag().map_err(|_| MALFORMED)?;
        i32::try_from(v).map_err(|_| "a page header's i32 is out of range".into())
    }

    /// A non-negative i32 as a size.
    fn size(&mut self, what: &str) -> Result<u64, String> {
        u64::try_from(self.i32()?).map_err(|_| format!("a page header's {what} is negative"))
    }

    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        self.0.field(last).map_err(|_| MALFORMED.into())
    }

    fn skip(&mut self, kind: u8) -> Result<(), String> {
        self.0.skip(kind, 0).map_err(|_| MALFORMED.into())
    }

    fn encoding(&mut self) -> Result<Encoding, String> {
        let v = self.i32()?;
        encoding(v).ok_or_else(|| format!("a page header names unknown encoding {v}"))
    }
}

/// The encoding numbered `v` in the Parquet format.
fn encoding(v: i32) -> Option<Encoding> {
    #[allow(deprecated)]
    Some(match v {
        0 => Encoding::PLAIN,
        2 => Encoding::PLAIN_DICTIONARY,
        3 => Encoding::RLE,
        4 => Encoding::BIT_PACKED,
        5 => Encoding::DELTA_BINARY_PACKED,
        6 => Encoding::DELTA_LENGTH_BYTE_ARRAY,
        7 => Encoding::DELTA_BYTE_ARRAY,
        8 => Encoding::RLE_DICTIONARY,
        9 => Encoding::BYTE_STREAM_SPLIT,
        _ => return None,
    })
}

/// Reads the page header at the start of `buf` (`Err` as well when `buf`
/// ends before the header does).
pub(super) fn read_page_header(buf: &[u8]) -> Result<PageHeader, String> {
    let mut r = Reader::new(buf);
    let mut c = Compact(&mut r);
    let (mut page_type, mut compressed, mut uncompressed) = (None, None, None);
    let mut kind = PageKind::Other;
    let mut last = 0;
    while let Some((id, t)) = c.field(&mut last)? {
        match (id, t) {
            (1, I32) => page_type = Some(c.i32()?),
            (2, I32) => uncompressed = Some(c.size("uncompressed size")?),
            (3, I32) => compressed = Some(c.size("compressed size")?),
            (5, STRUCT) => kind = data_v1(&mut c)?,
            (7, STRUCT) => kind = dictionary(&mut c)?,
            (8, STRUCT) => kind = data_v2(&mut c)?,
            (_, t) => c.skip(t)?,
        }
    }
    let (Some(page_type), Some(compressed_size), Some(uncompressed_size)) =
        (page_type, compressed, uncompressed)
    else {
        return Err("a page header lacks its type or sizes".into());
    };
    let expected = match &kind {
        PageKind::DataV1 { .. } => 0,
        PageKind::Dictionary { .. } => 2,
        PageKind::DataV2 { .. } => 3,
        // A data or dictionary page must say how it is laid out.
        PageKind::Other if matches!(page_type, 0 | 2 | 3) => {
            return Err(format!(
                "a page header of type {page_type} lacks its page's header"
            ));
        }
        PageKind::Other => page_type,
    };
    if page_type != expected {
        return Err(format!(
            "a page header of type {page_type} holds the header of a page of type {expected}"
        ));
    }
    Ok(PageHeader {
        kind,
        compressed_size,
        uncompressed_size,
        header_len: r.pos() as u64,
    })
}

fn data_v1(c: &mut Compact) -> Result<PageKind, String> {
    let (mut values, mut enc, mut def, mut rep) = (None, None, None, None);
    let mut last = 0;
    while let Some((id, t)) = c.field(&mut last)? {
        match (id, t) {
            (1, I32) => values = Some(c.size("value count")?),
            (2, I32) => enc = Some(c.encoding()?),
            (3, I32) => def = Some(c.encoding()?),
            (4, I32) => rep = Some(c.encoding()?),
            (_, t) => c.skip(t)?,
        }
    }
    match (values, enc, def, rep) {
        (Some(v), Some(encoding), Some(def_encoding), Some(rep_encoding)) => Ok(PageKind::DataV1 {
            values: v as usize,
            encoding,
            def_encoding,
            rep_encoding,
        }),
        _ => Err("a data page header lacks a required field".into()),
    }
}

fn dictionary(c: &mut Compact) -> Result<PageKind, String> {
    let mut values = None;
    let mut last = 0;
    while let Some((id, t)) = c.field(&mut last)? {
        match (id, t) {
            (1, I32) => values = Some(c.size("value count")?),
            (_, t) => c.skip(t)?,
        }
    }
    let values = values.ok_or("a dictionary page header lacks its value count")? as usize;
    Ok(PageKind::Dictionary { values })
}

fn data_v2(c: &mut Compact) -> Result<PageKind, String> {
    let (mut values, mut enc, mut def, mut rep) = (None, None, None, None);
    let mut compressed = true;
    let mut last = 0;
    while let Some((id, t)) = c.field(&mut last)? {
        match (id, t) {
            (1, I32) => values = Some(c.size("value count")?),
            (4, I32) => enc = Some(c.encoding()?),
            (5, I32) => def = Some(c.size("definition levels' length")?),
            (6, I32) => rep = Some(c.size("repetition levels' length")?),
            (7, BOOL_TRUE | BOOL_FALSE) => compressed = t == BOOL_TRUE,
            (_, t) => c.skip(t)?,
        }
    }
    match (values, enc, def, rep) {
        (Some(v), Some(encoding), Some(def_bytes), Some(rep_bytes)) => Ok(PageKind::DataV2 {
            values: v as usize,
            encoding,
            def_bytes,
            rep_bytes,
            compressed,
        }),
        _ => Err("a data page v2 header lacks a required field".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 data page header as parquet-cpp writes it: type 0, sizes 100
    /// and 60, a data page header (5 values, RLE_DICTIONARY, RLE, RLE) with
    /// statistics (a binary max, an i64), then the crc (field 4,
    /// written after field 5 here to exercise a long-form field id).
    #[test]
    fn a_data_page_header_reads_with_its_length_and_skips_the_rest() {
        let bytes = vec![
            0x15, 0x00, // 1: i32 0
            0x15, 0xc8, 0x01, // 2: i32 100
            0x15, 0x78, // 3: i32 60
            0x2c, // 5: struct
            0x15, 0x0a, // 1: 5
            0x15, 0x10, // 2: 8
            0x15, 0x06, // 3: 3
            0x15, 0x06, // 4: 3
            0x1c, // 5: statistics struct
            0x18, 0x02, 0xaa, 0xbb, // 1: binary of 2 bytes
            0x16, 0x04, // 2: i64 2
            0x00, // end of statistics
            0x00, // end of data page header
            0x05, 0x08, 0x0e, // field 4 in the long form: i32 7
            0x00, // end
            0xff, // the page's data
        ];
        let len = bytes.len() as u64 - 1;
        let h = read_page_header(&bytes).unwrap();
        assert_eq!(
            h,
            PageHeader {
                kind: PageKind::DataV1 {
                    values: 5,
                    encoding: Encoding::RLE_DICTIONARY,
                    def_encoding: Encoding::RLE,
                    rep_encoding: Encoding::RLE,
                },
                compressed_size: 60,
                uncompressed_size: 100,
                header_len: len,
            }
        );
    }

    #[test]
    fn a_truncated_or_inconsistent_header_is_refused() {
        assert_eq!(
            read_page_header(&[0x15, 0x00, 0x15]).unwrap_err(),
            "a page header is not valid Thrift compact encoding"
        );
        // Type 2 (dictionary) with a v1 data page header.
        let bytes = [
            0x15, 0x04, 0x15, 0x02, 0x15, 0x02, 0x2c, 0x15, 0x02, 0x15, 0x00, 0x15, 0x06, 0x15,
            0x06, 0x00, 0x00,
        ];
        assert_eq!(
            read_page_header(&bytes).unwrap_err(),
            "a page header of type 2 holds the header of a page of type 0"
        );
        // Type 0 (a data page) without its data page header.
        assert_eq!(
            read_page_header(&[0x15, 0x00, 0x15, 0x02, 0x15, 0x02, 0x00]).unwrap_err(),
            "a page header of type 0 lacks its page's header"
        );
    }
}
