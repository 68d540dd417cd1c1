//! `seqwin::stream` (the engine of the Python package and the `polars`
//! feature) against `seqwin run` on the same data: the same windows, in the
//! same order within each split, however the input is cut into batches.

use arrow_array::RecordBatch;
use seqwin::stream::{StreamConfig, StreamWindower};

use crate::harness::*;

fn stream_windows(config: &StreamConfig, batch: &RecordBatch, chunk: usize) -> Vec<Window> {
    let mut w = StreamWindower::new(config, &batch.schema()).unwrap();
    let mut out = Vec::new();
    let mut row = 0;
    while row < batch.num_rows() {
        let n = chunk.min(batch.num_rows() - row);
        out.extend(w.push(&batch.slice(row, n)).unwrap());
        row += n;
    }
    out.extend(w.finish().unwrap());
    let mut windows = Vec::new();
    for b in &out {
        assert_eq!(b.schema(), w.schema());
        let splits = b
            .column_by_name("split")
            .map(|c| arrow_array::cast::AsArray::as_string::<i32>(c.as_ref()).clone());
        for (i, mut win) in batch_windows(b, "").into_iter().enumerate() {
            if let Some(s) = &splits {
                win.partition = format!("split={}", s.value(i));
            }
            windows.push(win);
        }
    }
    windows
}

/// Windows grouped by partition, each in output order.
fn by_partition(mut w: Vec<Window>) -> Vec<Window> {
    w.sort_by(|a, b| a.partition.cmp(&b.partition)); // stable: keeps order within a partition
    w
}

#[test]
fn stream_equals_the_cli() {
    let docs = random_docs(150, 70, 500, 41);
    let batch = corpus_batch(&docs, 1000, &["web", "books"]);
    let cases = [
        ("seq_len: 8, stride: 3, columns: [doc_id, start]", false),
        ("seq_len: 8, remainder: pad, columns: [doc_id, start, loss_mask]", true),
        (
            "seq_len: 16, stride: 5, pack: true, separator: 499, remainder: pad, columns: [doc_id, start, position_ids, segment_ids]",
            true,
        ),
        ("seq_len: 4, dtype: int64, vocab_size: 500, columns: [start]", false),
    ];
    for (windows, split) in cases {
        let env = Env::new();
        write_parquet(&env.path("corpus.parquet"), &batch, 40);
        let split_yaml = if split {
            "split: {fractions: {train: 0.7, val: 0.3}, seed: 5}\n"
        } else {
            ""
        };
        let partition = if split { "partition_by: [split], " } else { "" };
        let p = env.pipeline(
            "p.yaml",
            &format!(
                "source: {{path: corpus.parquet, tokens: tokens, id: doc_id}}\nwindows: {{{windows}}}\n{split_yaml}sink: {{path: out, {partition}row_group_rows: 50}}\n"
            ),
        );
        env.run_ok(&p, &[]);
        let cli = by_partition(read_windows(&env.path("out")));
        let config: StreamConfig = serde_json::from_value(serde_json::json!({
            "tokens": "tokens",
            "id": "doc_id",
            "windows": serde_saphyr_free(&format!("{{{windows}}}")),
            "split": if split { serde_json::json!({"fractions": {"train": 0.7, "val": 0.3}, "seed": 5}) } else { serde_json::Value::Null },
        }))
        .unwrap();
        assert!(!cli.is_empty());
        for chunk in [1, 7, 150] {
            let got = by_partition(stream_windows(&config, &batch, chunk));
            assert_eq!(got, cli, "{windows}, batches of {chunk} rows");
        }
    }
}

/// The windows config of a case, through the same YAML parser the CLI uses.
fn serde_saphyr_free(flow: &str) -> serde_json::Value {
    let env = Env::new();
    let p = env.pipeline(
        "w.yaml",
        &format!("source: {{path: x, tokens: t}}\nwindows: {flow}\nsink: {{path: o}}\n"),
    );
    let config = seqwin::config::PipelineConfig::parse(&p).unwrap();
    serde_json::to_value(config.windows).unwrap()
}

#[test]
fn stream_errors_name_the_argument_and_row() {
    let docs = vec![vec![1, 2, 3], vec![4, 900, 6]];
    let batch = corpus_batch(&docs, 0, &["x"]);
    let config: StreamConfig = serde_json::from_value(serde_json::json!({
        "tokens": "tokens",
        "windows": {"seq_len": 2, "vocab_size": 100},
    }))
    .unwrap();
    let mut w = StreamWindower::new(&config, &batch.schema()).unwrap();
    let err = w.push(&batch).unwrap_err().to_string();
    assert!(err.contains("row 1") && err.contains("900"), "{err}");
    let missing: StreamConfig = serde_json::from_value(serde_json::json!({
        "tokens": "toks",
        "windows": {"seq_len": 0},
    }))
    .unwrap();
    let err = StreamWindower::new(&missing, &batch.schema())
        .unwrap_err()
        .to_string();
    assert!(err.contains("windows.seq_len"), "{err}");
}
