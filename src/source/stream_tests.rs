//! Tests of reading one document stored as one large page, in every codec
//! and page layout read as streams ([`super::pages`]): the tokens read in
//! pieces are the ones written, whatever the piece size.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Int32Array, Int64Array, LargeListArray, ListArray, RecordBatch,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::properties::{WriterProperties, WriterVersion};

use super::pages::TokenPages;

/// Tokens with repeats at many distances (so that the LZ codecs copy from
/// far back) among varied runs.
fn tokens(n: usize) -> Vec<i32> {
    let mut v: Vec<i32> = Vec::with_capacity(n);
    let mut x = 7u64;
    while v.len() < n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let back = (x >> 33) as usize % 300_000;
        let len = ((x >> 20) % 2000) as usize + 1;
        for i in 0..len.min(n - v.len()) {
            let t = if x & 3 == 0 && back > 0 && back <= v.len() {
                v[v.len() - back]
            } else {
                ((x >> 8) as i32 + i as i32 * 31) % 50_000
            };
            v.push(t);
        }
    }
    v
}

/// A file of one row, a list of `values`, written by arrow-rs with `codec`,
/// data page v2 or v1, with or without dictionaries.
fn one_document_file(values: ArrayRef, codec: Compression, v2: bool, dictionary: bool) -> Bytes {
    let item = Arc::new(Field::new("element", values.data_type().clone(), true));
    let list = ListArray::new(
        item,
        OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    );
    let batch = RecordBatch::try_from_iter([("tokens", Arc::new(list) as ArrayRef)]).unwrap();
    let props = WriterProperties::builder()
        .set_compression(codec)
        .set_dictionary_enabled(dictionary)
        .set_writer_version(if v2 {
            WriterVersion::PARQUET_2_0
        } else {
            WriterVersion::PARQUET_1_0
        })
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out.into()
}

#[test]
fn one_document_in_one_large_page_reads_back_in_pieces_in_every_codec() {
    let doc = tokens(1_500_000);
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::LZ4_RAW,
        Compression::GZIP(GzipLevel::default()),
        Compression::ZSTD(ZstdLevel::default()),
    ];
    // (v2, dictionary): PLAIN, dictionary in v1 and v2, DELTA_BINARY_PACKED.
    for (v2, dictionary) in [(false, false), (false, true), (true, true), (true, false)] {
        for codec in codecs {
            let case = format!("{codec:?}, v2 {v2}, dictionary {dictionary}");
            let file = one_document_file(
                Arc::new(Int32Array::from(doc.clone())),
                codec,
                v2,
                dictionary,
            );
            let meta = ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .unwrap();
            let rg = meta.row_group(0);
            assert_eq!(rg.column(0).compression(), codec, "{case}");
            let values = match (v2, dictionary) {
                (_, true) => Encoding::RLE_DICTIONARY,
                (false, false) => Encoding::PLAIN,
                (true, false) => Encoding::DELTA_BINARY_PACKED,
            };
            assert!(rg.column(0).encodings().any(|e| e == values), "{case}");
            let mut pages = TokenPages::try_new(Arc::new(file), &meta, 0, 0, &DataType::Int32)
                .unwrap()
                .unwrap_or_else(|| panic!("{case}: not read in pieces"));
            let mut got: Vec<i32> = Vec::with_capacity(doc.len());
            let mut pieces = 0;
            while let Some(piece) = pages.next_piece(333_333).unwrap() {
                let list = piece
                    .list
                    .as_any()
                    .downcast_ref::<LargeListArray>()
                    .unwrap();
                assert_eq!((list.len(), piece.first_row), (1, 0), "{case}");
                assert_eq!(piece.continues, pieces > 0, "{case}");
                let values = list.values().as_any().downcast_ref::<Int32Array>().unwrap();
                got.extend(values.values().iter());
                pieces += 1;
                assert_eq!(piece.last, got.len() == doc.len(), "{case}");
            }
            assert_eq!((pieces, pages.rows()), (5, 1), "{case}");
            assert!(got == doc, "{case}: tokens differ");
        }
    }
}

/// 64-bit tokens far apart (deltas of up to 64 bits, wrapping) in
/// DELTA_BINARY_PACKED and PLAIN pages.
#[test]
fn one_document_of_int64_tokens_reads_back_in_pieces() {
    let doc: Vec<i64> = tokens(300_000)
        .iter()
        .enumerate()
        .map(|(i, &t)| match i % 5 {
            0 => i64::MAX - i64::from(t.unsigned_abs()),
            1 => i64::MIN + i64::from(t.unsigned_abs()),
            _ => i64::from(t) << 20,
        })
        .collect();
    for v2 in [false, true] {
        let values = Arc::new(Int64Array::from(doc.clone()));
        let file = one_document_file(values, Compression::ZSTD(ZstdLevel::default()), v2, false);
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let mut pages = TokenPages::try_new(Arc::new(file), &meta, 0, 0, &DataType::Int64)
            .unwrap()
            .unwrap();
        let mut got: Vec<i64> = Vec::new();
        while let Some(piece) = pages.next_piece(70_000).unwrap() {
            let list = piece
                .list
                .as_any()
                .downcast_ref::<LargeListArray>()
                .unwrap();
            let values = list.values().as_any().downcast_ref::<Int64Array>().unwrap();
            got.extend(values.values().iter());
        }
        assert!(got == doc, "v2 {v2}: tokens differ");
    }
}
