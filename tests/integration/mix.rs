//! Mixing several corpora (`sources:`): `check` plans the mix from the
//! footers (tokens per source, passes, selected tokens, achieved weights);
//! impossible mixes exit 2 naming the cause; written mixes hold the windows
//! the oracle expects, shuffled or interleaved in proportion.

use arrow_array::cast::AsArray;

use crate::harness::*;

/// Three corpora of 100-token documents (no empty one: the footer's leaf
/// count is then exactly the token count): web 10, code 3, books 5.
fn three_corpora(env: &Env) {
    for (name, count) in [("web", 10), ("code", 3), ("books", 5)] {
        let docs: Vec<Vec<i64>> = (0..count)
            .map(|d| (0..100).map(|t| (d * 7 + t) % 50).collect())
            .collect();
        write_parquet(
            &env.path(&format!("{name}/a.parquet")),
            &corpus_batch(&docs, 0, &[name]),
            4,
        );
    }
}

const SOURCES: &str = "sources:\n  - {name: web, path: web, tokens: tokens, weight: 0.5}\n  - {name: code, path: code, tokens: tokens, weight: 0.3}\n  - {name: books, path: books, tokens: tokens, weight: 0.2}\n";

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_plans_a_weighted_mix_without_upsampling() {
    let env = Env::new();
    three_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        &format!("{SOURCES}windows: {{seq_len: 16}}\nshuffle: {{seed: 1}}\nsink: {{path: out}}\n"),
    );
    let text = stdout(&env.seqwin(&["check", p.to_str().unwrap()]));
    // The largest total taking no source twice: min(1000/0.5, 300/0.3,
    // 500/0.2) = 1000 tokens, so half of web, all of code, 0.4 of books.
    assert!(
        text.contains("\n  input: 3 file(s), 18 rows, ~1800 tokens\n"),
        "{text}"
    );
    let mix = text.split_once("  mix").expect("a mix table").1;
    assert_eq!(
        mix,
        " (input: every source once; estimate: what the passes select):\n    source                   tokens    passes  tokens selected   weight\n    web                        1000     0.500              500   0.5000\n    code                        300     1.000              300   0.3000\n    books                       500     0.400              200   0.2000\n  interleave: uniformly random (shuffle)\n"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&env.seqwin(&["check", p.to_str().unwrap(), "--json"]).stdout)
            .unwrap();
    assert_eq!(
        json["mix"],
        serde_json::json!([
            {"name": "web", "files": 1, "rows": 10, "tokens": 1000, "passes": 0.5, "tokens_selected": 500, "weight": 0.5},
            {"name": "code", "files": 1, "rows": 3, "tokens": 300, "passes": 1.0, "tokens_selected": 300, "weight": 0.3},
            {"name": "books", "files": 1, "rows": 5, "tokens": 500, "passes": 0.4, "tokens_selected": 200, "weight": 0.2},
        ])
    );
    assert_eq!(json["interleave"], "shuffle");
    assert_eq!(env.root_entries(), ["books", "code", "p.yaml", "web"]);
}

#[test]
fn check_plans_repeats_and_token_budgets() {
    let env = Env::new();
    three_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        "sources:\n  - {name: web, path: web, tokens: tokens, repeat: 0.5}\n  - {name: code, path: code, tokens: tokens, repeat: 2.5}\n  - {name: books, path: books, tokens: tokens, max_tokens: 1250}\nwindows: {seq_len: 16}\nshuffle: {}\nsink: {path: out}\n",
    );
    let text = stdout(&env.seqwin(&["check", p.to_str().unwrap()]));
    // 500 + 750 + 1250 = 2500 tokens selected.
    assert!(
        text.ends_with("    web                        1000     0.500              500   0.2000\n    code                        300     2.500              750   0.3000\n    books                       500     2.500             1250   0.5000\n  interleave: uniformly random (shuffle)\n"),
        "{text}"
    );
    // Without `shuffle` the sources interleave in proportion.
    let p = env.pipeline(
        "p.yaml",
        "sources:\n  - {name: web, path: web, tokens: tokens, repeat: 0.5}\n  - {name: code, path: code, tokens: tokens, repeat: 2.5}\nwindows: {seq_len: 16}\nsink: {path: out}\n",
    );
    let text = stdout(&env.seqwin(&["check", p.to_str().unwrap()]));
    assert!(
        text.ends_with("    code                        300     2.500              750   0.6000\n  interleave: proportional: at every prefix of a partition each source is within one window of its share\n"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&env.seqwin(&["check", p.to_str().unwrap(), "--json"]).stdout)
            .unwrap();
    assert_eq!(json["interleave"], "proportional");
}

