//! Same input and config give byte-identical files whatever the thread count.

use crate::harness::*;

fn files_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    dataset_files(dir)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect()
}

fn compare_threads(yaml: &str) {
    let env = Env::new();
    let docs = random_docs(600, 300, 5000, 11);
    for (k, chunk) in docs.chunks(150).enumerate() {
        write_parquet(
            &env.path(&format!("data/part-{k}.parquet")),
            &corpus_batch(chunk, (k * 150) as i64, &["web", "books", "code"]),
            17,
        );
    }
    let p = env.pipeline("p.yaml", yaml);
    env.run_ok(&p, &["--threads", "1", "--set", "sink.path=out1"]);
    env.run_ok(&p, &["--threads", "2", "--set", "sink.path=out2"]);
    env.run_ok(&p, &["--threads", "3", "--set", "sink.path=out3"]);
    let a = files_bytes(&env.path("out1"));
    assert!(!a.is_empty());
    assert_eq!(a, files_bytes(&env.path("out2")));
    assert_eq!(a, files_bytes(&env.path("out3")));
    let strip = |mut m: serde_json::Value| {
        m["elapsed_seconds"] = 0.into();
        m["config"]["sink"]["path"] = "".into();
        m
    };
    assert_eq!(
        strip(manifest(&env.path("out1"))),
        strip(manifest(&env.path("out2")))
    );
}

#[test]
fn threads_do_not_change_the_bytes() {
    compare_threads(
        "source: {path: data, tokens: tokens, id: doc_id, carry: [source]}
windows: {seq_len: 32, stride: 7, remainder: pad, columns: [doc_id, start]}
split: {fractions: {train: 0.9, val: 0.1}}
sink: {path: out, partition_by: [split, source], row_group_rows: 300, max_rows_per_file: 1000}
",
    );
}

#[test]
fn threads_do_not_change_the_bytes_when_packing() {
    compare_threads(
        "source: {path: data, tokens: tokens, id: doc_id}
windows: {seq_len: 64, pack: true, separator: 4999, columns: [doc_id, start, position_ids, segment_ids]}
split: {fractions: {train: 0.9, val: 0.1}}
sink: {path: out, partition_by: [split], row_group_rows: 100}
",
    );
}

#[test]
fn threads_do_not_change_the_bytes_when_shuffling() {
    compare_threads(
        "source: {path: data, tokens: tokens, id: doc_id}
windows: {seq_len: 16, stride: 8}
split: {fractions: {train: 0.9, val: 0.1}}
shuffle: {seed: 5, memory_mb: 1}
sink: {path: out, partition_by: [split], row_group_rows: 500}
",
    );
}
