//! Source layouts: flat token columns, id runs, hive directories, globs,
//! integer widths and list kinds, partition value escaping.

use std::sync::Arc;

use arrow_array::types::{UInt16Type, UInt64Type};
use arrow_array::{
    ArrayRef, FixedSizeListArray, Int32Array, Int64Array, LargeListArray, ListArray, RecordBatch,
    StringArray, UInt16Array,
};
use arrow_schema::{DataType, Field};

use crate::harness::*;

#[test]
fn flat_column_without_id_is_one_document_across_files() {
    let env = Env::new();
    let tokens: Vec<i64> = (0..1000).map(|i| (i * 7) % 101).collect();
    for (k, chunk) in tokens.chunks(300).enumerate() {
        let b = RecordBatch::try_from_iter(vec![(
            "tok",
            Arc::new(Int64Array::from(chunk.to_vec())) as ArrayRef,
        )])
        .unwrap();
        write_parquet(&env.path(&format!("data/f{k}.parquet")), &b, 64);
    }
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tok}\nwindows: {seq_len: 10, stride: 7, remainder: pad, columns: [doc_id, start, position_ids]}\nsink: {path: out}\n",
    );
    env.run_ok(&p, &[]);
    let got = read_windows(&env.path("out"));
    let expected = reference_windows(&tokens, 10, 7, Some((0, -100)));
    assert_eq!(got.len(), expected.len());
    for (g, (s, i, t)) in got.iter().zip(&expected) {
        assert_eq!(
            (&g.input, &g.target, g.start, g.doc_id),
            (i, t, Some(*s as i64), Some(0))
        );
        let real = g
            .loss_mask
            .as_ref()
            .unwrap()
            .iter()
            .filter(|&&m| m == 1)
            .count();
        let pos: Vec<i64> = (0..10)
            .map(|j| if j < real { *s as i64 + j as i64 } else { 0 })
            .collect();
        assert_eq!(g.position_ids.as_ref().unwrap(), &pos);
    }
}

#[test]
fn flat_column_with_id_runs_spanning_row_groups() {
    let env = Env::new();
    // Documents of 0..60 tokens, ids in runs; row groups of 16 rows cut runs.
    let docs = random_docs(40, 60, 500, 4);
    let mut ids = Vec::new();
    let mut toks = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        for &t in doc {
            ids.push(format!("doc-{d}"));
            toks.push(t as i32);
        }
    }
    let b = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("tok", Arc::new(Int32Array::from(toks)) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&env.path("data/a.parquet"), &b.slice(0, 500), 16);
    write_parquet(
        &env.path("data/b.parquet"),
        &b.slice(500, b.num_rows() - 500),
        16,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tok, id: id}\nwindows: {seq_len: 5, stride: 3, columns: [start]}\nsink: {path: out}\n",
    );
    env.run_ok(&p, &[]);
    let got = read_windows(&env.path("out"));
    let expected: Vec<(usize, Vec<i64>, Vec<i64>)> = docs
        .iter()
        .filter(|d| !d.is_empty())
        .flat_map(|d| reference_windows(d, 5, 3, None))
        .collect();
    let got: Vec<(usize, Vec<i64>, Vec<i64>)> = got
        .into_iter()
        .map(|w| (w.start.unwrap() as usize, w.input, w.target))
        .collect();
    assert_eq!(got, expected);
    let m = manifest(&env.path("out"));
    assert_eq!(
        m["totals"]["documents"],
        docs.iter().filter(|d| !d.is_empty()).count()
    );
}

