//! The command line: the spec's example, check, inspect, overrides, summary.

use crate::harness::*;

fn hello(env: &Env) {
    let b = arrow::array::RecordBatch::try_from_iter(vec![(
        "tokens",
        docs_column(&[vec![8, 5, 12, 12, 15, 23, 15, 18, 12, 4]]),
    )])
    .unwrap();
    write_parquet(&env.path("hello.parquet"), &b, 10);
}

#[test]
fn hello_world_gives_6_overlapping_and_2_non_overlapping_windows() {
    let env = Env::new();
    hello(&env);
    let p = env.pipeline("p.yaml", "source: {path: hello.parquet, tokens: tokens}\nwindows: {seq_len: 4, stride: 1}\nsink: {path: out}\n");
    env.run_ok(&p, &[]);
    let t = [8, 5, 12, 12, 15, 23, 15, 18, 12, 4];
    let got: Vec<(Vec<i64>, Vec<i64>)> = read_windows(&env.path("out"))
        .into_iter()
        .map(|w| (w.input, w.target))
        .collect();
    let expected: Vec<(Vec<i64>, Vec<i64>)> = (0..6)
        .map(|s| (t[s..s + 4].to_vec(), t[s + 1..s + 5].to_vec()))
        .collect();
    assert_eq!(got, expected);
    env.run_ok(
        &p,
        &["--set", "windows.stride=4", "--set", "sink.path=out4"],
    );
    let got: Vec<(Vec<i64>, Vec<i64>)> = read_windows(&env.path("out4"))
        .into_iter()
        .map(|w| (w.input, w.target))
        .collect();
    assert_eq!(
        got,
        vec![
            (vec![8, 5, 12, 12], vec![5, 12, 12, 15]),
            (vec![15, 23, 15, 18], vec![23, 15, 18, 12])
        ]
    );
}

#[test]
fn check_validates_estimates_and_writes_nothing() {
    let env = Env::new();
    let docs = random_docs(100, 200, 50, 1);
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs, 0, &["x"]),
        30,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 16}\nsink: {path: out}\n",
    );
    let out = env.seqwin(&["check", p.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tokens: usize = docs.iter().map(|d| d.len()).sum();
    assert!(stdout.contains(&format!("~{tokens} tokens")), "{stdout}");
    assert!(
        stdout.contains("windows") && stdout.contains("input: FixedSizeList(16 x non-null Int32)"),
        "{stdout}"
    );
    assert!(!env.path("out").exists());
    assert_eq!(env.root_entries(), ["data", "p.yaml"]);
    // check does not look at the sink's state.
    std::fs::create_dir_all(env.path("out/x")).unwrap();
    assert!(env.seqwin(&["check", p.to_str().unwrap()]).status.success());
}

#[test]
fn inspect_verifies_the_manifest() {
    let env = Env::new();
    hello(&env);
    let p = env.pipeline("p.yaml", "source: {path: hello.parquet, tokens: tokens}\nwindows: {seq_len: 4, stride: 1}\nsink: {path: out}\n");
    env.run_ok(&p, &[]);
    let out = env.seqwin(&["inspect", "out"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("6 windows") && stdout.contains("input=[8, 5, 12, 12]"),
        "{stdout}"
    );
    // A stray file or a truncated file is caught.
    std::fs::copy(
        env.path("out/part-00000.parquet"),
        env.path("out/part-00009.parquet"),
    )
    .unwrap();
    let out = env.seqwin(&["inspect", "out"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("part-00009.parquet is not listed"));
    std::fs::remove_file(env.path("out/part-00009.parquet")).unwrap();
    let f = env.path("out/part-00000.parquet");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 10]).unwrap();
    assert_eq!(env.seqwin(&["inspect", "out"]).status.code(), Some(2));
    assert_eq!(env.seqwin(&["inspect", "nowhere"]).status.code(), Some(2));
}

#[test]
fn summary_and_usage_errors() {
    let env = Env::new();
    hello(&env);
    let p = env.pipeline("p.yaml", "source: {path: hello.parquet, tokens: tokens}\nwindows: {seq_len: 4, stride: 1}\nsink: {path: out}\n");
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrote 6 windows")
            && stderr.contains("10 tokens")
            && stderr.contains("tokens/s"),
        "{stderr}"
    );
    assert_eq!(env.seqwin(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(env.seqwin(&["run"]).status.code(), Some(2));
    assert_eq!(env.seqwin(&["run", "missing.yaml"]).status.code(), Some(2));
}