#[test]
fn a_source_too_small_for_its_weight_exits_2_naming_it() {
    let env = Env::new();
    three_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        &format!(
            "{SOURCES}mix: {{total_tokens: 1500}}\nwindows: {{seq_len: 16}}\nshuffle: {{}}\nsink: {{path: out}}\n"
        ),
    );
    let out = env.seqwin(&["check", p.to_str().unwrap()]);
    assert_bad_input(
        &env,
        &out,
        &["source `code` has 300 tokens, too few for weight 0.3 of 1500 tokens without `mix.upsample: true` (1.500 passes)"],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("`web`"));
}

#[test]
fn sources_with_other_columns_exit_2_naming_the_source() {
    let env = Env::new();
    three_corpora(&env);
    let docs = vec![vec![1i64, 2, 3]];
    write_parquet(
        &env.path("other/a.parquet"),
        &arrow_array::RecordBatch::try_from_iter(vec![
            ("tokens", docs_column(&docs)),
            (
                "source",
                std::sync::Arc::new(arrow_array::Int64Array::from(vec![1])) as _,
            ),
        ])
        .unwrap(),
        4,
    );
    let p = env.pipeline(
        "p.yaml",
        "sources:\n  - {name: web, path: web, tokens: tokens, carry: [source], repeat: 1}\n  - {name: other, path: other, tokens: tokens, carry: [source], repeat: 1}\nwindows: {seq_len: 16}\nshuffle: {}\nsink: {path: out}\n",
    );
    assert_bad_input(
        &env,
        &env.seqwin(&["check", p.to_str().unwrap()]),
        &["source `other` gives other columns than source `web`: expected [source: Utf8], found [source: Int64]"],
    );
}

/// The documents of each corpus: 1 to 40 tokens (none empty, so the
/// footers' leaf counts are the token counts), ids from 0.
fn corpus(seed: u64, count: usize) -> Vec<Vec<i64>> {
    random_docs(count, 40, 1000, seed)
        .into_iter()
        .map(|mut d| {
            d.push(7);
            d
        })
        .collect()
}

const NAMES: [&str; 3] = ["web", "code", "books"];

/// Writes web (60 documents), code (25) and books (40), row groups of 7,
/// with a file column `source` that the mix's own column must win over.
fn mixed_corpora(env: &Env) -> Vec<Vec<Vec<i64>>> {
    let all: Vec<Vec<Vec<i64>>> = [(1, 60), (2, 25), (3, 40)]
        .iter()
        .map(|&(seed, n)| corpus(seed, n))
        .collect();
    for (name, docs) in NAMES.iter().zip(&all) {
        write_parquet(
            &env.path(&format!("{name}/a.parquet")),
            &corpus_batch(docs, 0, &["file"]),
            7,
        );
    }
    all
}

/// SipHash-2-4 of `bytes` keyed `(seed, key)`, mapped to `[0, 1)` with 53
/// bits (docs/format.md §1.4 and §1.6), written out here as the oracle.
fn point(seed: u64, key: u64, bytes: &[u8]) -> f64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(seed, key);
    h.write(bytes);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The expected windows (sorted) of a mix with `passes` over each corpus:
/// seq_len 8, documents keyed by ordinal, split train 0.7 / val 0.3 (seed
/// 4), mix seed 9, partitioned by source and split.
fn oracle(all: &[Vec<Vec<i64>>], passes: &[f64]) -> Vec<(String, Vec<i64>, Vec<i64>, i64)> {
    let mut out = Vec::new();
    for ((name, docs), &r) in NAMES.iter().zip(all).zip(passes) {
        for i in kept_documents(name, docs.len(), r) {
            let doc = &docs[i];
            let key = (i as i64).to_le_bytes();
            let split = if point(4, u64::from_be_bytes(*b"seqwinSP"), &key) < 0.7 {
                "train"
            } else {
                "val"
            };
            for (_, input, target) in reference_windows(doc, 8, 8, None) {
                out.push((
                    format!("source={name}/split={split}"),
                    input,
                    target,
                    i as i64,
                ));
            }
        }
    }
    out.sort();
    out
}

fn mix_pipeline(env: &Env, amounts: [&str; 3], mix: &str) -> std::path::PathBuf {
    let sources: String = (NAMES.iter().zip(amounts))
        .map(|(n, a)| format!("  - {{name: {n}, path: {n}, tokens: tokens, {a}}}\n"))
        .collect();
    env.pipeline(
        "p.yaml",
        &format!("sources:\n{sources}mix: {{seed: 9, source_column: true{mix}}}\nwindows: {{seq_len: 8, columns: [doc_id]}}\nsplit: {{fractions: {{train: 0.7, val: 0.3}}, seed: 4}}\nshuffle: {{seed: 5}}\nsink: {{path: out, partition_by: [source, split]}}\n"),
    )
}

