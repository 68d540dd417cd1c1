//! Issue 14: a row group with more tokens than `SEQWIN_STREAM_TOKENS` (a test
//! knob; default 8M) is read page by page and windowed in pieces, one
//! document possibly spanning many pieces. The output must be byte for byte
//! the output of decoding the row group whole, in every mode.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};

use crate::harness::*;

/// Never read in pieces.
const WHOLE: &str = "1000000000000";

/// Documents: mostly short ones (some empty), and a few of thousands of
/// tokens; tokens `< 50_000`.
fn documents(seed: u64) -> Vec<Vec<i64>> {
    let mut docs = random_docs(120, 60, 50_000, seed);
    for (i, len) in [
        (3, 9_000),
        (40, 1),
        (41, 17_500),
        (77, 4_096),
        (119, 12_345),
    ] {
        docs[i] = (0..len)
            .map(|t| ((t as u64 * 7919 + seed) % 50_000) as i64)
            .collect();
    }
    docs[10].clear();
    docs[11].clear();
    docs
}

/// Writes `docs` with ids `first_id..`, a carried `source` and `lang`, in
/// row groups of `rg` rows and tiny pages (so that pages and pieces cut
/// documents anywhere); `v2` writes data page v2, `dictionary` dictionary
/// pages, compressed with `codec`.
fn write_corpus(
    path: &Path,
    docs: &[Vec<i64>],
    first_id: i64,
    (rg, v2, dictionary): (usize, bool, bool),
    codec: Compression,
) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let n = docs.len();
    let batch = RecordBatch::try_from_iter([
        (
            "doc_id",
            Arc::new(Int64Array::from_iter_values(first_id..first_id + n as i64)) as ArrayRef,
        ),
        (
            "source",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| ["web", "code", "books"][i % 3]),
            )) as ArrayRef,
        ),
        (
            "lang",
            Arc::new(Int32Array::from_iter_values((0..n).map(|i| (i % 2) as i32))) as ArrayRef,
        ),
        ("tokens", docs_column_i32(docs)),
    ])
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rg))
        .set_data_page_size_limit(300)
        .set_write_batch_size(97)
        .set_dictionary_enabled(dictionary)
        .set_compression(codec)
        .set_writer_version(if v2 {
            WriterVersion::PARQUET_2_0
        } else {
            WriterVersion::PARQUET_1_0
        })
        .build();
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Runs `yaml` (writing to `out`) with the knob at `stream_tokens` and
/// returns every output file's relative path and bytes, and the manifest's
/// partitions and totals.
fn run(
    env: &Env,
    yaml: &str,
    stream_tokens: &str,
    threads: &str,
) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let out = env.path("out");
    let _ = std::fs::remove_dir_all(&out);
    let p = env.pipeline("p.yaml", yaml);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(["run", p.to_str().unwrap(), "--quiet", "--threads", threads])
        .env("SEQWIN_STREAM_TOKENS", stream_tokens)
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{yaml}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let files = dataset_files(&out)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(&out).unwrap().display().to_string(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect();
    let m = manifest(&out);
    let summary = serde_json::json!({
        "partitions": m["partitions"],
        "totals": m["totals"],
        "sources": m["sources"],
    });
    (files, summary)
}

/// A corpus of four files, with documents of up to 17,500 tokens among
/// short and empty ones, in each codec and value encoding read as streams:
/// data page v1 with dictionaries in row groups of 50 rows (snappy), v2
/// with dictionaries in one row group (zstd), v2 without dictionaries —
/// DELTA_BINARY_PACKED — in row groups of 70 rows (LZ4_RAW), v1 plain in
/// row groups of 40 rows (gzip).
fn corpus(env: &Env) {
    let files = [
        ("a", (50, false, true), Compression::SNAPPY),
        (
            "b",
            (1000, true, true),
            Compression::ZSTD(ZstdLevel::default()),
        ),
        ("c", (70, false, false), Compression::LZ4_RAW),
        (
            "d",
            (40, false, true),
            Compression::GZIP(GzipLevel::default()),
        ),
    ];
    for (i, (name, layout, codec)) in files.into_iter().enumerate() {
        let path = env.path(&format!("data/{name}.parquet"));
        write_corpus(
            &path,
            &documents(i as u64 + 1),
            1000 * i as i64,
            layout,
            codec,
        );
    }
}

