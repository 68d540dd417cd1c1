//! Bounded resources: every mode that writes many files runs under a limit
//! of 64 open file descriptors (`ulimit -n 64`) and writes exactly what an
//! unlimited run writes; the windows equal the plain loop's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

use crate::harness::*;

/// Runs `seqwin run PIPELINE --quiet` under `ulimit -n` = `limit` (none: no limit).
fn run_limited(env: &Env, pipeline: &Path, sink: &str, limit: Option<u32>) {
    let bin = env!("CARGO_BIN_EXE_seqwin");
    let set = format!("sink.path={sink}");
    let script = match limit {
        Some(n) => format!("ulimit -n {n} && exec \"$0\" \"$@\""),
        None => "exec \"$0\" \"$@\"".to_string(),
    };
    let out = Command::new("sh")
        .args([
            "-c",
            &script,
            bin,
            "run",
            pipeline.to_str().unwrap(),
            "--quiet",
        ])
        .args(["--set", &set])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "limit {limit:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file of a dataset (relative path → bytes), the manifest without its wall time.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in dataset_files(dir) {
        let rel = f.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        out.insert(rel, std::fs::read(&f).unwrap());
    }
    let mut m = manifest(dir);
    m.as_object_mut().unwrap().remove("elapsed_seconds");
    m["config"]["sink"].as_object_mut().unwrap().remove("path");
    out.insert("_seqwin.json".into(), m.to_string().into_bytes());
    out
}

/// Runs a pipeline with and without the descriptor limit; both write the same
/// bytes. Returns the number of data files.
fn same_under_limit(env: &Env, yaml: &str) -> usize {
    let p = env.pipeline("p.yaml", yaml);
    run_limited(env, &p, "free", None);
    run_limited(env, &p, "limited", Some(64));
    let (free, limited) = (contents(&env.path("free")), contents(&env.path("limited")));
    assert_eq!(
        free.keys().collect::<Vec<_>>(),
        limited.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &free {
        assert!(limited[name] == *bytes, "{name} differs under ulimit -n 64");
    }
    free.len() - 1
}

/// One document of `n` tokens `0, 1, …` (mod 50) in a flat integer column.
fn long_document(env: &Env, n: i64) -> Vec<i64> {
    let tokens: Vec<i64> = (0..n).map(|i| i % 50).collect();
    let b = RecordBatch::try_from_iter(vec![(
        "tokens",
        Arc::new(Int64Array::from(tokens.clone())) as ArrayRef,
    )])
    .unwrap();
    write_parquet(&env.path("data/long.parquet"), &b, 500);
    tokens
}

#[test]
fn one_long_document_in_many_small_files() {
    // 1,999 windows in files of 3 rows: 667 files, once opened long before
    // they were written (failing at part-00250 under ulimit -n 256).
    let env = Env::new();
    let tokens = long_document(&env, 2000);
    let files = same_under_limit(
        &env,
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 1, stride: 1}\nsink: {path: out, max_rows_per_file: 3, row_group_rows: 3}\n",
    );
    assert_eq!(files, 667);
    let got: Vec<(Vec<i64>, Vec<i64>)> = read_windows(&env.path("free"))
        .into_iter()
        .map(|w| (w.input, w.target))
        .collect();
    let mut sorted_by_file = got.clone();
    sorted_by_file.sort();
    let mut expected: Vec<(Vec<i64>, Vec<i64>)> = reference_windows(&tokens, 1, 1, None)
        .into_iter()
        .map(|(_, i, t)| (i, t))
        .collect();
    expected.sort();
    assert_eq!(sorted_by_file, expected);
}

#[test]
fn packed_shuffled_and_tbptt_streams_in_many_files() {
    let env = Env::new();
    let docs = random_docs(300, 40, 100, 7);
    write_parquet(
        &env.path("data/c.parquet"),
        &corpus_batch(&docs, 0, &["a", "b"]),
        50,
    );
    let src = "source: {path: data, tokens: tokens, id: doc_id}\n";
    for (mode, extra) in [
        (
            "pack",
            "windows: {seq_len: 4, pack: true, separator: 100}\n",
        ),
        (
            "shuffle",
            "windows: {seq_len: 4, stride: 2}\nshuffle: {seed: 3}\n",
        ),
        ("tbptt", "windows: {seq_len: 4}\ntbptt: {batch_size: 3}\n"),
    ] {
        let yaml =
            format!("{src}{extra}sink: {{path: out, max_rows_per_file: 5, row_group_rows: 5}}\n");
        let files = same_under_limit(&env, &yaml);
        assert!(files > 100, "{mode}: only {files} files");
        for d in ["free", "limited"] {
            std::fs::remove_dir_all(env.path(d)).unwrap();
        }
    }
}