fn written(env: &Env) -> Vec<(String, Vec<i64>, Vec<i64>, i64)> {
    let mut got: Vec<_> = read_windows(&env.path("out"))
        .into_iter()
        .map(|w| (w.partition, w.input, w.target, w.doc_id.unwrap()))
        .collect();
    got.sort();
    got
}

#[test]
fn repeats_take_whole_passes_and_a_keyed_fraction() {
    let env = Env::new();
    let all = mixed_corpora(&env);
    let p = mix_pipeline(&env, ["repeat: 0.5", "repeat: 2.5", "repeat: 1"], "");
    env.run_ok(&p, &[]);
    let expected = oracle(&all, &[0.5, 2.5, 1.0]);
    assert_eq!(written(&env), expected);
    // Every (source, split) partition is there.
    let parts: std::collections::BTreeSet<&str> = expected.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(parts.len(), 6, "{parts:?}");
    // The manifest's per-source account, recounted from the oracle's windows
    // and the documents it keeps.
    let m = manifest(&env.path("out"));
    let accounts: Vec<serde_json::Value> = (NAMES.iter().zip(&all).zip([0.5, 2.5, 1.0]))
        .map(|((name, docs), r)| {
            let kept = kept_documents(name, docs.len(), r);
            let windows = expected
                .iter()
                .filter(|w| w.0.starts_with(&format!("source={name}/")))
                .count();
            serde_json::json!({
                "name": name,
                "tokens_in": docs.iter().map(Vec::len).sum::<usize>(),
                "passes": r,
                "documents_selected": kept.len(),
                "tokens_selected": kept.iter().map(|&i| docs[i].len()).sum::<usize>(),
                "windows": windows,
            })
        })
        .collect();
    assert_eq!(m["sources"], serde_json::Value::Array(accounts));
    assert_eq!(m["totals"]["windows"], expected.len());
    let selected: u64 = (m["sources"].as_array().unwrap().iter())
        .map(|a| a["tokens_selected"].as_u64().unwrap())
        .sum();
    assert_eq!(m["totals"]["tokens_in"], selected);
}

/// The ordinals of the documents a mix keeps from source `name` of `count`
/// documents taken `r` times (once per pass).
fn kept_documents(name: &str, count: usize, r: f64) -> Vec<usize> {
    let mut kept = Vec::new();
    for pass in 0..r.ceil() as u32 {
        for i in 0..count {
            let mut bytes = (name.len() as u64).to_le_bytes().to_vec();
            bytes.extend(name.as_bytes());
            bytes.extend((i as i64).to_le_bytes());
            if f64::from(pass) < r.floor()
                || point(9, u64::from_be_bytes(*b"seqwinRP"), &bytes) < r - r.floor()
            {
                kept.push(i);
            }
        }
    }
    kept
}

#[test]
fn weights_resolve_passes_from_the_footers() {
    let env = Env::new();
    let all = mixed_corpora(&env);
    let p = mix_pipeline(&env, ["weight: 0.5", "weight: 0.2", "weight: 0.3"], "");
    env.run_ok(&p, &[]);
    let tokens: Vec<f64> = all
        .iter()
        .map(|d| d.iter().map(Vec::len).sum::<usize>() as f64)
        .collect();
    let weights = [0.5, 0.2, 0.3];
    let total = (0..3)
        .map(|i| tokens[i] / weights[i])
        .fold(f64::INFINITY, f64::min);
    let passes: Vec<f64> = (0..3).map(|i| weights[i] * total / tokens[i]).collect();
    assert!(passes.contains(&1.0) && passes.iter().all(|&r| r <= 1.0));
    assert_eq!(written(&env), oracle(&all, &passes));
}

#[test]
fn upsampled_weights_and_thread_counts_give_the_same_bytes() {
    let env = Env::new();
    let all = mixed_corpora(&env);
    let tokens: usize = all.iter().flatten().map(Vec::len).sum();
    let p = mix_pipeline(
        &env,
        ["weight: 0.2", "weight: 0.5", "weight: 0.3"],
        &format!(", total_tokens: {tokens}, upsample: true"),
    );
    env.run_ok(&p, &["--threads", "1"]);
    let one: Vec<Vec<u8>> = dataset_files(&env.path("out"))
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let got = written(&env);
    std::fs::remove_dir_all(env.path("out")).unwrap();
    env.run_ok(&p, &["--threads", "2"]);
    let two: Vec<Vec<u8>> = dataset_files(&env.path("out"))
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(one, two);
    let weights = [0.2, 0.5, 0.3];
    let passes: Vec<f64> = (0..3)
        .map(|i| weights[i] * tokens as f64 / all[i].iter().map(Vec::len).sum::<usize>() as f64)
        .collect();
    assert!(passes[1] > 1.0, "{passes:?}");
    assert_eq!(got, oracle(&all, &passes));
}

