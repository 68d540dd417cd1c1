//! Every bad input exits 2 with one clear message naming the file/row/key,
//! writes nothing, and never panics. One test per case of bad data; the rules
//! of the pipeline file are tested by parsing strings (src/plan/tests.rs),
//! with a few end-to-end cases here.

use std::sync::Arc;

use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray};

use crate::harness::*;

fn corpus(env: &Env) {
    let docs = random_docs(50, 40, 100, 1);
    write_parquet(
        &env.path("data/c.parquet"),
        &corpus_batch(&docs, 0, &["a", "b"]),
        10,
    );
}

fn yaml(windows: &str) -> String {
    format!(
        "source:\n  path: data\n  tokens: tokens\n  id: doc_id\n  carry: [source]\nwindows:\n{windows}\nsink:\n  path: out\n"
    )
}

/// A fresh env with the standard corpus, running `yaml`.
fn run_on_corpus(yaml: &str) -> (Env, std::process::Output) {
    let env = Env::new();
    corpus(&env);
    let out = run(&env, yaml);
    (env, out)
}

fn run(env: &Env, yaml: &str) -> std::process::Output {
    let p = env.pipeline("p.yaml", yaml);
    env.seqwin(&["run", p.to_str().unwrap(), "--quiet"])
}

fn bad_tokens(env: &Env, docs: Vec<Option<Vec<Option<i64>>>>) {
    let tokens: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(docs));
    let n = tokens.len();
    let b = RecordBatch::try_from_iter(vec![
        (
            "doc_id",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        (
            "source",
            Arc::new(StringArray::from_iter_values((0..n).map(|_| "x"))) as ArrayRef,
        ),
        ("tokens", tokens),
    ])
    .unwrap();
    write_parquet(&env.path("data/c.parquet"), &b, 2);
}

use arrow_array::Array;

#[test]
fn missing_source_path() {
    let env = Env::new();
    let out = run(&env, &yaml("  seq_len: 4"));
    assert_bad_input(&env, &out, &["data", "does not exist"]);
}

#[test]
fn no_parquet_files() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("data/sub")).unwrap();
    std::fs::write(env.path("data/sub/readme.txt"), "hi").unwrap();
    let out = run(&env, &yaml("  seq_len: 4"));
    assert_bad_input(&env, &out, &["no Parquet files found"]);
}

#[test]
fn not_a_parquet_file() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("data")).unwrap();
    std::fs::write(env.path("data/c.parquet"), "this is text, not parquet").unwrap();
    let out = run(&env, &yaml("  seq_len: 4"));
    assert_bad_input(&env, &out, &["c.parquet", "not a readable Parquet file"]);
}

#[test]
fn truncated_parquet_file() {
    let env = Env::new();
    corpus(&env);
    let p = env.path("data/c.parquet");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&env, &yaml("  seq_len: 4"));
    assert_bad_input(&env, &out, &["c.parquet"]);
}

#[test]
fn flipped_bytes_in_the_data() {
    let env = Env::new();
    corpus(&env);
    let p = env.path("data/c.parquet");
    let mut bytes = std::fs::read(&p).unwrap();
    // Corrupt the data pages (the first bytes after the magic), not the footer.
    for b in &mut bytes[4..200] {
        *b ^= 0x5a;
    }
    std::fs::write(&p, &bytes).unwrap();
    let out = run(&env, &yaml("  seq_len: 4"));
    assert_bad_input(&env, &out, &["c.parquet"]);
}

#[test]
fn token_column_missing_lists_the_columns() {
    let (env, out) = run_on_corpus(&yaml("  seq_len: 4").replace("tokens: tokens", "tokens: ids"));
    assert_bad_input(
        &env,
        &out,
        &[
            "c.parquet",
            "column `ids`",
            "available columns: doc_id, source, tokens",
        ],
    );
}

#[test]
fn token_column_not_integer() {
    let (env, out) = run_on_corpus(
        &yaml("  seq_len: 4")
            .replace("tokens: tokens", "tokens: source")
            .replace("  carry: [source]\n", ""),
    );
    assert_bad_input(
        &env,
        &out,
        &[
            "c.parquet",
            "`source`",
            "must be a list of integers",
            "Utf8",
        ],
    );
}

#[test]
fn null_document_names_file_and_row() {
    let env = Env::new();
    bad_tokens(
        &env,
        vec![Some(vec![Some(1), Some(2)]), Some(vec![Some(3)]), None],
    );
    let out = run(&env, &yaml("  seq_len: 1"));
    assert_bad_input(&env, &out, &["c.parquet", "row 2", "document is null"]);
}

#[test]
fn null_token_names_file_and_row() {
    let env = Env::new();
    bad_tokens(
        &env,
        vec![
            Some(vec![Some(1)]),
            Some(vec![Some(1)]),
            Some(vec![Some(3)]),
            Some(vec![Some(3), None]),
        ],
    );
    let out = run(&env, &yaml("  seq_len: 1"));
    assert_bad_input(&env, &out, &["c.parquet", "row 3", "token is null"]);
}