#[test]
fn more_partition_values_than_open_files() {
    // 300 distinct values of a partition column, each document its own
    // partition, in source order: at most 16 part files are open at once.
    let env = Env::new();
    let docs = random_docs(600, 30, 100, 11);
    let n = docs.len();
    let b = RecordBatch::try_from_iter(vec![
        (
            "doc_id",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        (
            "bucket",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("v{:03}", i % 300)),
            )) as ArrayRef,
        ),
        ("tokens", docs_column_i32(&docs)),
    ])
    .unwrap();
    write_parquet(&env.path("data/c.parquet"), &b, 100);
    let files = same_under_limit(
        &env,
        "source: {path: data, tokens: tokens, id: doc_id, carry: [bucket]}\nwindows: {seq_len: 3, stride: 2, columns: [doc_id, start]}\nsink: {path: out, partition_by: [bucket]}\n",
    );
    // Rows per partition, in order: the plain loop over that partition's
    // documents in source order.
    let mut expected: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        for (s, _, _) in reference_windows(d, 3, 2, None) {
            expected
                .entry(format!("bucket=v{:03}", i % 300))
                .or_default()
                .push((i as i64, s as i64));
        }
    }
    // One file per partition with windows at least (more where a file was
    // closed to keep 16 open and the partition continued in a new one).
    assert!(expected.len() > 250, "{} partitions", expected.len());
    assert!(files >= expected.len(), "{files} files");
    let mut got: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for w in read_windows(&env.path("free")) {
        got.entry(w.partition)
            .or_default()
            .push((w.doc_id.unwrap(), w.start.unwrap()));
    }
    assert_eq!(got, expected);
}

#[test]
fn absurd_thread_counts_are_refused_at_once() {
    let env = Env::new();
    long_document(&env, 2000);
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n",
    );
    for (command, threads) in [("run", "20000"), ("stats", "0")] {
        let out = env.seqwin(&[command, p.to_str().unwrap(), "--threads", threads]);
        assert_eq!(out.status.code(), Some(2), "{command} --threads {threads}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("seqwin: error: --threads must be between 1 and 256, got {threads}\n")
        );
    }
    assert!(!env.path("out").exists());
}

#[test]
fn document_lengths_are_kept_as_a_distribution() {
    // 60,000 documents of 4 distinct lengths: stats and the TBPTT first pass
    // keep one count per length (and per partition), not one per document.
    let env = Env::new();
    let docs: Vec<Vec<i64>> = (0..60_000).map(|i| vec![1; [3, 5, 8, 13][i % 4]]).collect();
    write_parquet(
        &env.path("data/c.parquet"),
        &corpus_batch(&docs, 0, &["a", "b", "c"]),
        10_000,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, id: doc_id, carry: [source]}\nwindows: {seq_len: 4}\nsink: {path: out, partition_by: [source]}\n",
    );
    let lengths = seqwin::Pipeline::load(&p, &[])
        .unwrap()
        .document_lengths(Some(2))
        .unwrap();
    let counts: Vec<(u64, u64)> = lengths.counts.into_iter().collect();
    assert_eq!(
        counts,
        [(3, 15_000), (5, 15_000), (8, 15_000), (13, 15_000)]
    );
    let partitions: Vec<(String, (u64, u64))> = lengths.partitions.into_iter().collect();
    assert_eq!(
        partitions,
        [
            ("source=a".to_string(), (20_000, 20_000 * 29 / 4)),
            ("source=b".to_string(), (20_000, 20_000 * 29 / 4)),
            ("source=c".to_string(), (20_000, 20_000 * 29 / 4)),
        ]
    );
}