#[test]
fn list_kinds_and_integer_widths() {
    let env = Env::new();
    let docs = [vec![1i64, 2, 3, 4, 5, 6, 7], vec![8, 9, 10, 11, 12, 13, 14]];
    let large: ArrayRef = Arc::new(LargeListArray::from_iter_primitive::<UInt64Type, _, _>(
        docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as u64)))),
    ));
    let u16s: ArrayRef = Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(
        docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as u16)))),
    ));
    let fixed: ArrayRef = Arc::new(FixedSizeListArray::new(
        Arc::new(Field::new("item", DataType::UInt16, true)),
        7,
        Arc::new(UInt16Array::from_iter_values(
            docs.iter().flatten().map(|&t| t as u16),
        )),
        None,
    ));
    for (name, col) in [("large", large), ("u16", u16s), ("fixed", fixed)] {
        let b = RecordBatch::try_from_iter(vec![("t", col)]).unwrap();
        write_parquet(&env.path(&format!("{name}/a.parquet")), &b, 1);
        for dtype in ["int32", "int64", "uint16", "uint32"] {
            let p = env.pipeline(
                "p.yaml",
                &format!("source: {{path: {name}, tokens: t}}\nwindows: {{seq_len: 3, stride: 2, dtype: {dtype}}}\nsink: {{path: out, mode: overwrite}}\n"),
            );
            env.run_ok(&p, &[]);
            let got: Vec<(Vec<i64>, Vec<i64>)> = read_windows(&env.path("out"))
                .into_iter()
                .map(|w| (w.input, w.target))
                .collect();
            let expected: Vec<(Vec<i64>, Vec<i64>)> = docs
                .iter()
                .flat_map(|d| reference_windows(d, 3, 2, None))
                .map(|(_, i, t)| (i, t))
                .collect();
            assert_eq!(got, expected, "{name} as {dtype}");
            let f = &dataset_files(&env.path("out"))[0];
            let dt = read_file(f)[0].schema().field(0).data_type().clone();
            let want = match dtype {
                "int32" => DataType::Int32,
                "int64" => DataType::Int64,
                "uint16" => DataType::UInt16,
                _ => DataType::UInt32,
            };
            assert_eq!(
                dt,
                DataType::FixedSizeList(Arc::new(Field::new("item", want, false)), 3)
            );
        }
    }
}

#[test]
fn hive_input_directories_glob_and_hidden_files() {
    let env = Env::new();
    let docs = random_docs(30, 40, 100, 3);
    write_parquet(
        &env.path("data/lang=en/a.parquet"),
        &corpus_batch(&docs[..10], 0, &["x"]),
        4,
    );
    write_parquet(
        &env.path("data/lang=fr/b.parquet"),
        &corpus_batch(&docs[10..20], 10, &["x"]),
        4,
    );
    // Skipped: names starting with `_` or `.`.
    write_parquet(
        &env.path("data/_tmp/c.parquet"),
        &corpus_batch(&docs[20..], 20, &["x"]),
        4,
    );
    write_parquet(
        &env.path("data/lang=fr/.d.parquet"),
        &corpus_batch(&docs[20..], 20, &["x"]),
        4,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, id: doc_id, carry: [lang]}\nwindows: {seq_len: 6, columns: [doc_id]}\nsink: {path: out, partition_by: [lang]}\n",
    );
    env.run_ok(&p, &[]);
    let got = read_windows(&env.path("out"));
    let expected: usize = docs[..20]
        .iter()
        .map(|d| reference_windows(d, 6, 6, None).len())
        .sum();
    assert_eq!(got.len(), expected);
    for w in &got {
        let d = w.doc_id.unwrap();
        assert_eq!(w.partition, if d < 10 { "lang=en" } else { "lang=fr" });
    }
    // A glob selects the same files.
    let g = env.pipeline(
        "g.yaml",
        "source: {path: 'data/lang=*/*.parquet', tokens: tokens, id: doc_id, carry: [lang]}\nwindows: {seq_len: 6, columns: [doc_id]}\nsink: {path: out2, partition_by: [lang]}\n",
    );
    env.run_ok(&g, &[]);
    assert_eq!(read_windows(&env.path("out2")), got);
}