#[test]
fn negative_token() {
    let env = Env::new();
    bad_tokens(&env, vec![Some(vec![Some(1), Some(-7)])]);
    let out = run(&env, &yaml("  seq_len: 1"));
    assert_bad_input(&env, &out, &["c.parquet", "row 0", "-7", "negative"]);
}

#[test]
fn token_not_below_vocab_size() {
    let env = Env::new();
    bad_tokens(
        &env,
        vec![
            Some(vec![Some(1)]),
            Some(vec![Some(1)]),
            Some(vec![Some(1)]),
            Some(vec![Some(5), Some(100)]),
        ],
    );
    let out = run(&env, &yaml("  seq_len: 1\n  vocab_size: 100"));
    assert_bad_input(
        &env,
        &out,
        &["c.parquet", "row 3", "token 100", "vocab_size 100"],
    );
}

#[test]
fn token_that_does_not_fit_dtype() {
    let env = Env::new();
    bad_tokens(&env, vec![Some(vec![Some(1), Some(70_000)])]);
    let out = run(&env, &yaml("  seq_len: 1\n  dtype: uint16"));
    assert_bad_input(&env, &out, &["c.parquet", "row 0", "70000", "uint16"]);
    // int32 holds it.
    let p = env.pipeline("ok.yaml", &yaml("  seq_len: 1\n  dtype: int32"));
    env.run_ok(&p, &[]);
}

#[test]
fn unknown_yaml_key_with_line_and_column() {
    let (env, out) = run_on_corpus(&yaml("  seq_len: 4\n  seqlen: 8"));
    assert_bad_input(
        &env,
        &out,
        &[
            "p.yaml",
            "unknown field `seqlen`",
            "line 8 column 3",
            "expected one of seq_len",
        ],
    );
}

#[test]
fn all_config_problems_are_reported_at_once() {
    let (env, out) =
        run_on_corpus(&(yaml("  seq_len: 0\n  stride: 0") + "split:\n  fractions: {train: 0.5}\n"));
    assert_bad_input(&env, &out, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "seqwin: error: {}: invalid pipeline:\n  - `windows.seq_len` must be at least 1, got 0\n  - `windows.stride` must be at least 1, got 0\n  - `split.fractions` must sum to 1, got 0.5\n  - `split` is given but `sink.partition_by` does not name `split`: the split would be computed and thrown away; add `split` to `sink.partition_by`\n",
            env.path("p.yaml").display()
        )
    );
}

#[test]
fn bad_override() {
    let env = Env::new();
    corpus(&env);
    let p = env.pipeline("p.yaml", &yaml("  seq_len: 4"));
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--set", "windows.seq_len=abc"]);
    assert_bad_input(&env, &out, &["--set windows.seq_len=abc"]);
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--set", "windows.sequence=4"]);
    assert_bad_input(&env, &out, &["sequence"]);
}

#[test]
fn file_urls_are_local_paths() {
    let env = Env::new();
    corpus(&env);
    let url = format!("file://{}", env.path("data").display());
    let p = env.pipeline(
        "p.yaml",
        &format!("source: {{path: '{url}', tokens: tokens}}\nwindows: {{seq_len: 4}}\nsink: {{path: out}}\n"),
    );
    env.run_ok(&p, &[]);
    assert!(env.path("out/_SUCCESS").exists());
}

#[cfg(feature = "cloud")]
#[test]
fn missing_object_store_credentials_are_one_sentence() {
    // No AWS_* variables: refused before any request is made.
    let env = Env::new();
    corpus(&env);
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: 's3://bucket/out'}\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(["run", p.to_str().unwrap(), "--quiet"])
        .current_dir(env.dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "seqwin: error: s3://bucket/out: no AWS credentials: set AWS_ACCESS_KEY_ID"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A seqwin built without the `cloud` feature (`cargo test
/// --no-default-features --test integration cloud_feature`, run by CI):
/// `check` and `run` refuse an object store path up front, exit code 2, one
/// sentence naming the key, nothing written.
#[cfg(not(feature = "cloud"))]
#[test]
fn cloud_feature_object_store_paths_are_refused_without_it() {
    let env = Env::new();
    corpus(&env);
    let sentence = |key: &str, url: &str| {
        format!("seqwin: error: `{key}`: \"{url}\" needs object-store support; this seqwin was built without the `cloud` feature (cargo install seqwin --features cloud)\n")
    };
    let source = env.pipeline(
        "source.yaml",
        "source: {path: 's3://bucket/corpus', tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n",
    );
    let sink = env.pipeline(
        "sink.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: 'gs://bucket/out'}\n",
    );
    for (pipeline, key, url) in [
        (&source, "source.path", "s3://bucket/corpus"),
        (&sink, "sink.path", "gs://bucket/out"),
    ] {
        for command in ["check", "run"] {
            let out = env.seqwin(&[command, pipeline.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{command} {key}");
            assert_eq!(String::from_utf8_lossy(&out.stderr), sentence(key, url));
        }
    }
    assert!(!env.path("out").exists());
}
