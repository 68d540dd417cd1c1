//! docs/format.md §1.5 (global shuffle, TBPTT order) and `seqwin stats`.

use std::collections::BTreeMap;

use crate::harness::*;

fn corpus(env: &Env) -> Vec<Vec<i64>> {
    let docs = random_docs(800, 400, 30000, 31);
    for (k, chunk) in docs.chunks(200).enumerate() {
        write_parquet(
            &env.path(&format!("data/p{k}.parquet")),
            &corpus_batch(chunk, (k * 200) as i64, &["x"]),
            50,
        );
    }
    docs
}

fn shuffle_yaml(seed: u64) -> String {
    format!(
        "source: {{path: data, tokens: tokens, id: doc_id}}
windows: {{seq_len: 32, stride: 16, columns: [doc_id, start]}}
split: {{fractions: {{train: 0.8, val: 0.2}}}}
shuffle: {{seed: {seed}, memory_mb: 1}}
sink: {{path: out{seed}, partition_by: [split], row_group_rows: 500, max_rows_per_file: 2000}}
"
    )
}

#[test]
fn shuffle_is_a_global_reproducible_permutation() {
    let env = Env::new();
    let docs = corpus(&env);
    let plain = env.pipeline(
        "plain.yaml",
        &shuffle_yaml(0)
            .replace("shuffle: {seed: 0, memory_mb: 1}\n", "")
            .replace("out0", "plain"),
    );
    env.run_ok(&plain, &[]);
    let a = env.pipeline("a.yaml", &shuffle_yaml(1));
    let b = env.pipeline("b.yaml", &shuffle_yaml(2));
    env.run_ok(&a, &[]);
    env.run_ok(&b, &[]);
    let unshuffled = read_windows(&env.path("plain"));
    let s1 = read_windows(&env.path("out1"));
    let s2 = read_windows(&env.path("out2"));
    // Same multiset of windows.
    let mut x = unshuffled.clone();
    let mut y = s1.clone();
    x.sort();
    y.sort();
    assert_eq!(x, y);
    // A different order, and a different one for another seed.
    assert_ne!(unshuffled, s1);
    assert_ne!(s1, s2);
    // The first file draws windows from the whole source, not a prefix.
    let first = &dataset_files(&env.path("out1"))[0];
    let rel = first
        .strip_prefix(env.path("out1"))
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let ids: Vec<i64> = s1
        .iter()
        .filter(|w| w.partition == rel)
        .take(2000)
        .map(|w| w.doc_id.unwrap())
        .collect();
    let n = docs.len() as i64;
    assert!(
        *ids.iter().min().unwrap() < n / 10 && *ids.iter().max().unwrap() > n * 9 / 10,
        "{rel}"
    );
    // Roughly uniform: each quarter of the source is about a quarter of the first 2000 rows.
    let mut quarters = [0usize; 4];
    for id in &ids {
        quarters[(*id * 4 / n) as usize] += 1;
    }
    for q in quarters {
        assert!((300..700).contains(&q), "{quarters:?}");
    }
    // No temporary files in the dataset; the manifest verifies.
    assert!(env.seqwin(&["inspect", "out1"]).status.success());
    let entries: Vec<String> = std::fs::read_dir(env.path("out1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries
            .iter()
            .all(|e| e.starts_with("split=") || e.starts_with('_')),
        "{entries:?}"
    );
    assert!(!entries.iter().any(|e| e == "_sort"));
    // Same seed, same bytes.
    env.run_ok(&a, &["--set", "sink.path=again", "--threads", "1"]);
    for (f, g) in dataset_files(&env.path("out1"))
        .iter()
        .zip(dataset_files(&env.path("again")))
    {
        assert_eq!(std::fs::read(f).unwrap(), std::fs::read(&g).unwrap());
    }
}

#[test]
fn tbptt_rows_are_lanes_of_the_packed_stream_step_major() {
    let env = Env::new();
    let docs = corpus(&env);
    let (l, b, sep) = (16usize, 5usize, 29999i64);
    let p = env.pipeline(
        "p.yaml",
        &format!(
            "source: {{path: data, tokens: tokens}}
windows: {{seq_len: {l}, separator: {sep}, columns: [start]}}
tbptt: {{batch_size: {b}}}
sink: {{path: out, row_group_rows: 64}}
"
        ),
    );
    env.run_ok(&p, &[]);
    let got = read_windows(&env.path("out"));
    let stream: Vec<i64> = docs
        .iter()
        .flat_map(|d| d.iter().copied().chain([sep]))
        .collect();
    let lane_len = stream.len() / b;
    let steps = (lane_len - 1) / l;
    let mut expected = Vec::new();
    for step in 0..steps {
        for lane in 0..b {
            let s = lane * lane_len + step * l;
            expected.push((
                lane as i64,
                step as i64,
                s as i64,
                stream[s..s + l].to_vec(),
                stream[s + 1..s + l + 1].to_vec(),
            ));
        }
    }
    let got: Vec<_> = got
        .into_iter()
        .map(|w| {
            (
                w.lane.unwrap(),
                w.step.unwrap(),
                w.start.unwrap(),
                w.input,
                w.target,
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // Reading batch_size rows at a time continues every lane.
    for r in b..got.len() {
        assert_eq!(got[r].3[0], got[r - b].4[l - 1]);
    }
}

#[test]
fn stats_window_counts_equal_what_run_writes() {
    let quickstart =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/quickstart.yaml");
    let env = Env::new();
    let out = env.seqwin(&[
        "stats",
        quickstart.to_str().unwrap(),
        "--seq-len",
        "8,16,64",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["documents"], 14);
    for row in report["candidates"].as_array().unwrap() {
        let l = row["seq_len"].as_u64().unwrap();
        let s = row["stride"].as_u64().unwrap();
        let sink = env.path(&format!("out{l}"));
        env.run_ok(
            &quickstart,
            &[
                "--set",
                &format!("windows.seq_len={l}"),
                "--set",
                &format!("windows.stride={s}"),
                "--set",
                &format!("sink.path={}", sink.display()),
            ],
        );
        let m = manifest(&sink);
        assert_eq!(m["totals"]["windows"], row["windows"], "seq_len {l}");
        assert_eq!(
            m["totals"]["padded_windows"], row["padded_windows"],
            "seq_len {l}"
        );
        let targeted = m["totals"]["tokens_targeted"].as_f64().unwrap()
            / m["totals"]["tokens_in"].as_f64().unwrap();
        assert!((targeted - row["targeted_share"].as_f64().unwrap()).abs() < 1e-12);
    }
    // The terminal rendering shows the histogram and the table.
    let out = env.seqwin(&["stats", quickstart.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("median") && text.contains("p99") && text.contains('#'),
        "{text}"
    );
    let lines: BTreeMap<usize, &str> = text.lines().enumerate().collect();
    assert!(
        lines.values().any(|l| l.trim_start().starts_with("8192")),
        "{text}"
    );
}
