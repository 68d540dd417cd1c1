//! docs/format.md §1.3: packed output equals "concatenate, then the plain loop",
//! including position_ids and segment_ids, per split partition.

use seqwin::plan::SplitSpec;
use seqwin::split::DocKey;

use crate::harness::*;

/// Reference: the partition's documents concatenated (separator after each),
/// then the plain loop; segment/position ids from the token provenance.
fn reference(
    docs: &[(i64, Vec<i64>)],
    l: usize,
    s: usize,
    sep: Option<i64>,
    pad: bool,
) -> (Vec<Window>, u64) {
    let mut stream: Vec<(i64, i64, i64)> = Vec::new(); // token, doc id, position
    for (id, d) in docs {
        for (p, &t) in d.iter().enumerate() {
            stream.push((t, *id, p as i64));
        }
        if let Some(sep) = sep {
            stream.push((sep, *id, d.len() as i64));
        }
    }
    let n = stream.len();
    let mut out = Vec::new();
    let mut spanning = 0;
    let make = |start: usize, len: usize| {
        let mut seg = Vec::new();
        let mut k = 0;
        for j in 0..len {
            if j > 0 && stream[start + j].1 != stream[start + j - 1].1 {
                k += 1;
            }
            seg.push(k);
        }
        let mut input: Vec<i64> = stream[start..start + len].iter().map(|x| x.0).collect();
        let mut target: Vec<i64> = stream[start + 1..start + len + 1]
            .iter()
            .map(|x| x.0)
            .collect();
        let mut pos: Vec<i64> = stream[start..start + len].iter().map(|x| x.2).collect();
        let mut mask = vec![1; len];
        input.resize(l, 0);
        target.resize(l, -100);
        pos.resize(l, 0);
        seg.resize(l, -1);
        mask.resize(l, 0);
        Window {
            partition: String::new(),
            input,
            target,
            doc_id: Some(stream[start].1),
            start: Some(start as i64),
            loss_mask: pad.then_some(mask),
            position_ids: Some(pos),
            segment_ids: Some(seg),
            lane: None,
            step: None,
        }
    };
    let mut start = 0;
    let mut last_target = None;
    while start + l < n {
        let w = make(start, l);
        spanning += w.segment_ids.as_ref().unwrap().iter().any(|&x| x > 0) as u64;
        out.push(w);
        last_target = Some(start + l);
        start += s;
    }
    if pad && n > 0 && last_target != Some(n - 1) && start + 1 < n {
        let w = make(start, n - 1 - start);
        spanning += w.segment_ids.as_ref().unwrap().iter().any(|&x| x > 0) as u64;
        out.push(w);
    }
    (out, spanning)
}

#[test]
fn packed_output_equals_concatenate_then_loop() {
    let env = Env::new();
    let mut docs = random_docs(120, 50, 900, 21);
    docs[3].clear(); // empty documents are part of the stream too
    docs[40].clear();
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs[..70], 0, &["x"]),
        9,
    );
    write_parquet(
        &env.path("data/b.parquet"),
        &corpus_batch(&docs[70..], 70, &["x"]),
        13,
    );
    let split = SplitSpec {
        names: vec!["train".into(), "val".into()],
        cumulative: vec![0.75, 1.0],
        seed: 9,
    };
    for (l, s, sep, pad) in [
        (8, 8, Some(999), false),
        (8, 3, Some(999), true),
        (16, 16, None, false),
        (5, 11, None, true),
        (1, 1, Some(998), false),
        (32, 32, Some(999), true),
    ] {
        let sep_yaml = sep.map_or(String::new(), |v| format!(", separator: {v}"));
        let rem = if pad { "pad" } else { "drop" };
        let p = env.pipeline(
            "p.yaml",
            &format!(
                "source: {{path: data, tokens: tokens, id: doc_id}}
windows: {{seq_len: {l}, stride: {s}, pack: true{sep_yaml}, remainder: {rem}, columns: [doc_id, start, position_ids, segment_ids]}}
split: {{fractions: {{train: 0.75, val: 0.25}}, seed: 9}}
sink: {{path: out, partition_by: [split], mode: overwrite, row_group_rows: 37}}
"
            ),
        );
        env.run_ok(&p, &[]);
        let got = read_windows(&env.path("out"));
        let m = manifest(&env.path("out"));
        let mut expected = Vec::new();
        for (k, name) in split.names.iter().enumerate() {
            let part_docs: Vec<(i64, Vec<i64>)> = docs
                .iter()
                .enumerate()
                .filter(|(i, _)| split.assign(DocKey::Int(*i as i64)) == k)
                .map(|(i, d)| (i as i64, d.clone()))
                .collect();
            let (mut ws, spanning) = reference(&part_docs, l, s, sep, pad);
            let partition = format!("split={name}");
            for w in &mut ws {
                w.partition = partition.clone();
            }
            expected.extend(ws);
            let entry = m["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["path"] == partition)
                .unwrap();
            assert_eq!(
                entry["account"]["spanning_windows"].as_u64().unwrap(),
                spanning,
                "{l}/{s}/{sep:?}/{pad}"
            );
            let tokens_in: usize = part_docs
                .iter()
                .map(|(_, d)| d.len() + sep.is_some() as usize)
                .sum();
            assert_eq!(
                entry["account"]["tokens_in"].as_u64().unwrap(),
                tokens_in as u64
            );
        }
        assert_eq!(
            got, expected,
            "seq_len {l} stride {s} separator {sep:?} pad {pad}"
        );
    }
}