const SOURCE: &str = "source: {path: data, tokens: tokens, id: doc_id, carry: [source, lang]}\n";

#[test]
fn row_groups_read_in_pieces_give_the_bytes_of_whole_row_groups_in_every_mode() {
    let env = Env::new();
    corpus(&env);
    let modes = [
        // Within documents: full windows, overlapping, padded remainder.
        "windows: {seq_len: 64, columns: [doc_id, start]}\n",
        "windows: {seq_len: 100, stride: 7, remainder: pad, columns: [doc_id, start]}\n",
        // Packed with a separator, spanning documents.
        "windows: {seq_len: 128, pack: true, separator: 0, remainder: pad, columns: [doc_id, start, position_ids, segment_ids]}\n",
        // Shuffled, split by document, partitioned by split and a carried column.
        "windows: {seq_len: 50, stride: 25, columns: [doc_id, start]}\nsplit: {fractions: {train: 0.7, val: 0.3}, seed: 3}\nshuffle: {seed: 9}\n",
        "windows: {seq_len: 32, pack: true, separator: 1}\nsplit: {fractions: {train: 0.5, val: 0.5}, seed: 1}\nshuffle: {seed: 2, memory_mb: 1}\n",
        "windows: {seq_len: 16, pack: true, columns: [start]}\ntbptt: {batch_size: 3}\n",
    ];
    let sinks = [
        "sink: {path: out, row_group_rows: 70, max_rows_per_file: 500}\n",
        "sink: {path: out, partition_by: [split], row_group_rows: 64}\n",
        "sink: {path: out, partition_by: [source], row_group_rows: 100}\n",
    ];
    for (i, mode) in modes.iter().enumerate() {
        let split = mode.contains("split:");
        let sink = if split { sinks[1] } else { sinks[i % 2 * 2] };
        let yaml = format!("{SOURCE}{mode}{sink}");
        let whole = run(&env, &yaml, WHOLE, "2");
        assert!(
            whole.0.iter().map(|(_, b)| b.len()).sum::<usize>() > 10_000,
            "{yaml}"
        );
        for (knob, threads) in [("1", "1"), ("37", "2"), ("5000", "3")] {
            let pieces = run(&env, &yaml, knob, threads);
            assert_eq!(pieces.1, whole.1, "{yaml} at {knob}");
            assert_eq!(
                pieces.0.iter().map(|(p, _)| p).collect::<Vec<_>>(),
                whole.0.iter().map(|(p, _)| p).collect::<Vec<_>>(),
                "{yaml} at {knob}"
            );
            for ((path, a), (_, b)) in pieces.0.iter().zip(&whole.0) {
                assert!(a == b, "{yaml} at {knob}: {path} differs");
            }
        }
    }
}

/// Without an id column documents are numbered by row; the split is
/// decided per document, whichever piece a document starts in.
#[test]
fn row_groups_read_in_pieces_number_documents_without_an_id_as_whole_ones_do() {
    let env = Env::new();
    corpus(&env);
    let yaml = "source: {path: data, tokens: tokens, carry: [lang]}\nwindows: {seq_len: 40, stride: 13, remainder: pad, columns: [doc_id, start]}\nsplit: {fractions: {train: 0.6, val: 0.4}}\nsink: {path: out, partition_by: [split, lang]}\n";
    let whole = run(&env, yaml, WHOLE, "2");
    let pieces = run(&env, yaml, "3", "2");
    assert_eq!(pieces, whole);
    assert_eq!(whole.1["totals"]["documents"], 480);
}

