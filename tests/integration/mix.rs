//! Mixing several corpora (`sources:`): `check` plans the mix from the
//! footers (tokens per source, passes, selected tokens, achieved weights);
//! impossible mixes and, for now, writing a mix exit 2 naming the cause.

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
    let mix = text.split_once("  mix").expect("a mix table").1;
    assert_eq!(
        mix,
        " (the figures above are the first source's):\n    source                   tokens    passes  tokens selected   weight\n    web                        1000     0.500              500   0.5000\n    code                        300     1.000              300   0.3000\n    books                       500     0.400              200   0.2000\n"
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
    assert_eq!(env.root_entries(), ["books", "code", "p.yaml", "web"]);
}

#[test]
fn check_plans_repeats_and_token_budgets() {
    let env = Env::new();
    three_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        "sources:\n  - {name: web, path: web, tokens: tokens, repeat: 0.5}\n  - {name: code, path: code, tokens: tokens, repeat: 2.5}\n  - {name: books, path: books, tokens: tokens, max_tokens: 1250}\nwindows: {seq_len: 16}\nsink: {path: out}\n",
    );
    let text = stdout(&env.seqwin(&["check", p.to_str().unwrap()]));
    // 500 + 750 + 1250 = 2500 tokens selected.
    assert!(
        text.ends_with("    web                        1000     0.500              500   0.2000\n    code                        300     2.500              750   0.3000\n    books                       500     2.500             1250   0.5000\n"),
        "{text}"
    );
}

#[test]
fn a_source_too_small_for_its_weight_exits_2_naming_it() {
    let env = Env::new();
    three_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        &format!(
            "{SOURCES}mix: {{total_tokens: 1500}}\nwindows: {{seq_len: 16}}\nsink: {{path: out}}\n"
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
        &arrow::array::RecordBatch::try_from_iter(vec![
            ("tokens", docs_column(&docs)),
            (
                "source",
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])) as _,
            ),
        ])
        .unwrap(),
        4,
    );
    let p = env.pipeline(
        "p.yaml",
        "sources:\n  - {name: web, path: web, tokens: tokens, carry: [source], repeat: 1}\n  - {name: other, path: other, tokens: tokens, carry: [source], repeat: 1}\nwindows: {seq_len: 16}\nsink: {path: out}\n",
    );
    assert_bad_input(
        &env,
        &env.seqwin(&["check", p.to_str().unwrap()]),
        &["source `other` gives other columns than source `web`: expected [source: Utf8], found [source: Int64]"],
    );
}

#[test]
fn writing_a_mix_is_refused_before_anything_is_read() {
    let env = Env::new();
    three_corpora(&env);
    let p = env.pipeline(
        "p.yaml",
        &format!("{SOURCES}windows: {{seq_len: 16}}\nshuffle: {{seed: 1}}\nsink: {{path: out}}\n"),
    );
    assert_bad_input(
        &env,
        &env.seqwin(&["run", p.to_str().unwrap()]),
        &["`sources`: this seqwin cannot write a mix of several sources yet; `seqwin check` shows the planned mix"],
    );
}
