//! Tests of [`super::list_page`]: the pages arrow-rs writes (every page
//! version, encoding and codec the decoder reads) against the values
//! written, lists spanning pages and every departure from the list shape
//! built by hand, and corrupted pages.

use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeListArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};

use parquet::basic::Encoding;
use parquet::column::page::Page;

use super::list_page::{ListItem, ListPages, PageFit};

/// `rows` lists of `size` items with small, negative and extreme values
/// (deltas of the extremes need 33 bits).
fn items(rows: usize, size: usize) -> Vec<i64> {
    (0..rows * size)
        .map(|i| match i % 7 {
            0 => i32::MIN as i64,
            1 => i32::MAX as i64,
            2 => -(i as i64),
            _ => (i * 2_654_435_761 % 50_000) as i64,
        })
        .collect()
}

/// A Parquet file of one `fixed_size_list<int32|int64>[size]` column
/// holding `values`, in pages of at most 7 rows.
fn file(values: &[i64], size: usize, int32: bool, props: WriterProperties) -> Bytes {
    let mut flat: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    if int32 {
        flat = arrow_cast::cast(&flat, &DataType::Int32).unwrap();
    }
    let item = Arc::new(Field::new("item", flat.data_type().clone(), false));
    let list = FixedSizeListArray::new(item, size as i32, flat, None);
    let column: ArrayRef = Arc::new(list);
    let batch = RecordBatch::try_from_iter_with_nullable([("input", column, false)]).unwrap();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    Bytes::from(out)
}

/// Decodes the first column chunk of `bytes`; `None` when a page is unsupported.
fn decode<T: ListItem>(bytes: Bytes, size: usize, items: usize) -> Result<Option<Vec<T>>, String> {
    let reader = SerializedFileReader::new(bytes).unwrap();
    let mut pages = reader
        .get_row_group(0)
        .unwrap()
        .get_column_page_reader(0)
        .unwrap();
    let mut out = Vec::new();
    let mut decoder = ListPages::new(&mut out, size, items);
    let mut count = 0;
    while let Some(page) = pages.get_next_page().unwrap() {
        count += 1;
        if decoder.page(&page)? == PageFit::Unsupported {
            return Ok(None);
        }
    }
    decoder.finish()?;
    assert!(count > 1 || items <= 7 * size, "{count} pages");
    Ok(Some(out))
}

fn props(version: WriterVersion, encoding: Encoding, codec: Compression) -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(version)
        .set_dictionary_enabled(false)
        .set_encoding(encoding)
        .set_compression(codec)
        .set_data_page_row_count_limit(7)
        .set_write_batch_size(5)
        .build()
}

/// The pages arrow-rs writes (v1 and v2, PLAIN and DELTA_BINARY_PACKED,
/// compressed or not, several per chunk) decode to the values written.
#[test]
fn pages_arrow_rs_writes_decode_to_the_values_written() {
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::ZSTD(ZstdLevel::default()),
    ];
    for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
        for encoding in [Encoding::PLAIN, Encoding::DELTA_BINARY_PACKED] {
            for codec in codecs {
                for size in [1, 3, 200] {
                    let values = items(40, size);
                    let case = format!("{version:?} {encoding} {codec} size {size}");
                    let p = props(version, encoding, codec);
                    let got =
                        decode::<i32>(file(&values, size, true, p.clone()), size, values.len());
                    let want: Vec<i32> = values.iter().map(|&v| v as i32).collect();
                    assert_eq!(got, Ok(Some(want)), "{case}, int32");
                    let got = decode::<i64>(file(&values, size, false, p), size, values.len());
                    assert_eq!(got, Ok(Some(values)), "{case}, int64");
                }
            }
        }
    }
    // Dictionary-encoded pages are left to another reader.
    let dict = WriterProperties::builder()
        .set_dictionary_enabled(true)
        .build();
    let values = items(10, 4);
    let got = decode::<i32>(file(&values, 4, true, dict), 4, values.len());
    assert_eq!(got, Ok(None));
}