#[test]
fn a_document_lands_in_the_same_split_whatever_the_mix() {
    let env = Env::new();
    let all = mixed_corpora(&env);
    let alone = env.pipeline(
        "alone.yaml",
        "source: {path: web, tokens: tokens}\nwindows: {seq_len: 8, columns: [doc_id]}\nsplit: {fractions: {train: 0.7, val: 0.3}, seed: 4}\nsink: {path: out, partition_by: [split]}\n",
    );
    env.run_ok(&alone, &[]);
    let split_of = |w: &Window| w.partition.rsplit('=').next().unwrap().to_string();
    let mut web: Vec<(String, i64)> = read_windows(&env.path("out"))
        .iter()
        .map(|w| (split_of(w), w.doc_id.unwrap()))
        .collect();
    web.sort();
    web.dedup();
    std::fs::remove_dir_all(env.path("out")).unwrap();
    let p = mix_pipeline(&env, ["repeat: 1", "repeat: 2", "repeat: 0.5"], "");
    env.run_ok(&p, &[]);
    let mut mixed: Vec<(String, i64)> = read_windows(&env.path("out"))
        .iter()
        .filter(|w| w.partition.starts_with("source=web/"))
        .map(|w| (split_of(w), w.doc_id.unwrap()))
        .collect();
    mixed.sort();
    mixed.dedup();
    assert_eq!(mixed, web);
    assert_eq!(written(&env), oracle(&all, &[1.0, 2.0, 0.5]));
}

#[test]
fn a_mix_refuses_a_carried_source_column_and_tbptt() {
    let env = Env::new();
    mixed_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        "sources:\n  - {name: web, path: web, tokens: tokens, carry: [source], repeat: 1}\nmix: {source_column: true}\nwindows: {seq_len: 8}\ntbptt: {batch_size: 2}\nsink: {path: out}\n",
    );
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert_bad_input(&env, &out, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "seqwin: error: {}: invalid pipeline:\n  - `sources[0].carry` lists `source`, which `mix.source_column` writes; rename the carried column or drop `mix.source_column`\n  - `sources` cannot be combined with `tbptt`: its lanes cut one packed stream per partition, and a mix keeps one per source; mix with `shuffle:` or without an order (proportional interleave)\n",
            p.display()
        )
    );
}

/// The rows of each partition in file order: (partition, source, window).
fn rows_in_order(env: &Env) -> Vec<(String, String, Window)> {
    let out = env.path("out");
    let mut rows = Vec::new();
    for f in dataset_files(&out) {
        let partition = f.parent().unwrap().strip_prefix(&out).unwrap();
        let partition = partition.to_string_lossy().into_owned();
        for b in read_file(&f) {
            let sources = b
                .column_by_name("source")
                .unwrap()
                .as_string::<i32>()
                .clone();
            for (i, w) in batch_windows(&b, &partition).into_iter().enumerate() {
                rows.push((partition.clone(), sources.value(i).to_string(), w));
            }
        }
    }
    rows
}

/// The largest `|c_s(n) − n · W_s / W|` over the prefixes `n` of each
/// partition and its sources `s`, times `W` (the partition's windows).
fn prefix_deviation(rows: &[(String, String, Window)]) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < rows.len() {
        let part = &rows[at].0;
        let len = rows[at..].iter().take_while(|r| &r.0 == part).count();
        let rows = &rows[at..at + len];
        let total = len as u64;
        let target = |s: &str| rows.iter().filter(|r| r.1 == s).count() as u64;
        let targets: Vec<u64> = NAMES.iter().map(|s| target(s)).collect();
        let mut counts = [0u64; 3];
        let mut worst = 0;
        for (n, r) in rows.iter().enumerate() {
            counts[NAMES.iter().position(|s| *s == r.1).unwrap()] += 1;
            for (c, w) in counts.iter().zip(&targets) {
                worst = worst.max((c * total).abs_diff((n as u64 + 1) * w));
            }
        }
        out.push((part.clone(), worst, total));
        at += len;
    }
    out
}

