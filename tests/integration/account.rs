//! The manifest's token account and the windows themselves against an
//! independent count made here from the input with the plain loop.

use std::collections::BTreeMap;

use seqwin::plan::SplitSpec;
use seqwin::split::DocKey;

use crate::harness::*;

#[test]
fn windows_and_token_account_equal_the_plain_loop_per_split() {
    let env = Env::new();
    let docs = random_docs(300, 120, 1000, 7);
    // Three files, uneven row groups.
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs[..100], 0, &["web"]),
        7,
    );
    write_parquet(
        &env.path("data/b.parquet"),
        &corpus_batch(&docs[100..250], 100, &["books"]),
        33,
    );
    write_parquet(
        &env.path("data/c/d.parquet"),
        &corpus_batch(&docs[250..], 250, &["web"]),
        1000,
    );
    for (remainder, stride) in [("drop", 16), ("pad", 16), ("pad", 5), ("drop", 40)] {
        let p = env.pipeline(
            "p.yaml",
            &format!(
                "source: {{path: data, tokens: tokens, id: doc_id}}
windows: {{seq_len: 16, stride: {stride}, remainder: {remainder}, pad_id: 0, ignore_index: -100, columns: [doc_id, start]}}
split: {{fractions: {{train: 0.7, val: 0.2, test: 0.1}}, seed: 3}}
sink: {{path: out, partition_by: [split], mode: overwrite, row_group_rows: 50, max_rows_per_file: 120}}
"
            ),
        );
        env.run_ok(&p, &[]);
        let split = SplitSpec {
            names: vec!["test".into(), "train".into(), "val".into()],
            cumulative: vec![0.1, 0.8, 1.0],
            seed: 3,
        };
        let pad = (remainder == "pad").then_some((0, -100));
        // Independent expectation.
        let mut expected: BTreeMap<String, Vec<Window>> = BTreeMap::new();
        let mut account: BTreeMap<String, [u64; 6]> = BTreeMap::new();
        for (i, d) in docs.iter().enumerate() {
            let part = format!("split={}", split.names[split.assign(DocKey::Int(i as i64))]);
            let a = account.entry(part.clone()).or_default();
            let ws = reference_windows(d, 16, stride, pad);
            let mut targeted = vec![false; d.len()];
            a[0] += d.len() as u64;
            for (s, input, target) in ws {
                let real = target.iter().filter(|&&t| t != -100).count();
                for t in &mut targeted[s + 1..s + 1 + real] {
                    *t = true;
                }
                a[3] += 1;
                if real < 16 {
                    a[4] += 1;
                    a[5] += 16 - real as u64;
                }
                expected.entry(part.clone()).or_default().push(Window {
                    partition: part.clone(),
                    loss_mask: pad.map(|_| (0..16).map(|j| (j < real) as i64).collect()),
                    input,
                    target,
                    doc_id: Some(i as i64),
                    start: Some(s as i64),
                    position_ids: None,
                    segment_ids: None,
                    lane: None,
                    step: None,
                });
            }
            a[1] += targeted.iter().filter(|&&t| t).count() as u64;
            a[2] += targeted.iter().filter(|&&t| !t).count() as u64;
        }
        let got = read_windows(&env.path("out"));
        let expected_all: Vec<Window> = expected.values().flatten().cloned().collect();
        assert_eq!(got, expected_all, "remainder {remainder} stride {stride}");
        let m = manifest(&env.path("out"));
        for p in m["partitions"].as_array().unwrap() {
            let a = &p["account"];
            let e = account[p["path"].as_str().unwrap()];
            let got = [
                a["tokens_in"].as_u64().unwrap(),
                a["tokens_targeted"].as_u64().unwrap(),
                a["tokens_never_targeted"].as_u64().unwrap(),
                a["windows"].as_u64().unwrap(),
                a["padded_windows"].as_u64().unwrap(),
                a["padding_positions"].as_u64().unwrap(),
            ];
            assert_eq!(got, e, "partition {}", p["path"]);
            // File rolling: at most 120 rows per file, row groups of 50.
            for f in p["files"].as_array().unwrap() {
                assert!(f["rows"].as_u64().unwrap() <= 120);
            }
        }
        assert_eq!(m["partitions"].as_array().unwrap().len(), account.len());
    }
}

#[test]
fn files_roll_and_row_groups_follow_the_config() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let env = Env::new();
    let docs = random_docs(200, 200, 50, 9);
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs, 0, &["x"]),
        64,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 8, stride: 3}\nsink: {path: out, row_group_rows: 100, max_rows_per_file: 250}\n",
    );
    env.run_ok(&p, &[]);
    let total: usize = docs
        .iter()
        .map(|d| reference_windows(d, 8, 3, None).len())
        .sum();
    let files = dataset_files(&env.path("out"));
    assert_eq!(files.len(), total.div_ceil(250));
    for (k, f) in files.iter().enumerate() {
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            format!("part-{k:05}.parquet")
        );
        let r = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
        let rows = if k + 1 < files.len() {
            250
        } else {
            total - 250 * k
        };
        let expected: Vec<i64> = (0..rows.div_ceil(100))
            .map(|g| (rows - g * 100).min(100) as i64)
            .collect();
        let got: Vec<i64> = r
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(got, expected, "row groups of {}", f.display());
    }
}

#[test]
fn output_schema_and_metadata_read_back() {
    use arrow_schema::DataType;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let env = Env::new();
    let docs = random_docs(20, 60, 50, 2);
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs, 0, &["x"]),
        64,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, carry: [source]}\nwindows: {seq_len: 8, vocab_size: 50, remainder: pad, columns: [start]}\nsink: {path: out}\n",
    );
    env.run_ok(&p, &[]);
    let f = &dataset_files(&env.path("out"))[0];
    let b = &read_file(f)[0];
    let s = b.schema();
    for name in ["input", "target"] {
        let field = s.field_with_name(name).unwrap();
        assert!(!field.is_nullable());
        match field.data_type() {
            DataType::FixedSizeList(item, 8) => {
                assert_eq!(item.data_type(), &DataType::Int32);
                assert!(!item.is_nullable());
            }
            other => panic!("{name} is {other}"),
        }
    }
    assert!(matches!(
        s.field_with_name("loss_mask").unwrap().data_type(),
        DataType::FixedSizeList(_, 8)
    ));
    assert_eq!(
        s.field_with_name("source").unwrap().data_type(),
        &DataType::Utf8
    );
    let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["input", "target", "start", "loss_mask", "source"]);
    let r = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
    let kv: BTreeMap<String, String> = r
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kv["seqwin.seq_len"], "8");
    assert_eq!(kv["seqwin.stride"], "8");
    assert_eq!(kv["seqwin.pack"], "false");
    assert_eq!(kv["seqwin.separator"], "null");
    assert_eq!(kv["seqwin.pad_id"], "0");
    assert_eq!(kv["seqwin.ignore_index"], "-100");
    assert_eq!(kv["seqwin.vocab_size"], "50");
    assert_eq!(kv["seqwin.version"], seqwin::VERSION);
    assert!(kv.contains_key("ARROW:schema"));
}