/// `stats` (document lengths, by partition) reads row groups in pieces
/// too, and counts every document once, at its whole length.
#[test]
fn stats_of_row_groups_read_in_pieces_are_those_of_whole_ones() {
    let env = Env::new();
    corpus(&env);
    let p = env.pipeline(
        "p.yaml",
        &format!("{SOURCE}windows: {{seq_len: 64}}\nsplit: {{fractions: {{a: 0.5, b: 0.5}}}}\nsink: {{path: out, partition_by: [split]}}\n"),
    );
    let stats = |knob: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
            .args([
                "stats",
                p.to_str().unwrap(),
                "--json",
                "--seq-len",
                "16,100",
            ])
            .env("SEQWIN_STREAM_TOKENS", knob)
            .current_dir(env.dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut().unwrap().remove("elapsed_seconds");
        v
    };
    let whole = stats(WHOLE);
    assert!(whole.to_string().contains("17500"), "{whole}");
    assert_eq!(stats("29"), whole);
}

/// A mix's per-source account counts the windows of row groups read in
/// pieces as it does those of whole ones.
#[test]
fn a_mix_of_row_groups_read_in_pieces_accounts_as_whole_ones() {
    let env = Env::new();
    corpus(&env);
    let yaml = "sources:\n  - {name: a, path: data/a.parquet, tokens: tokens, id: doc_id, repeat: 1.5}\n  - {name: b, path: data/b.parquet, tokens: tokens, id: doc_id, repeat: 0.5}\nmix: {source_column: true}\nwindows: {seq_len: 64}\nshuffle: {seed: 4}\nsink: {path: out, partition_by: [source]}\n";
    let whole = run(&env, yaml, WHOLE, "2");
    let pieces = run(&env, yaml, "50", "2");
    assert_eq!(pieces, whole);
    assert!(whole.1["sources"][0]["windows"].as_u64().unwrap() > 0);
}

/// Spoils a corpus: its tokens and its documents' validity.
type Edit = dyn Fn(&mut Vec<Option<i32>>, &mut Vec<bool>);

/// A null document, a null token and an out-of-vocabulary token are
/// refused with the message and row of the whole-row path.
#[test]
fn row_groups_read_in_pieces_refuse_bad_documents_as_whole_ones_do() {
    let env = Env::new();
    let long = 5_000usize;
    let mut values: Vec<Option<i32>> = Vec::new();
    let mut lengths = Vec::new();
    for d in 0..6 {
        let len = if d == 2 { long } else { 10 };
        values.extend((0..len).map(|t| Some((t % 100) as i32)));
        lengths.push(len);
    }
    let base = values.clone();
    let cases: Vec<(&str, Box<Edit>)> = vec![
        (
            "row 4 (column `tokens`): the document is null",
            Box::new(|_, valid| valid[4] = false),
        ),
        (
            "row 2 (column `tokens`): a token is null",
            Box::new(|v, _| v[20 + 4_321] = None),
        ),
        (
            "row 2 (column `tokens`): token 100 is not below windows.vocab_size 100",
            Box::new(|v, _| v[20 + 4_000] = Some(100)),
        ),
    ];
    for (message, edit) in cases {
        let mut v = base.clone();
        let mut valid = vec![true; lengths.len()];
        edit(&mut v, &mut valid);
        let item = Arc::new(Field::new("element", DataType::Int32, true));
        let list = ListArray::new(
            item,
            OffsetBuffer::from_lengths(lengths.iter().copied()),
            Arc::new(Int32Array::from(v)),
            Some(NullBuffer::from(valid)),
        );
        let batch = RecordBatch::try_from_iter([("tokens", Arc::new(list) as ArrayRef)]).unwrap();
        let file = env.path("bad/a.parquet");
        write_parquet(&file, &batch, 100);
        let p = env.pipeline(
            "bad.yaml",
            "source: {path: bad, tokens: tokens}\nwindows: {seq_len: 8, vocab_size: 100}\nsink: {path: out-bad}\n",
        );
        let expected = format!("seqwin: error: {}: {message}\n", file.display());
        for knob in [WHOLE, "64"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
                .args(["run", p.to_str().unwrap(), "--quiet"])
                .env("SEQWIN_STREAM_TOKENS", knob)
                .current_dir(env.dir.path())
                .output()
                .unwrap();
            assert_eq!(
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).into_owned()
                ),
                (Some(2), expected.clone()),
                "{message} at {knob}"
            );
            assert!(!env.path("out-bad").exists());
        }
    }
}
