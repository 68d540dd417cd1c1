//! The `polars` feature: windows of a Polars DataFrame equal the stream
//! windower's (itself tested against `seqwin run`) on the same data built
//! with arrow-rs, and the plain loop of the spec.

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray};
use polars_core::prelude::*;
use seqwin::stream::{StreamConfig, StreamWindower};

fn docs() -> Vec<Vec<i32>> {
    (0..40)
        .map(|d| (0..(d * 7 % 23)).map(|t| (d * 31 + t * 17) % 97).collect())
        .collect()
}

fn polars_frame(docs: &[Vec<i32>]) -> DataFrame {
    let lists: Vec<Series> = docs
        .iter()
        .map(|d| Series::new("".into(), d.as_slice()))
        .collect();
    let ids: Vec<i64> = (0..docs.len() as i64).map(|i| 500 + i).collect();
    let names: Vec<String> = (0..docs.len()).map(|i| format!("s{}", i % 3)).collect();
    DataFrame::new_infer_height(vec![
        Column::new("doc_id".into(), ids),
        Column::new("name".into(), names),
        Column::new("tokens".into(), lists),
    ])
    .unwrap()
}

fn arrow_batch(docs: &[Vec<i32>]) -> RecordBatch {
    let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(
        docs.iter()
            .map(|d| Some(d.iter().map(|&t| Some(t)).collect::<Vec<_>>())),
    );
    RecordBatch::try_from_iter(vec![
        (
            "doc_id",
            Arc::new(Int64Array::from_iter_values(500..500 + docs.len() as i64)) as ArrayRef,
        ),
        (
            "name",
            Arc::new(StringArray::from_iter_values(
                (0..docs.len()).map(|i| format!("s{}", i % 3)),
            )) as ArrayRef,
        ),
        ("tokens", Arc::new(lists) as ArrayRef),
    ])
    .unwrap()
}

/// (split, doc_id, start, input, target, name) of one output row.
type Row = (String, i64, i64, Vec<i32>, Vec<i32>, String);

/// Every row of a Polars frame.
fn polars_rows(df: &DataFrame) -> Vec<Row> {
    let col = |n: &str| df.column(n).unwrap().as_materialized_series().clone();
    let (input, target) = (col("input"), col("target"));
    let (input, target) = (input.array().unwrap(), target.array().unwrap());
    let ids = col("doc_id");
    let starts = col("start");
    let names = col("name");
    let splits = col("split");
    let values = |s: Series| -> Vec<i32> { s.i32().unwrap().into_no_null_iter().collect() };
    (0..df.height())
        .map(|i| {
            (
                splits.str().unwrap().get(i).unwrap().to_string(),
                ids.i64().unwrap().get(i).unwrap(),
                starts.i64().unwrap().get(i).unwrap(),
                values(input.get_as_series(i).unwrap()),
                values(target.get_as_series(i).unwrap()),
                names.str().unwrap().get(i).unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn polars_frame_equals_the_stream_windower_and_the_plain_loop() {
    let docs = docs();
    let config: StreamConfig = serde_json::from_value(serde_json::json!({
        "tokens": "tokens",
        "id": "doc_id",
        "carry": ["name"],
        "windows": {"seq_len": 5, "stride": 2, "columns": ["doc_id", "start"]},
        "split": {"fractions": {"a": 0.5, "b": 0.5}, "seed": 3},
    }))
    .unwrap();
    let out = seqwin::polars::windows(&polars_frame(&docs), &config).unwrap();
    assert!(matches!(
        out.column("input").unwrap().dtype(),
        DataType::Array(inner, 5) if **inner == DataType::Int32
    ));
    let got = polars_rows(&out);

    // The same data through arrow-rs.
    let batch = arrow_batch(&docs);
    let expected_batches =
        StreamWindower::window_all(&config, &batch.schema(), [batch.clone()]).unwrap();
    let mut expected_keys = Vec::new();
    for b in &expected_batches {
        use arrow_array::cast::AsArray;
        let split = b.column_by_name("split").unwrap().as_string::<i32>();
        let id = b
            .column_by_name("doc_id")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        let start = b
            .column_by_name("start")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        for i in 0..b.num_rows() {
            expected_keys.push((split.value(i).to_string(), id.value(i), start.value(i)));
        }
    }
    let got_keys: Vec<_> = got.iter().map(|r| (r.0.clone(), r.1, r.2)).collect();
    assert_eq!(got_keys, expected_keys);

    // And the plain loop of docs/format.md §1.1 (splits as the stream assigned them).
    let mut plain = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let mut s = 0;
        while s + 5 < doc.len() {
            plain.push((
                500 + d as i64,
                s as i64,
                doc[s..s + 5].to_vec(),
                doc[s + 1..s + 6].to_vec(),
                format!("s{}", d % 3),
            ));
            s += 2;
        }
    }
    let mut got_plain: Vec<_> = got
        .iter()
        .map(|(_, id, s, i, t, n)| (*id, *s, i.clone(), t.clone(), n.clone()))
        .collect();
    got_plain.sort();
    plain.sort();
    assert_eq!(got_plain, plain);
    let splits: std::collections::BTreeSet<&str> = got.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(splits, ["a", "b"].into_iter().collect());
}

#[test]
fn polars_errors_name_the_column() {
    let config: StreamConfig = serde_json::from_value(serde_json::json!({
        "tokens": "toks",
        "windows": {"seq_len": 4},
    }))
    .unwrap();
    let err = seqwin::polars::windows(&polars_frame(&docs()), &config).unwrap_err();
    assert!(
        err.to_string()
            .contains("available columns: doc_id, name, tokens"),
        "{err}"
    );
}
