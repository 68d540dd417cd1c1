//! Issue #15 item 11: out of memory under an address-space limit (a
//! container, `ulimit -v`, a cluster's memory cap). The run ends with one
//! message and a clean exit, never SIGABRT: staging and lock removed, the
//! previous dataset intact; a crafted footer is refused before the Parquet
//! decoder reserves what it claims.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, ListArray, RecordBatch, StringArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::harness::*;

const GIB: u64 = 1 << 30;

/// Runs `seqwin ARGS` with its address space limited to `limit` bytes
/// (`ulimit -v`); the binary keeps one malloc arena (`tune_allocator` in
/// `src/cli.rs`), so the limit does not depend on the machine's core count.
fn seqwin_limited(env: &Env, args: &[&str], limit: u64) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqwin"));
    cmd.args(args).current_dir(env.dir.path());
    // SAFETY: setrlimit is async-signal-safe and touches no parent state.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run seqwin")
}

/// One document of `len` tokens (`i % 1000`) in `path`.
fn one_document(path: &Path, len: usize) {
    let values = Int32Array::from_iter_values((0..len).map(|i| (i % 1000) as i32));
    let item = Arc::new(Field::new("element", DataType::Int32, true));
    let list = ListArray::new(
        item,
        OffsetBuffer::from_lengths([len]),
        Arc::new(values),
        None,
    );
    let batch = RecordBatch::try_from_iter([("tokens", Arc::new(list) as ArrayRef)]).unwrap();
    write_parquet(path, &batch, 1);
}

/// Splits stderr of an out-of-memory exit into the failed size and the rest.
fn out_of_memory(out: &Output) -> (Option<i32>, u64, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rest = stderr
        .strip_prefix("seqwin: error: out of memory: an allocation of ")
        .unwrap_or_else(|| panic!("not an out-of-memory message: {stderr}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (
        out.status.code(),
        digits.parse().unwrap(),
        rest[digits.len()..].to_string(),
    )
}

const OOM_TAIL: &str = " bytes failed (an address-space limit such as `ulimit -v`, or the machine's memory); try fewer --threads or smaller windows.seq_len or sink.row_group_rows. Nothing was committed: the run's staging directory and lock are removed, any previous dataset is intact.\n";

#[test]
fn item_11_out_of_memory_exits_with_a_message_and_keeps_the_previous_dataset() {
    let env = Env::new();
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&random_docs(20, 30, 9, 1), 0, &["x"]),
        10,
    );
    let small = env.pipeline(
        "small.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out, mode: overwrite}\n",
    );
    env.run_ok(&small, &[]);
    let previous: Vec<(std::path::PathBuf, Vec<u8>)> = dataset_files(&env.path("out"))
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let manifest_before = manifest(&env.path("out"));

    // The documented maximum seq_len, stride 1, one document of 2^24 + 20
    // tokens: every window row is 128 MiB. The example ran it under
    // 1 GiB, which it now survives (the window columns are encoded without a
    // copy); 512 MiB still runs out.
    one_document(&env.path("long/a.parquet"), (1 << 24) + 20);
    let long = env.pipeline(
        "long.yaml",
        "source: {path: long, tokens: tokens}\nwindows: {seq_len: 16777216, stride: 1}\nsink: {path: out, mode: overwrite}\n",
    );
    for (pipeline, limit) in [(&long, GIB / 2)] {
        let args = [
            "run",
            pipeline.to_str().unwrap(),
            "--quiet",
            "--threads",
            "2",
        ];
        let out = seqwin_limited(&env, &args, limit);
        let (code, size, tail) = out_of_memory(&out);
        assert_eq!((code, tail.as_str()), (Some(1), OOM_TAIL), "{pipeline:?}");
        assert!(size >= 1 << 20, "{pipeline:?}: {size} bytes");
        // Nothing left beside the sink, the previous dataset unchanged.
        assert_eq!(
            env.root_entries(),
            ["data", "long", "long.yaml", "out", "small.yaml"],
            "{pipeline:?}"
        );
        for (path, bytes) in &previous {
            assert!(&std::fs::read(path).unwrap() == bytes, "{path:?} changed");
        }
        assert_eq!(manifest(&env.path("out")), manifest_before);
    }

    // A 200M-token document under 2 GiB ran out too (its token values alone
    // are 800 MB, decoded whole); read in pieces (issue 14), it completes.
    one_document(&env.path("huge/a.parquet"), 200_000_000);
    let huge = env.pipeline(
        "huge.yaml",
        "source: {path: huge, tokens: tokens}\nwindows: {seq_len: 1024}\nsink: {path: out-huge}\n",
    );
    let args = ["run", huge.to_str().unwrap(), "--quiet", "--threads", "2"];
    let out = seqwin_limited(&env, &args, 2 * GIB);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = manifest(&env.path("out-huge"));
    assert_eq!(m["totals"]["windows"], (200_000_000 - 1) / 1024);
}

