//! The command line: the spec's example, check, inspect, overrides, summary.

use crate::harness::*;

fn hello(env: &Env) {
    let b = arrow_array::RecordBatch::try_from_iter(vec![(
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
    // From the footers alone: every one of the 100 documents is assumed
    // longer than a window, so (tokens - 100 · 16) / 16 windows of 2 · 16 ·
    // 4 bytes.
    let windows = (tokens - 100 * 16) / 16;
    assert_eq!(
        stdout,
        format!(
            "{}: ok\n  input: 1 file(s), 100 rows, ~{tokens} tokens\n  estimate: ~{windows} windows, ~{:.1} MB uncompressed\n  output schema:\n    input: FixedSizeList(16 x non-null Int32)\n    target: FixedSizeList(16 x non-null Int32)\n",
            p.display(),
            (windows * 128) as f64 / 1e6
        )
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

/// Runs the binary with `RUST_LOG` removed (the default log level).
fn seqwin_no_log(env: &Env, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run seqwin")
}

fn json_stdout(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const HELLO: &str = "source: {path: hello.parquet, tokens: tokens}\nwindows: {seq_len: 4, stride: 1}\nsink: {path: out}\n";

#[test]
fn run_json_is_the_summary_and_token_account() {
    let env = Env::new();
    hello(&env);
    let p = env.pipeline("p.yaml", HELLO);
    let out = seqwin_no_log(&env, &["run", p.to_str().unwrap(), "--json"]);
    let j = json_stdout(&out);
    // No text summary beside the JSON (stderr is not a terminal: no progress).
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let data = std::fs::read(env.path("out/part-00000.parquet")).unwrap();
    let (file_bytes, crc32) = (data.len(), format!("{:08x}", crc32fast::hash(&data)));
    // "helloworld", seq_len 4, stride 1: windows start at 0..=5, targets are
    // positions 1..=9, the first token is never a target.
    let account = serde_json::json!({
        "documents": 1, "tokens_in": 10, "tokens_targeted": 9, "tokens_never_targeted": 1,
        "separators": 0, "windows": 6, "padded_windows": 0, "padding_positions": 0,
        "spanning_windows": 0
    });
    assert_eq!(j["totals"], account);
    assert_eq!(
        j["partitions"],
        serde_json::json!([{
            "path": "", "values": {}, "account": account,
            "files": [{"name": "part-00000.parquet", "rows": 6, "bytes": file_bytes, "crc32": crc32}]
        }])
    );
    assert_eq!(j["files"], 1);
    assert_eq!(j["bytes"], file_bytes);
    assert_eq!(j["seqwin_version"], env!("CARGO_PKG_VERSION"));
    let m = manifest(&env.path("out"));
    assert_eq!(j["elapsed_seconds"], m["elapsed_seconds"]);
    let elapsed = j["elapsed_seconds"].as_f64().unwrap();
    let rate = j["tokens_per_second"].as_f64().unwrap();
    assert!(elapsed > 0.0 && (rate - 10.0 / elapsed).abs() <= 1e-6 * rate);
    assert_eq!(
        std::fs::canonicalize(j["sink"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(env.path("out")).unwrap()
    );
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "bytes",
            "elapsed_seconds",
            "files",
            "outcome",
            "partitions",
            "seqwin_version",
            "sink",
            "tokens_per_second",
            "totals",
            "version"
        ]
    );
    // --quiet keeps the JSON (it only silences the progress bar and summary).
    let out = seqwin_no_log(
        &env,
        &[
            "run",
            p.to_str().unwrap(),
            "--json",
            "--quiet",
            "--set",
            "sink.path=out2",
        ],
    );
    assert_eq!(json_stdout(&out)["totals"]["windows"], 6);
}

#[test]
fn run_json_lists_every_partition() {
    let env = Env::new();
    let docs = random_docs(60, 40, 50, 7);
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs, 0, &["web", "books"]),
        25,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, id: doc_id, carry: [source]}\nwindows: {seq_len: 8}\nsplit: {fractions: {train: 0.5, val: 0.5}, seed: 2}\nsink: {path: out, partition_by: [split, source]}\n",
    );
    let j = json_stdout(&seqwin_no_log(
        &env,
        &["run", p.to_str().unwrap(), "--json"],
    ));
    let m = manifest(&env.path("out"));
    assert_eq!(j["partitions"], m["partitions"]);
    assert_eq!(j["totals"], m["totals"]);
    // Independently: documents and tokens per source (both splits together).
    let parts = j["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    for (i, source) in ["web", "books"].iter().enumerate() {
        let mine: Vec<&Vec<i64>> = docs.iter().skip(i).step_by(2).collect();
        let (mut documents, mut tokens, mut windows) = (0, 0, 0);
        for part in parts.iter().filter(|p| p["values"]["source"] == *source) {
            documents += part["account"]["documents"].as_u64().unwrap();
            tokens += part["account"]["tokens_in"].as_u64().unwrap();
            windows += part["account"]["windows"].as_u64().unwrap();
        }
        assert_eq!(documents, mine.len() as u64);
        assert_eq!(tokens, mine.iter().map(|d| d.len() as u64).sum::<u64>());
        let expected: usize = mine
            .iter()
            .map(|d| reference_windows(d, 8, 8, None).len())
            .sum();
        assert_eq!(windows, expected as u64);
    }
    let files: u64 = dataset_files(&env.path("out"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(j["bytes"], files);
    assert_eq!(j["files"], dataset_files(&env.path("out")).len());
}

#[test]
fn check_json_is_the_plan_and_estimate() {
    let env = Env::new();
    // Three documents of 20, 33 and 50 tokens (no empty one: the footer's
    // leaf count is then exactly the token count).
    let docs: Vec<Vec<i64>> = [20, 33, 50]
        .iter()
        .map(|&n| (0..n).map(|t| t % 7).collect())
        .collect();
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs, 0, &["x"]),
        2,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 16}\nsink: {path: out}\n",
    );
    let out = seqwin_no_log(
        &env,
        &[
            "check",
            p.to_str().unwrap(),
            "--json",
            "--set",
            "windows.seq_len=8",
            "--set",
            "windows.stride=4",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let j = json_stdout(&out);
    let tokens = 20 + 33 + 50;
    // The footer estimate for per-document windows: (tokens - rows·seq_len) / stride.
    let windows = (tokens - 3 * 8) / 4;
    assert_eq!(j["pipeline"], p.to_str().unwrap());
    assert_eq!(j["files"], 1);
    assert_eq!(j["rows"], 3);
    assert_eq!(j["tokens"], tokens);
    assert_eq!(j["windows"], windows);
    // input + target: 2 × 8 int32 per window.
    assert_eq!(j["bytes"], windows * 2 * 8 * 4);
    assert_eq!(
        j["schema"],
        serde_json::json!([
            {"name": "input", "type": "FixedSizeList(8 x non-null Int32)", "nullable": false},
            {"name": "target", "type": "FixedSizeList(8 x non-null Int32)", "nullable": false}
        ])
    );
    assert_eq!(j["config"]["windows"]["seq_len"], 8);
    assert_eq!(j["config"]["windows"]["stride"], 4);
    assert_eq!(j["config"]["source"]["tokens"], "tokens");
    assert_eq!(env.root_entries(), ["data", "p.yaml"]);
    // Errors stay on stderr with their exit code; stdout is empty.
    let out = seqwin_no_log(&env, &["check", "missing.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn inspect_json_says_what_was_verified() {
    let env = Env::new();
    hello(&env);
    let p = env.pipeline("p.yaml", HELLO);
    env.run_ok(&p, &[]);
    let out = seqwin_no_log(&env, &["inspect", "out", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let j = json_stdout(&out);
    let bytes = std::fs::metadata(env.path("out/part-00000.parquet"))
        .unwrap()
        .len();
    assert_eq!(j["dataset"], "out");
    assert_eq!(j["seqwin_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        j["verified"],
        serde_json::json!({"manifest": true, "success_marker": true, "files": 1,
                           "bytes": bytes, "rows": 6, "parquet_files_found": 1})
    );
    assert_eq!(j["partition_by"], serde_json::json!([]));
    assert_eq!(j["partitions"][0]["path"], "");
    assert_eq!(j["partitions"][0]["files"], 1);
    assert_eq!(j["partitions"][0]["bytes"], bytes);
    assert_eq!(j["partitions"][0]["account"]["windows"], 6);
    assert_eq!(j["totals"]["tokens_in"], 10);
    assert_eq!(j["totals"]["tokens_targeted"], 9);
    assert_eq!(
        j["versions"],
        serde_json::json!([{"version": 0, "seqwin_version": env!("CARGO_PKG_VERSION"),
                            "inputs": 1, "files": 1, "windows": 6}])
    );
    assert_eq!(j["schema"][0]["name"], "input");
    assert_eq!(j["schema"][1]["type"], "FixedSizeList(4 x non-null Int32)");
    // The text report is unchanged by the refactoring into verify + render.
    let text =
        String::from_utf8_lossy(&seqwin_no_log(&env, &["inspect", "out"]).stdout).into_owned();
    assert!(text.starts_with(&format!("dataset out (seqwin {})\nschema:\n  input: FixedSizeList(4 x non-null Int32) not null\n", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains(&format!("total: 6 windows (0 padded), 1 documents, 10 tokens in, 9 targeted, 1 never a target\nversions:\n       0          6 windows    1 file(s)    1 input file(s)  seqwin {}  (current)\nfirst rows of part-00000.parquet:\n  input=[8, 5, 12, 12]  target=[5, 12, 12, 15]\n", env!("CARGO_PKG_VERSION"))), "{text}");
    // A failed verification: exit 2, message on stderr, nothing on stdout.
    std::fs::remove_file(env.path("out/_SUCCESS")).unwrap();
    let out = seqwin_no_log(&env, &["inspect", "out", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("_SUCCESS is missing"));
}

#[test]
fn verbose_logs_file_opens_and_the_default_prints_nothing_extra() {
    let env = Env::new();
    hello(&env);
    let p = env.pipeline("p.yaml", HELLO);
    let input = env.path("hello.parquet");
    let out = seqwin_no_log(&env, &["-v", "run", p.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("opening input file"))
        .unwrap_or_else(|| panic!("no debug line: {stderr}"));
    assert!(
        line.contains("DEBUG") && line.contains(&input.display().to_string()),
        "{line}"
    );
    assert!(
        stderr.contains("creating output file") && stderr.contains("part-00000.parquet"),
        "{stderr}"
    );
    // RUST_LOG works too (and -v is global: it may follow the subcommand).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(["check", p.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env("RUST_LOG", "seqwin=debug")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening input file"));
    let out = seqwin_no_log(&env, &["check", p.to_str().unwrap(), "-vv"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening input file"));

    // Default level: stderr is exactly what it was before logging existed.
    let out = seqwin_no_log(
        &env,
        &[
            "run",
            p.to_str().unwrap(),
            "--quiet",
            "--set",
            "sink.path=q",
        ],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let out = seqwin_no_log(&env, &["run", p.to_str().unwrap(), "--set", "sink.path=s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("seqwin: wrote 6 windows (0 padded) to ")
            && stderr.ends_with(" M tokens/s.\n")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    let out = seqwin_no_log(&env, &["check", p.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let out = seqwin_no_log(&env, &["run", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("seqwin: error: "));
}

#[test]
fn item_10_inspect_refuses_what_readers_would_see_differently() {
    // Each case: damage a fresh dataset, then `inspect` exits 2 with exactly
    // this message (and never reads outside the dataset).
    type Damage = fn(&std::path::Path);
    let cases: [(Damage, &str); 5] = [
        (
            |out| std::fs::copy(out.join("part-00000.parquet"), out.join("part-00099.PARQUET")).map(|_| ()).unwrap(),
            "part-00099.PARQUET is not listed in the manifest",
        ),
        (
            |out| std::fs::copy(out.join("part-00000.parquet"), out.join("part-00000.parquet.bak")).map(|_| ()).unwrap(),
            "part-00000.parquet.bak is not listed in the manifest",
        ),
        (
            |out| {
                let m = std::fs::read_to_string(out.join("_seqwin.json")).unwrap();
                let mut j: serde_json::Value = serde_json::from_str(&m).unwrap();
                j["totals"]["windows"] = serde_json::json!(7);
                std::fs::write(out.join("_seqwin.json"), j.to_string()).unwrap();
            },
            "the manifest's totals are not the sum of its partitions",
        ),
        (
            |out| {
                // One byte of the first page's data, same size.
                let path = out.join("part-00000.parquet");
                let mut b = std::fs::read(&path).unwrap();
                b[40] ^= 0x10;
                std::fs::write(&path, b).unwrap();
            },
            "part-00000.parquet: CRC-32",
        ),
        (
            |out| {
                let m = std::fs::read_to_string(out.join("_seqwin.json")).unwrap();
                let m = m.replace("\"part-00000.parquet\"", "\"../../../../etc/passwd\"");
                std::fs::write(out.join("_seqwin.json"), m).unwrap();
            },
            "the manifest lists `../../../../etc/passwd`, which is not a data file name of partition ``; refusing to look outside the dataset",
        ),
    ];
    for (damage, message) in cases {
        let env = Env::new();
        hello(&env);
        let p = env.pipeline("p.yaml", HELLO);
        env.run_ok(&p, &[]);
        let out = env.path("out");
        assert!(env
            .seqwin(&["inspect", out.to_str().unwrap()])
            .status
            .success());
        damage(&out);
        let r = env.seqwin(&["inspect", out.to_str().unwrap()]);
        assert_eq!(r.status.code(), Some(2), "{message}");
        let stderr = String::from_utf8_lossy(&r.stderr);
        let expected = format!("seqwin: error: {}: {message}", out.display());
        assert!(
            stderr.starts_with(&expected),
            "expected {expected:?}, found {stderr:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