/// Issue 17: without `shuffle` the sources interleave in proportion within
/// each partition (split only here, so each holds all three): the windows
/// the oracle expects, every prefix within one window of each source's
/// share, several files of several row groups, and the same bytes at 1 and
/// 2 threads.
#[test]
fn an_unshuffled_mix_interleaves_in_proportion_with_the_same_bytes_at_any_thread_count() {
    let env = Env::new();
    let all = mixed_corpora(&env);
    let sources: String = (NAMES
        .iter()
        .zip(["repeat: 0.5", "repeat: 2.5", "repeat: 1"]))
    .map(|(n, a)| format!("  - {{name: {n}, path: {n}, tokens: tokens, {a}}}\n"))
    .collect();
    let p = env.pipeline(
        "p.yaml",
        &format!("sources:\n{sources}mix: {{seed: 9, source_column: true}}\nwindows: {{seq_len: 8, columns: [doc_id]}}\nsplit: {{fractions: {{train: 0.7, val: 0.3}}, seed: 4}}\nsink: {{path: out, partition_by: [split], row_group_rows: 16, max_rows_per_file: 64}}\n"),
    );
    env.run_ok(&p, &["--threads", "1"]);
    let files = dataset_files(&env.path("out"));
    let one: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let rows = rows_in_order(&env);
    std::fs::remove_dir_all(env.path("out")).unwrap();
    env.run_ok(&p, &["--threads", "2"]);
    let two: Vec<Vec<u8>> = (dataset_files(&env.path("out")).iter())
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(one, two);
    assert!(files.len() > 4, "{files:?}");

    let mut got: Vec<_> = (rows.iter())
        .map(|(part, source, w)| {
            let partition = format!("source={source}/{part}");
            (
                partition,
                w.input.clone(),
                w.target.clone(),
                w.doc_id.unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, oracle(&all, &[0.5, 2.5, 1.0]));
    let deviations = prefix_deviation(&rows);
    let parts: Vec<&str> = deviations.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(parts, ["split=train", "split=val"]);
    for (part, worst, total) in &deviations {
        assert!(worst <= total, "{part}: {worst}/{total} windows off");
    }
    // Each source's windows keep their source order (ordinals rise within a pass).
    let web: Vec<i64> = (rows.iter())
        .filter(|r| r.0 == "split=train" && r.1 == "web")
        .map(|r| r.2.doc_id.unwrap())
        .collect();
    assert!(web.windows(2).all(|p| p[0] <= p[1]), "{web:?}");
}

/// Packing keeps one stream per source in each partition, shuffled or not:
/// every window is a slice of its own source's stream (its passes in order,
/// a separator after each document) at its `start`, and the windows are
/// exactly those of the three streams.
#[test]
fn packed_windows_never_mix_sources() {
    let env = Env::new();
    let all = mixed_corpora(&env);
    let repeats = [1usize, 2, 1];
    let mut expected: Vec<(String, usize, Vec<i64>, Vec<i64>)> = Vec::new();
    for ((name, docs), r) in NAMES.iter().zip(&all).zip(repeats) {
        let stream: Vec<i64> = (0..r)
            .flat_map(|_| docs.iter().flat_map(|d| d.iter().copied().chain([999])))
            .collect();
        for (start, input, target) in reference_windows(&stream, 8, 8, None) {
            expected.push((name.to_string(), start, input, target));
        }
    }
    expected.sort();
    let sources: String = (NAMES.iter().zip(repeats))
        .map(|(n, r)| format!("  - {{name: {n}, path: {n}, tokens: tokens, repeat: {r}}}\n"))
        .collect();
    for order in ["shuffle: {seed: 3}\n", ""] {
        let p = env.pipeline(
            "p.yaml",
            &format!("sources:\n{sources}mix: {{source_column: true}}\nwindows: {{seq_len: 8, pack: true, separator: 999, columns: [start]}}\n{order}sink: {{path: out}}\n"),
        );
        env.run_ok(&p, &[]);
        let mut got: Vec<_> = (rows_in_order(&env).into_iter())
            .map(|(_, source, w)| (source, w.start.unwrap() as usize, w.input, w.target))
            .collect();
        got.sort();
        assert_eq!(got, expected, "{order}");
        // The manifest counts each source's windows: those of its streams.
        let counted: Vec<(String, u64)> = (manifest(&env.path("out"))["sources"].as_array())
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_string(),
                    a["windows"].as_u64().unwrap(),
                )
            })
            .collect();
        let oracle: Vec<(String, u64)> = (NAMES.iter())
            .map(|n| {
                (
                    n.to_string(),
                    expected.iter().filter(|w| w.0 == *n).count() as u64,
                )
            })
            .collect();
        assert_eq!(counted, oracle, "{order}");
        std::fs::remove_dir_all(env.path("out")).unwrap();
    }
}