#[test]
fn item_11_a_crafted_footer_is_refused_before_it_is_decoded() {
    let env = Env::new();
    let file = env.path("data/a.parquet");
    write_parquet(
        &file,
        &corpus_batch(&random_docs(20, 30, 9, 1), 0, &["x"]),
        10,
    );
    // Set the `tokens` group's num_children (Thrift field 5, zigzag varint 2)
    // to 2^31 - 1, the footer growing by four bytes.
    let bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    let meta_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let meta = &bytes[n - 8 - meta_len..n - 8];
    let at = meta
        .windows(8)
        .position(|w| w == b"tokens\x15\x02")
        .expect("the tokens group's num_children")
        + 6;
    let mut crafted = bytes[..n - 8 - meta_len].to_vec();
    crafted.extend_from_slice(&meta[..at]);
    crafted.extend_from_slice(&[0x15, 0xfe, 0xff, 0xff, 0xff, 0x0f]);
    crafted.extend_from_slice(&meta[at + 2..]);
    crafted.extend_from_slice(&(meta_len as u32 + 4).to_le_bytes());
    crafted.extend_from_slice(b"PAR1");
    std::fs::write(&file, crafted).unwrap();
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n",
    );
    // Schema elements: the root, doc_id, source, tokens, list, element.
    let expected = format!(
        "seqwin: error: {}: not a readable Parquet file: corrupt footer: schema element 3 (\"tokens\") claims 2147483647 children, but only 2 elements follow it\n",
        file.display()
    );
    for command in ["check", "run"] {
        let out = seqwin_limited(&env, &[command, p.to_str().unwrap()], GIB);
        assert_eq!(
            (out.status.code(), String::from_utf8_lossy(&out.stderr)),
            (Some(2), expected.as_str().into()),
            "{command}"
        );
        assert_eq!(env.root_entries(), ["data", "p.yaml"], "{command}");
    }
}

/// Peak RSS in KiB of `seqwin ARGS`, which must succeed. Measured by GNU
/// `time` (`/usr/bin/time -f %M`), which starts seqwin from its own small
/// process: a child started from this test process would count this
/// process's memory (and that of the tests running beside it) in its high
/// water mark, which `exec` carries over.
fn peak_rss_kib(env: &Env, args: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib %M", env!("CARGO_BIN_EXE_seqwin")])
        .args(args)
        .current_dir(env.dir.path())
        .output()
        .expect("GNU time at /usr/bin/time (Debian package `time`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    last.strip_prefix("peak-rss-kib ")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr:?}"))
}

/// `tokens` tokens as a flat int32 column (one token per row, no id: one
/// document), in row groups of 2^20 rows.
fn flat_stream(path: &Path, tokens: usize) {
    let values = Int32Array::from_iter_values((0..tokens).map(|i| (i * 7919 % 50_000) as i32));
    let batch = RecordBatch::try_from_iter([("tokens", Arc::new(values) as ArrayRef)]).unwrap();
    write_parquet(path, &batch, 1 << 20);
}

/// Runs `PIPELINE` (a format string over `{dir}`, writing to `out-{dir}`)
/// on one thread on the corpora in `small/` and `large/` and returns the growth of peak RSS in
/// MiB from the small one to the large one (printed with `what`).
///
/// One run's peak varies with thread scheduling (how many decoded row
/// groups and pending encode or scatter jobs happen to be alive at once:
/// up to +50 MiB on a busy machine), not with the corpus; each size is run
/// twice and the smaller peak kept, which is the steady state.
fn rss_growth_mib(env: &Env, pipeline: &str, what: &str) -> u64 {
    let mut rss = Vec::new();
    for dir in ["small", "large"] {
        let p = env.pipeline(&format!("{dir}.yaml"), &pipeline.replace("{dir}", dir));
        let args = ["run", p.to_str().unwrap(), "--quiet", "--threads", "1"];
        let first = peak_rss_kib(env, &args);
        std::fs::remove_dir_all(env.path(&format!("out-{dir}"))).unwrap();
        rss.push(first.min(peak_rss_kib(env, &args)));
    }
    eprintln!(
        "{what}: peak RSS {} KiB small, {} KiB large",
        rss[0], rss[1]
    );
    rss[1].saturating_sub(rss[0]) / 1024
}

