//! Temp dirs, Parquet fixtures, running the binary, reading datasets back.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// A temp dir that holds fixtures, pipelines and outputs.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a pipeline file and returns its path.
    pub fn pipeline(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// Runs `seqwin` with args.
    pub fn seqwin(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_seqwin"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run seqwin")
    }

    /// Runs `seqwin run PIPELINE --quiet extra…` and asserts success.
    pub fn run_ok(&self, pipeline: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["run", pipeline.to_str().unwrap(), "--quiet"];
        args.extend_from_slice(extra);
        let out = self.seqwin(&args);
        assert!(
            out.status.success(),
            "seqwin failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        out
    }

    /// Names of entries in the temp dir's root (to check that nothing was left behind).
    pub fn root_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// A list<int> column from documents.
pub fn docs_column(docs: &[Vec<i64>]) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
        docs.iter().map(|d| Some(d.iter().map(|&t| Some(t)))),
    ))
}

/// A list<int32> column from documents.
pub fn docs_column_i32(docs: &[Vec<i64>]) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
        docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as i32)))),
    ))
}

/// Writes a batch to a Parquet file with the given row-group size.
pub fn write_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// A corpus batch: doc_id int64, source string, tokens list<int32>.
pub fn corpus_batch(docs: &[Vec<i64>], first_id: i64, sources: &[&str]) -> RecordBatch {
    let n = docs.len();
    let ids = Int64Array::from_iter_values(first_id..first_id + n as i64);
    let src = StringArray::from_iter_values((0..n).map(|i| sources[i % sources.len()]));
    RecordBatch::try_from_iter(vec![
        ("doc_id", Arc::new(ids) as ArrayRef),
        ("source", Arc::new(src) as ArrayRef),
        ("tokens", docs_column_i32(docs)),
    ])
    .unwrap()
}

/// Deterministic pseudo-random documents (xorshift), lengths in `0..max_len`.
pub fn random_docs(count: usize, max_len: usize, vocab: i64, seed: u64) -> Vec<Vec<i64>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let n = (next() % max_len as u64) as usize;
            (0..n).map(|_| (next() % vocab as u64) as i64).collect()
        })
        .collect()
}

/// A window read back from a dataset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub partition: String,
    pub input: Vec<i64>,
    pub target: Vec<i64>,
    pub doc_id: Option<i64>,
    pub start: Option<i64>,
    pub loss_mask: Option<Vec<i64>>,
    pub position_ids: Option<Vec<i64>>,
    pub segment_ids: Option<Vec<i64>>,
    pub lane: Option<i64>,
    pub step: Option<i64>,
}

fn list_values(c: &ArrayRef, i: usize) -> Vec<i64> {
    let l = c.as_fixed_size_list();
    let v = arrow_cast::cast::cast(&l.value(i), &DataType::Int64).unwrap();
    v.as_primitive::<Int64Type>().values().to_vec()
}

/// Every Parquet file of a dataset, sorted by relative path.
pub fn dataset_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    walk(dir, &mut files);
    files.sort();
    files
}

/// Reads one Parquet file's batches.
pub fn read_file(path: &Path) -> Vec<RecordBatch> {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    r.map(|b| b.unwrap()).collect()
}

/// Reads every window of a dataset, files in path order, rows in file order.
pub fn read_windows(dir: &Path) -> Vec<Window> {
    let mut out = Vec::new();
    for f in dataset_files(dir) {
        let partition = f
            .parent()
            .unwrap()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for b in read_file(&f) {
            out.extend(batch_windows(&b, &partition));
        }
    }
    out
}

/// The windows of one output batch, in row order.
pub fn batch_windows(b: &RecordBatch, partition: &str) -> Vec<Window> {
    let col = |n: &str| b.column_by_name(n).cloned();
    (0..b.num_rows())
        .map(|i| {
            let int = |n: &str| {
                col(n).map(|c| {
                    let c = arrow_cast::cast::cast(&c, &DataType::Int64).unwrap();
                    c.as_primitive::<Int64Type>().value(i)
                })
            };
            Window {
                partition: partition.to_string(),
                input: list_values(&col("input").unwrap(), i),
                target: list_values(&col("target").unwrap(), i),
                doc_id: int("doc_id"),
                start: int("start"),
                loss_mask: col("loss_mask").map(|c| list_values(&c, i)),
                position_ids: col("position_ids").map(|c| list_values(&c, i)),
                segment_ids: col("segment_ids").map(|c| list_values(&c, i)),
                lane: int("lane"),
                step: int("step"),
            }
        })
        .collect()
}

/// The manifest as JSON.
pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("_seqwin.json")).unwrap()).unwrap()
}

/// Plain within-document windows of docs/format.md §1.1–1.2 (the oracle).
pub fn reference_windows(
    doc: &[i64],
    l: usize,
    s: usize,
    pad: Option<(i64, i64)>,
) -> Vec<(usize, Vec<i64>, Vec<i64>)> {
    let n = doc.len();
    let mut out = Vec::new();
    let mut start = 0;
    let mut last_target = None;
    while start + l < n {
        out.push((
            start,
            doc[start..start + l].to_vec(),
            doc[start + 1..start + l + 1].to_vec(),
        ));
        last_target = Some(start + l);
        start += s;
    }
    if let Some((pad_id, ignore)) = pad {
        if n > 0 && last_target != Some(n - 1) && start + 1 < n {
            let mut i = doc[start..n - 1].to_vec();
            let mut t = doc[start + 1..n].to_vec();
            i.resize(l, pad_id);
            t.resize(l, ignore);
            out.push((start, i, t));
        }
    }
    out
}

/// Asserts a failed run: exit code 2, one clear message containing every
/// fragment, no panic, and nothing at the sink or beside it.
pub fn assert_bad_input(env: &Env, out: &Output, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, got {:?}; stderr: {stderr}",
        out.status.code()
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic: {stderr}"
    );
    assert!(
        stderr.starts_with("seqwin: error: ") || stderr.starts_with("error:"),
        "stderr: {stderr}"
    );
    for f in fragments {
        assert!(stderr.contains(f), "stderr lacks {f:?}: {stderr}");
    }
    assert!(!env.path("out").exists(), "sink was written");
    for e in env.root_entries() {
        assert!(!e.contains("seqwin-staging"), "staging left behind: {e}");
    }
}

/// A corpus big enough that a run takes a noticeable time (about a second
/// at 12,000 documents): `documents` documents of up to 1,000 tokens in
/// files of 1,000, row groups of 100.
pub fn big_corpus(env: &Env, documents: usize) {
    let docs = random_docs(documents, 1000, 30000, 5);
    for (k, chunk) in docs.chunks(1000).enumerate() {
        write_parquet(
            &env.path(&format!("data/part-{k}.parquet")),
            &corpus_batch(chunk, (k * 1000) as i64, &["a"]),
            100,
        );
    }
}

/// The pipeline run over [`big_corpus`].
pub const BIG_PIPELINE: &str = "source: {path: data, tokens: tokens, id: doc_id}
windows: {seq_len: 64, stride: 8, columns: [doc_id, start]}
split: {fractions: {train: 0.9, val: 0.1}}
sink: {path: out, partition_by: [split], mode: overwrite, row_group_rows: 2000, max_rows_per_file: 20000}
";

/// Everything below `dir`: relative path → file bytes, `dir/` for
/// directories, `-> target` for symbolic links.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", t.display()).into_bytes());
            } else if meta.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}