#[test]
fn partition_values_are_escaped_and_stay_inside_the_dataset() {
    let env = Env::new();
    let values = [
        Some("a/b"),
        Some("../up"),
        Some("k=v"),
        Some("50%"),
        Some("two words"),
        Some("café"),
        None,
        Some(".."),
        Some("back\\slash"),
    ];
    let n = values.len();
    let b = RecordBatch::try_from_iter(vec![
        ("tokens", docs_column(&vec![vec![1, 2, 3, 4, 5]; n])),
        (
            "src",
            Arc::new(StringArray::from(values.to_vec())) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&env.path("data/a.parquet"), &b, 100);
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, carry: [src]}\nwindows: {seq_len: 2}\nsink: {path: out, partition_by: [src]}\n",
    );
    env.run_ok(&p, &[]);
    let mut dirs: Vec<String> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("src="))
        .collect();
    dirs.sort();
    let mut expected = vec![
        "src=..",
        "src=..%2Fup",
        "src=50%25",
        "src=__HIVE_DEFAULT_PARTITION__",
        "src=a%2Fb",
        "src=back%5Cslash",
        "src=café",
        "src=k%3Dv",
        "src=two words",
    ];
    expected.sort();
    assert_eq!(dirs, expected);
    // Nothing was written outside the dataset.
    let mut root = env.root_entries();
    root.retain(|e| !e.starts_with('.'));
    assert_eq!(root, ["data", "out", "p.yaml"]);
}

#[test]
fn item_12_mixed_token_widths_and_list_kinds_in_one_corpus() {
    // Shards of one corpus written by different tools: int32 lists, int64
    // lists, large lists of uint16, fixed-size lists. `check` and `run`
    // accept them all and convert each to windows.dtype.
    let env = Env::new();
    let docs = [vec![1i64, 2, 3, 4, 5, 6, 7], vec![8, 9, 10, 11, 12, 13, 14]];
    let shards: Vec<(&str, ArrayRef)> = vec![
        ("a", docs_column_i32(&docs)),
        ("b", docs_column(&docs)),
        (
            "c",
            Arc::new(LargeListArray::from_iter_primitive::<UInt16Type, _, _>(
                docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as u16)))),
            )),
        ),
        (
            "d",
            Arc::new(FixedSizeListArray::new(
                Arc::new(Field::new("item", DataType::UInt16, true)),
                7,
                Arc::new(UInt16Array::from_iter_values(
                    docs.iter().flatten().map(|&t| t as u16),
                )),
                None,
            )),
        ),
    ];
    for (name, col) in shards {
        let b = RecordBatch::try_from_iter(vec![("t", col)]).unwrap();
        write_parquet(&env.path(&format!("data/{name}.parquet")), &b, 1);
    }
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: t}\nwindows: {seq_len: 3, stride: 2}\nsink: {path: out}\n",
    );
    let check = env.seqwin(&["check", p.to_str().unwrap()]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    env.run_ok(&p, &[]);
    let got: Vec<(Vec<i64>, Vec<i64>)> = read_windows(&env.path("out"))
        .into_iter()
        .map(|w| (w.input, w.target))
        .collect();
    let expected: Vec<(Vec<i64>, Vec<i64>)> = (0..4)
        .flat_map(|_| docs.iter().flat_map(|d| reference_windows(d, 3, 2, None)))
        .map(|(_, i, t)| (i, t))
        .collect();
    assert_eq!(got, expected);
}