/// Issue 14: a flat token stream continues one document across row groups;
/// its windows used to be sealed only where a document began, so its
/// buffer grew with the whole stream (+64 MiB from 8M to 24M tokens). Three
/// times the stream now needs about the same memory (8M tokens: eight row
/// groups, more than two threads decode ahead, so memory is at its plateau).
#[test]
fn a_flat_stream_runs_in_memory_that_does_not_grow_with_it() {
    let env = Env::new();
    flat_stream(&env.path("small/a.parquet"), 8 << 20);
    flat_stream(&env.path("large/a.parquet"), 24 << 20);
    let growth_mib = rss_growth_mib(
        &env,
        "source: {path: {dir}, tokens: tokens}\nwindows: {seq_len: 1024}\nsink: {path: out-{dir}}\n",
        "flat stream, 8M and 24M tokens",
    );
    assert_eq!(
        manifest(&env.path("out-large"))["totals"]["windows"],
        ((24 << 20) - 1) / 1024
    );
    assert!(growth_mib < 24, "peak RSS grew by {growth_mib} MiB");
}

/// `tokens` tokens in documents of 2,000, each in partition `b{i % 300}`
/// (a carried column `bucket`), 1,000 documents to a row group.
fn bucketed(path: &Path, tokens: usize) {
    let docs = tokens / 2000;
    let values = Int32Array::from_iter_values((0..tokens).map(|i| (i * 7919 % 50_000) as i32));
    let item = Arc::new(Field::new("element", DataType::Int32, true));
    let list = ListArray::new(
        item,
        OffsetBuffer::from_lengths(std::iter::repeat_n(2000, docs)),
        Arc::new(values),
        None,
    );
    let buckets = StringArray::from_iter_values((0..docs).map(|i| format!("b{:03}", i % 300)));
    let batch = RecordBatch::try_from_iter([
        ("tokens", Arc::new(list) as ArrayRef),
        ("bucket", Arc::new(buckets) as ArrayRef),
    ])
    .unwrap();
    write_parquet(path, &batch, 1000);
}

/// Issue 14: with more partitions than windows per row group, windows wait
/// in every partition's queue — and each kept the whole decoded row group it
/// was cut from alive, so memory grew with the corpus (+141 MiB from 16M to
/// 48M tokens in 300 partitions, one thread). Waiting windows now keep only
/// their own tokens, and over a budget (reached below 16M tokens here) the
/// longest queues are written as short row groups.
#[test]
fn many_partitions_run_in_memory_that_does_not_grow_with_the_corpus() {
    let env = Env::new();
    bucketed(&env.path("small/a.parquet"), 16 << 20);
    bucketed(&env.path("large/a.parquet"), 48 << 20);
    let growth_mib = rss_growth_mib(
        &env,
        "source: {path: {dir}, tokens: tokens, carry: [bucket]}\nwindows: {seq_len: 1024}\nsink: {path: out-{dir}, partition_by: [bucket]}\n",
        "300 partitions, 16M and 48M tokens",
    );
    let m = manifest(&env.path("out-large"));
    assert_eq!(m["totals"]["windows"], (48 << 20) / 2000);
    assert_eq!(m["partitions"].as_array().unwrap().len(), 300);
    assert!(growth_mib < 40, "peak RSS grew by {growth_mib} MiB");
}

/// Writes three corpora (web, code, books) of 12M tokens in `small/` and of
/// 36M tokens in `large/`.
fn three_corpora(env: &Env) {
    for (dir, tokens) in [("small", 12 << 20), ("large", 36 << 20)] {
        for name in ["web", "code", "books"] {
            bucketed(&env.path(&format!("{dir}/{name}/a.parquet")), tokens);
        }
    }
}

/// The sources of the memory tests of a mix: taken 0.5, 1 and 1.5 times.
const THREE_SOURCES: &str = "sources:\n  - {name: web, path: '{dir}/web', tokens: tokens, repeat: 0.5}\n  - {name: code, path: '{dir}/code', tokens: tokens, repeat: 1}\n  - {name: books, path: '{dir}/books', tokens: tokens, repeat: 1.5}\nmix: {source_column: true}\nwindows: {seq_len: 1024}\n";

fn passes(m: &serde_json::Value) -> Vec<f64> {
    (m["sources"].as_array().unwrap().iter())
        .map(|s| s["passes"].as_f64().unwrap())
        .collect()
}