/// Pages with bytes overwritten decode or fail with an error, never a
/// panic or a read past the page (the decoder sizes nothing from the file
/// beyond the items the caller expects).
#[test]
fn corrupted_pages_fail_without_panicking() {
    let values = items(30, 5);
    for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
        for encoding in [Encoding::PLAIN, Encoding::DELTA_BINARY_PACKED] {
            let p = props(version, encoding, Compression::UNCOMPRESSED);
            let reader = SerializedFileReader::new(file(&values, 5, true, p)).unwrap();
            let mut pages = reader
                .get_row_group(0)
                .unwrap()
                .get_column_page_reader(0)
                .unwrap();
            let page = pages.get_next_page().unwrap().unwrap();
            let buf = page.buffer().clone();
            for (step, at) in (0..buf.len()).flat_map(|at| [(0u8, at), (1, at), (2, at)]) {
                let mut bytes = buf.to_vec();
                bytes[at] = match step {
                    0 => 0xff,
                    1 => 0x00,
                    _ => bytes[at] ^ 0x81,
                };
                let bytes = Bytes::from(bytes);
                let bad = match &page {
                    Page::DataPage {
                        num_values,
                        encoding,
                        ..
                    } => Page::DataPage {
                        buf: bytes,
                        num_values: *num_values,
                        encoding: *encoding,
                        def_level_encoding: Encoding::RLE,
                        rep_level_encoding: Encoding::RLE,
                        statistics: None,
                    },
                    Page::DataPageV2 {
                        num_values,
                        encoding,
                        num_rows,
                        def_levels_byte_len,
                        rep_levels_byte_len,
                        ..
                    } => Page::DataPageV2 {
                        buf: bytes,
                        num_values: *num_values,
                        encoding: *encoding,
                        num_nulls: 0,
                        num_rows: *num_rows,
                        def_levels_byte_len: *def_levels_byte_len,
                        rep_levels_byte_len: *rep_levels_byte_len,
                        is_compressed: false,
                        statistics: None,
                    },
                    Page::DictionaryPage { .. } => unreachable!("no dictionary"),
                };
                let mut out = Vec::new();
                let mut d = ListPages::<i32>::new(&mut out, 5, values.len());
                let _ = d.page(&bad);
                assert!(
                    out.len() <= values.len(),
                    "{version:?} {encoding} byte {at}"
                );
            }
        }
    }
}

/// A v1 data page built by hand: bit-packed 1-bit repetition and
/// definition levels, then PLAIN int32 values.
fn page(rep: &[u8], def: &[u8], values: &[i32]) -> Page {
    fn levels(bits: &[u8]) -> Vec<u8> {
        let groups = bits.len().div_ceil(8);
        let mut out = ((groups as u32) << 1 | 1).to_le_bytes()[..1].to_vec();
        for g in bits.chunks(8) {
            out.push(g.iter().enumerate().fold(0, |b, (i, &l)| b | l << i));
        }
        let mut prefixed = (out.len() as u32).to_le_bytes().to_vec();
        prefixed.extend(out);
        prefixed
    }
    let mut buf = levels(rep);
    buf.extend(levels(def));
    buf.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    Page::DataPage {
        buf: Bytes::from(buf),
        num_values: values.len() as u32,
        encoding: Encoding::PLAIN,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    }
}

/// Pages may end inside a list; the list shape is checked across them,
/// and every departure from it is named.
#[test]
fn lists_may_span_pages_and_any_other_shape_is_refused() {
    let mut out = vec![-1];
    let mut d = ListPages::new(&mut out, 3, 9);
    assert_eq!(
        d.page(&page(&[0, 1, 1, 0], &[1; 4], &[1, 2, 3, 4])),
        Ok(PageFit::Decoded)
    );
    assert_eq!(
        d.page(&page(&[1, 1, 0, 1, 1], &[1; 5], &[5, 6, 7, 8, 9])),
        Ok(PageFit::Decoded)
    );
    assert_eq!(d.finish(), Ok(()));
    assert_eq!(out, [-1, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    let err = |pages: &[Page], items: usize| {
        let mut out = Vec::new();
        let mut d = ListPages::<i32>::new(&mut out, 3, items);
        for p in pages {
            d.page(p)?;
        }
        d.finish()
    };
    let shape = |at: usize| {
        Err(format!(
            "the repetition levels of a data page do not describe lists of 3 items \
             (at item {at} of the page)"
        ))
    };
    // A list of 2 items, then one of 4.
    assert_eq!(
        err(&[page(&[0, 1, 0, 1, 1, 1], &[1; 6], &[0; 6])], 6),
        shape(2)
    );
    assert_eq!(
        err(&[page(&[0, 1, 1, 1, 1, 1], &[1; 6], &[0; 6])], 6),
        shape(3)
    );
    // The second page does not continue the list the first one left open.
    assert_eq!(
        err(
            &[
                page(&[0, 1], &[1; 2], &[0; 2]),
                page(&[0, 1, 1], &[1; 3], &[0; 3])
            ],
            6
        ),
        shape(0)
    );
    assert_eq!(
        err(&[page(&[0, 1, 1], &[1, 0, 1], &[0; 3])], 3),
        Err("item 1 of a data page is null (definition level 0)".into())
    );
    assert_eq!(
        err(&[page(&[0, 1, 1, 0, 1, 1], &[1; 6], &[0; 6])], 3),
        Err("the data pages hold more than the 3 items expected".into())
    );
    assert_eq!(
        err(&[page(&[0, 1, 1], &[1; 3], &[0; 3])], 6),
        Err("expected 6 items in lists of 3, the data pages hold 3".into())
    );
}