/// Writes `data/c.parquet` with a `tokens` list column and a `tag` string
/// column holding `tags` (one per document; `None` for null).
fn tagged_corpus(env: &Env, tags: &[Option<&str>]) {
    let docs: Vec<Vec<i64>> = (0..tags.len()).map(|i| vec![i as i64; 6]).collect();
    let b = RecordBatch::try_from_iter(vec![
        ("tokens", docs_column(&docs)),
        (
            "tag",
            Arc::new(StringArray::from(tags.to_vec())) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&env.path("data/c.parquet"), &b, 10);
}

#[test]
fn item_07_partition_values_that_would_collide_are_refused() {
    // null, "" and the literal __HIVE_DEFAULT_PARTITION__ would all be one
    // directory that readers decode as null: only null may take it.
    let yaml = "source: {path: data, tokens: tokens, carry: [tag]}\nwindows: {seq_len: 2}\nsink: {path: out, partition_by: [tag]}\n";
    for (tags, row, message) in [
        (
            vec![Some("a"), Some("")],
            1,
            "an empty string would be written as __HIVE_DEFAULT_PARTITION__ and read back as null; map it to a value first",
        ),
        (
            vec![Some("__HIVE_DEFAULT_PARTITION__")],
            0,
            "the value __HIVE_DEFAULT_PARTITION__ is how readers spell null; it cannot be a partition value",
        ),
    ] {
        let env = Env::new();
        tagged_corpus(&env, &tags);
        let p = env.pipeline("p.yaml", yaml);
        let out = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
        assert_bad_input(&env, &out, &[]);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "seqwin: error: {}: row {row} (partition column `tag`): {message}\n",
                env.path("data/c.parquet").display()
            )
        );
    }
    // A null value is the default partition, and reads back as null.
    let env = Env::new();
    tagged_corpus(&env, &[Some("a"), None]);
    let p = env.pipeline("p.yaml", yaml);
    env.run_ok(&p, &[]);
    let m = manifest(&env.path("out"));
    let values: Vec<(String, serde_json::Value)> = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["values"]["tag"].clone(),
            )
        })
        .collect();
    assert_eq!(
        values,
        [
            (
                "tag=__HIVE_DEFAULT_PARTITION__".to_string(),
                serde_json::Value::Null
            ),
            ("tag=a".to_string(), serde_json::json!("a")),
        ]
    );
}

#[test]
fn item_07_binary_partition_columns_are_refused() {
    let env = Env::new();
    let b = RecordBatch::try_from_iter(vec![
        ("tokens", docs_column(&[vec![1, 2, 3]])),
        (
            "tag",
            Arc::new(arrow_array::BinaryArray::from(vec![&b"\xff\x00"[..]])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&env.path("data/c.parquet"), &b, 10);
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, carry: [tag]}\nwindows: {seq_len: 2}\nsink: {path: out, partition_by: [tag]}\n",
    );
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_bad_input(&env, &out, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "seqwin: error: {}: partition column `tag`: Binary values cannot name partition directories (readers would decode text, not the bytes); carry it without partitioning on it\n",
            env.path("data/c.parquet").display()
        )
    );
}

#[test]
fn item_08_a_flat_document_keeps_its_partition_across_row_groups() {
    // Document 7's tokens span two row groups and its `lang` changes inside
    // it: the document stays in the partition of its first row, and no
    // partition without documents appears.
    let env = Env::new();
    let ids: Vec<i64> = [vec![7i64; 6], vec![8; 4]].concat();
    let langs: Vec<&str> = ["en", "en", "en", "en", "fr", "fr", "de", "de", "de", "de"].to_vec();
    let b = RecordBatch::try_from_iter(vec![
        (
            "tok",
            Arc::new(Int64Array::from_iter_values(0..10)) as ArrayRef,
        ),
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("lang", Arc::new(StringArray::from(langs)) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&env.path("data/c.parquet"), &b, 4);
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tok, id: id, carry: [lang]}\nwindows: {seq_len: 2, columns: [doc_id, start]}\nsink: {path: out, partition_by: [lang]}\n",
    );
    env.run_ok(&p, &[]);
    let m = manifest(&env.path("out"));
    let parts: Vec<(String, u64, u64)> = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["account"]["documents"].as_u64().unwrap(),
                p["account"]["windows"].as_u64().unwrap(),
            )
        })
        .collect();
    // doc 7: tokens 0..6 → windows at 0 and 2 (the one at 4 needs token 6);
    // doc 8: tokens 6..10 → window at 0.
    assert_eq!(
        parts,
        [("lang=de".to_string(), 1, 1), ("lang=en".to_string(), 1, 2)]
    );
}