/// Issue 17: a mix of three sources keeps no per-document state: three
/// times the corpora (12M → 36M tokens each, taken 0.5, 1 and 1.5 times,
/// shuffled within a 16 MiB budget) need the same memory. Below about 12M
/// tokens each the run has not reached its plateau (the shuffle's scatter
/// pieces and the decoded row groups in flight; measured in a debug build,
/// one thread: 2M 75 MiB, 6M 97–109, 12M 130–136, 18M 114–132, 36M
/// 133–180, 54M 132), so smaller corpora would measure the ramp.
#[test]
fn a_mix_of_three_sources_runs_in_memory_that_does_not_grow_with_them() {
    let env = Env::new();
    three_corpora(&env);
    let growth_mib = rss_growth_mib(
        &env,
        &format!("{THREE_SOURCES}shuffle: {{memory_mb: 16}}\nsink: {{path: out-{{dir}}, partition_by: [source]}}\n"),
        "3 sources, 12M and 36M tokens each",
    );
    let m = manifest(&env.path("out-large"));
    assert_eq!(passes(&m), [0.5, 1.0, 1.5]);
    assert_eq!(m["partitions"].as_array().unwrap().len(), 3);
    assert!(growth_mib < 40, "peak RSS grew by {growth_mib} MiB");
}

/// Issue 17: the proportional interleave of an unshuffled mix keeps no
/// per-document state either: its first pass holds counters per (partition,
/// source), its second a cursor per (partition, source), and its rows wait
/// in position buckets within a fixed budget. The three sources share one
/// partition, so every row group interleaves them (debug build, one thread:
/// 151 MiB small, 160 MiB large).
#[test]
fn an_unshuffled_mix_of_three_sources_runs_in_memory_that_does_not_grow_with_them() {
    let env = Env::new();
    three_corpora(&env);
    let growth_mib = rss_growth_mib(
        &env,
        &format!("{THREE_SOURCES}sink: {{path: out-{{dir}}}}\n"),
        "3 sources unshuffled, 12M and 36M tokens each",
    );
    let m = manifest(&env.path("out-large"));
    assert_eq!(passes(&m), [0.5, 1.0, 1.5]);
    assert_eq!(m["partitions"].as_array().unwrap().len(), 1);
    assert!(growth_mib < 40, "peak RSS grew by {growth_mib} MiB");
}

/// One document of `len` tokens (below 50,000, without runs) in `path`,
/// as pyarrow writes it by default: snappy, a dictionary page, data page
/// v1. Neither arrow-rs nor pyarrow splits a row across data pages, so the
/// whole document is one data page of about 2 bytes a token.
fn one_pyarrow_document(path: &Path, len: usize) {
    let values = Int32Array::from_iter_values((0..len).map(|i| (i * 7919 % 50_000) as i32));
    let item = Arc::new(Field::new("element", DataType::Int32, true));
    let list = ListArray::new(
        item,
        OffsetBuffer::from_lengths([len]),
        Arc::new(values),
        None,
    );
    let batch = RecordBatch::try_from_iter([("tokens", Arc::new(list) as ArrayRef)]).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Issue 14: one document stored as one list value used to be decoded whole
/// (the list reader materialises the entire row): peak RSS grew with the
/// document's length (+296 MiB from 16M to 48M tokens, 637 MiB at 64M).
/// A row group with more than 8M tokens is now decoded a bounded number of
/// levels at a time and windowed in pieces, and its one data page is read
/// as streams, decompressed as they are read (it used to be held whole,
/// compressed and decompressed: +128 MiB here). Three times the document
/// needs about the same memory. (With `SEQWIN_STREAM_TOKENS` raised above
/// the document's length, the row group is decoded whole again and this
/// test fails.)
#[test]
fn one_long_document_runs_in_memory_that_does_not_grow_with_it() {
    let env = Env::new();
    one_pyarrow_document(&env.path("small/a.parquet"), 16 << 20);
    one_pyarrow_document(&env.path("large/a.parquet"), 48 << 20);
    let growth_mib = rss_growth_mib(
        &env,
        "source: {path: {dir}, tokens: tokens}\nwindows: {seq_len: 1024}\nsink: {path: out-{dir}}\n",
        "one document, 16M and 48M tokens",
    );
    let m = manifest(&env.path("out-large"));
    assert_eq!(m["totals"]["windows"], ((48 << 20) - 1) / 1024);
    assert_eq!(m["totals"]["documents"], 1);
    assert!(growth_mib < 24, "peak RSS grew by {growth_mib} MiB");
}
