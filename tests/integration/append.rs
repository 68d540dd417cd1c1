//! Issue #17 part 2: `sink.mode: append`. Appending the windows of new files
//! version by version gives what one run over all files gives; every
//! refusal leaves the dataset as it was; SIGKILL leaves the old or the new
//! version; a second append waits for nobody (the lock refuses it).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::harness::*;

/// Documents of file `k` (ids `100·k ..`), lengths up to 40 tokens.
pub(crate) fn docs(k: usize) -> Vec<Vec<i64>> {
    random_docs(30, 40, 50, 7 + k as u64)
}

pub(crate) fn write_input(env: &Env, dir: &str, k: usize) {
    write_parquet(
        &env.path(&format!("{dir}/f{k}.parquet")),
        &corpus_batch(&docs(k), 100 * k as i64, &["x", "y"]),
        8,
    );
}

pub(crate) const APPEND: &str = "source: {path: data, tokens: tokens, id: doc_id}
windows: {seq_len: 6, stride: 3, columns: [doc_id, start]}
split: {fractions: {train: 0.7, val: 0.3}, seed: 5}
sink: {path: out, partition_by: [split], mode: append, row_group_rows: 16}
";

/// Runs the append pipeline `yaml` once over all its input into `whole/`
/// (`mode: error`): what the appends must add up to.
pub(crate) fn one_run(env: &Env, yaml: &str) {
    let whole = env.pipeline(
        "whole.yaml",
        &yaml
            .replace("path: out", "path: whole")
            .replace("append", "error"),
    );
    env.run_ok(&whole, &[]);
}

/// Every window of a dataset, partition by partition (sorted by path), files
/// in the manifest's order, rows in file order.
pub(crate) fn windows_in_manifest_order(dir: &Path) -> BTreeMap<String, Vec<Window>> {
    let m = manifest(dir);
    let mut out = BTreeMap::new();
    for p in m["partitions"].as_array().unwrap() {
        let path = p["path"].as_str().unwrap().to_string();
        let mut rows = Vec::new();
        for f in p["files"].as_array().unwrap() {
            for b in read_file(&dir.join(f["name"].as_str().unwrap())) {
                rows.extend(batch_windows(&b, &path));
            }
        }
        out.insert(path, rows);
    }
    out
}

pub(crate) fn sorted(mut v: Vec<Window>) -> Vec<Window> {
    v.sort();
    v
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn append_a_then_b_equals_one_run_over_both() {
    let env = Env::new();
    write_input(&env, "data", 0);
    let p = env.pipeline("p.yaml", APPEND);
    env.run_ok(&p, &[]);
    write_input(&env, "data", 1);
    env.run_ok(&p, &[]);
    one_run(&env, APPEND);

    // Byte-equal where the order is defined: each partition's rows, files in order.
    let (appended, whole) = (
        windows_in_manifest_order(&env.path("out")),
        windows_in_manifest_order(&env.path("whole")),
    );
    assert_eq!(appended, whole);
    // The oracle: every document's plain windows (docs/format.md §1.1), split aside.
    let mut expected = Vec::new();
    for k in 0..2 {
        for (i, d) in docs(k).iter().enumerate() {
            for (s, input, target) in reference_windows(d, 6, 3, None) {
                expected.push((100 * k as i64 + i as i64, s as i64, input, target));
            }
        }
    }
    let got: Vec<_> = appended
        .values()
        .flatten()
        .map(|w| {
            (
                w.doc_id.unwrap(),
                w.start.unwrap(),
                w.input.clone(),
                w.target.clone(),
            )
        })
        .collect();
    expected.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, expected);

    // Version 1: both inputs, each with the version that read it; new part
    // files after the old ones; the same accounts as one run.
    let (m, w) = (manifest(&env.path("out")), manifest(&env.path("whole")));
    assert_eq!(m["version"], 1);
    let inputs: Vec<_> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                i["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [("f0.parquet".to_string(), 0), ("f1.parquet".to_string(), 1)]
    );
    assert!(m["inputs"][0]["modified"].as_str().unwrap().contains('.'));
    for (pm, pw) in m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(w["partitions"].as_array().unwrap())
    {
        assert_eq!(pm["account"], pw["account"]);
        let names: Vec<&str> = pm["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let dir = pm["path"].as_str().unwrap();
        assert_eq!(
            names,
            [
                format!("{dir}/part-00000.parquet"),
                format!("{dir}/part-00001.parquet")
            ]
        );
    }
    assert_eq!(m["totals"], w["totals"]);
    // The log holds each version's full manifest; the last one is `_seqwin.json`.
    let log0: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path("out/_seqwin_log/00000000000000000000.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            log0["version"].as_u64(),
            log0["inputs"].as_array().unwrap().len()
        ),
        (Some(0), 1)
    );
    assert_eq!(
        std::fs::read(env.path("out/_seqwin_log/00000000000000000001.json")).unwrap(),
        std::fs::read(env.path("out/_seqwin.json")).unwrap()
    );

    // `inspect --json` lists both versions and verifies the latest.
    let out = env.seqwin(&["inspect", "--json", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<_> = j["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["inputs"].as_u64().unwrap(),
                v["files"].as_u64().unwrap(),
                v["windows"].as_u64().unwrap(),
            )
        })
        .collect();
    let windows_a = log0["totals"]["windows"].as_u64().unwrap();
    let windows_ab = expected.len() as u64;
    assert_eq!(versions, [(0, 1, 2, windows_a), (1, 2, 4, windows_ab)]);
    assert_eq!(j["verified"]["files"], 4);
}

#[test]
fn nothing_new_succeeds_without_a_new_version() {
    let env = Env::new();
    write_input(&env, "data", 0);
    let p = env.pipeline("p.yaml", APPEND);
    // A missing sink is a first run; so is an empty directory.
    std::fs::create_dir(env.path("out")).unwrap();
    env.run_ok(&p, &[]);
    let before = tree(&env.path("out"));
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(0),
            format!(
                "seqwin: nothing to append: every input file is already in version 0 of {}; no new version was written.\n",
                env.path("out").display()
            )
        )
    );
    assert_eq!(tree(&env.path("out")), before);
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);
    // Files are recognised whatever the spelling of the pipeline's path
    // (here relative, so `source.path` resolves to `data`, not `/tmp/…/data`).
    let out = env.seqwin(&["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).starts_with("seqwin: nothing to append"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(&env.path("out")), before);
    let json = env.seqwin(&["run", p.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (j["outcome"].as_str(), j["version"].as_u64()),
        (Some("nothing_new"), Some(0))
    );
}

#[test]
fn refusals_name_the_key_or_file_and_change_nothing() {
    let env = Env::new();
    write_input(&env, "data", 0);
    let p = env.pipeline("p.yaml", APPEND);
    env.run_ok(&p, &[]);
    write_input(&env, "data", 1);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", p.to_str().unwrap(), "--quiet"];
        args.extend_from_slice(extra);
        env.seqwin(&args)
    };
    let sink = env.path("out").display().to_string();
    let key = |key: &str, expected: &str, found: &str| {
        format!("seqwin: error: {sink}: sink.mode: append cannot change `{key}`: expected {expected} (as in version 0 of the dataset), found {found}; append with the dataset's settings, or write a new dataset with sink.mode: overwrite\n")
    };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--set", "windows.seq_len=8"], key("windows.seq_len", "6", "8")),
        (vec!["--set", "windows.stride=6"], key("windows.stride", "3", "6")),
        (vec!["--set", "windows.pack=true"], key("windows.pack", "false", "true")),
        (vec!["--set", "windows.dtype=int64"], key("windows.dtype", "\"int32\"", "\"int64\"")),
        (vec!["--set", "windows.columns=[start]"], key("windows.columns", "[\"doc_id\",\"start\"]", "[\"start\"]")),
        (vec!["--set", "split.seed=6"], key("split.seed", "5", "6")),
        (vec!["--set", "split.fractions={train: 0.5, val: 0.5}"], key("split.fractions", "{\"train\":0.7,\"val\":0.3}", "{\"train\":0.5,\"val\":0.5}")),
        (vec!["--set", "shuffle.seed=1"], key("shuffle.seed", "not set", "1")),
        (vec!["--set", "source.carry=[source]"], key("source.carry", "[]", "[\"source\"]")),
        (
            vec!["--set", "tbptt.batch_size=2", "--set", "windows.stride=6"],
            format!(
                "seqwin: error: {}: invalid pipeline:\n  - `sink.mode: append` cannot be combined with `tbptt`: its lanes divide each partition's whole stream, which an append would change; write a new dataset with `sink.mode: overwrite`\n",
                p.display()
            ),
        ),
    ];
    let before = tree(&env.path("out"));
    for (extra, expected) in cases {
        let out = run(&extra);
        assert_eq!(
            (out.status.code(), stderr(&out)),
            (Some(2), expected),
            "{extra:?}"
        );
        assert_eq!(tree(&env.path("out")), before, "{extra:?}");
        assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);
    }

    // An ingested file that changed: exit 2 naming it, whatever else is new.
    let f0 = env.path("data/f0.parquet");
    let recorded = manifest(&env.path("out"))["inputs"][0].clone();
    write_parquet(&f0, &corpus_batch(&docs(5), 0, &["x"]), 8);
    let meta = std::fs::metadata(&f0).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let out = run(&[]);
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(2),
            format!(
                "seqwin: error: {}: this input file changed after version 0 ingested it (size {} bytes, now {}, modified {}, now {}.{:09}); append never reads a file twice: restore it, put new data in a new file, or rebuild with sink.mode: overwrite\n",
                f0.display(),
                recorded["bytes"],
                meta.len(),
                recorded["modified"].as_str().unwrap(),
                mtime.as_secs(),
                mtime.subsec_nanos()
            )
        )
    );
    assert_eq!(tree(&env.path("out")), before);

    // Not a seqwin dataset: refused like overwrite refuses it.
    std::fs::write(env.path("out/notes.txt"), "mine").unwrap();
    let out = run(&[]);
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (Some(2), format!("seqwin: error: {sink}: sink.path is not a seqwin dataset (it holds what seqwin did not write: notes.txt); refusing to append to it\n"))
    );
}

#[test]
fn without_an_id_new_files_must_sort_after_the_ingested_ones() {
    let env = Env::new();
    write_input(&env, "data", 1);
    let no_id = APPEND.replace(", id: doc_id", "");
    let p = env.pipeline("p.yaml", &no_id);
    env.run_ok(&p, &[]);
    // f2 sorts after f1: ordinals continue, so splits and doc ids equal one run's.
    write_input(&env, "data", 2);
    env.run_ok(&p, &[]);
    one_run(&env, &no_id);
    assert_eq!(
        windows_in_manifest_order(&env.path("out")),
        windows_in_manifest_order(&env.path("whole"))
    );
    // f0 sorts before them: refused, naming `source.id`.
    write_input(&env, "data", 0);
    let before = tree(&env.path("out"));
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(2),
            format!(
                "seqwin: error: {}: this new input file sorts before {}, which the dataset already holds: without `source.id` documents are numbered in source order (docs/format.md §1.4), so appending it would assign splits and doc ids differently from one run over all files; set `source.id`, or name new files so that they sort after the ingested ones\n",
                env.path("data/f0.parquet").display(),
                env.path("data/f2.parquet").display()
            )
        )
    );
    assert_eq!(tree(&env.path("out")), before);
}

/// The corpus of the kill and lock tests: version 0 holds `data/part-0..2`,
/// the append adds `part-3..5`.
fn big_append(env: &Env) -> std::path::PathBuf {
    big_corpus(env, 6000);
    let p = env.pipeline(
        "p.yaml",
        &BIG_PIPELINE.replace("mode: overwrite", "mode: append"),
    );
    std::fs::create_dir(env.path("later")).unwrap();
    for k in 3..6 {
        std::fs::rename(
            env.path(&format!("data/part-{k}.parquet")),
            env.path(&format!("later/part-{k}.parquet")),
        )
        .unwrap();
    }
    env.run_ok(&p, &[]);
    for k in 3..6 {
        std::fs::rename(
            env.path(&format!("later/part-{k}.parquet")),
            env.path(&format!("data/part-{k}.parquet")),
        )
        .unwrap();
    }
    p
}

fn spawn_append(env: &Env, p: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(["run", p.to_str().unwrap(), "--quiet"])
        .current_dir(env.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_second_local_append_is_refused_at_once() {
    let env = Env::new();
    let p = big_append(&env);
    let mut first = spawn_append(&env, &p);
    let lock = env.path(".out.seqwin.lock");
    while !lock.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    let second = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        (second.status.code(), stderr(&second)),
        (
            Some(2),
            format!(
                "seqwin: error: {}: another seqwin run is writing this sink.path right now; try again when it has finished\n",
                env.path("out").display()
            )
        )
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(manifest(&env.path("out"))["version"], 1);
    assert!(env.seqwin(&["inspect", "out"]).status.success());
}

#[test]
fn sigkill_at_any_moment_leaves_the_old_or_the_new_version() {
    let env = Env::new();
    let p = big_append(&env);
    let copy = |from: &str, to: &str| {
        let status = std::process::Command::new("cp")
            .args(["-a", from, to])
            .current_dir(env.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy("out", "version0");
    // How long an append takes here, to spread the kills over it.
    let started = std::time::Instant::now();
    env.run_ok(&p, &[]);
    let full = started.elapsed();
    let (mut x, mut seen) = (0x2545_F491_4F6C_DD1Du64, [0usize; 2]);
    for trial in 0..20 {
        std::fs::remove_dir_all(env.path("out")).unwrap();
        copy("version0", "out");
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = full.mul_f64((x % 1000) as f64 / 1000.0 * 1.1);
        let mut child = spawn_append(&env, &p);
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let out = env.seqwin(&["inspect", "--json", "out"]);
        assert!(
            out.status.success(),
            "trial {trial} at {at:?}: {}",
            stderr(&out)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let version = j["versions"].as_array().unwrap().last().unwrap()["version"]
            .as_u64()
            .unwrap();
        assert!(version <= 1, "trial {trial}: version {version}");
        assert_eq!(j["verified"]["files"], j["verified"]["parquet_files_found"]);
        assert_eq!(manifest(&env.path("out"))["version"], version);
        seen[version as usize] += 1;
    }
    // The next append finishes the job and removes what killed runs left.
    env.run_ok(&p, &[]);
    assert_eq!(manifest(&env.path("out"))["version"], 1);
    assert_eq!(
        env.root_entries(),
        ["data", "later", "out", "p.yaml", "version0"]
    );
    eprintln!(
        "kills at the old version: {}, at the new: {}",
        seen[0], seen[1]
    );
}

#[test]
fn overwrite_starts_a_new_history_numbered_after_the_old_one() {
    let env = Env::new();
    write_input(&env, "data", 0);
    let p = env.pipeline("p.yaml", APPEND);
    env.run_ok(&p, &[]);
    write_input(&env, "data", 1);
    env.run_ok(&p, &[]);
    env.run_ok(
        &p,
        &["--set", "sink.mode=overwrite", "--set", "windows.seq_len=8"],
    );
    let m = manifest(&env.path("out"));
    assert_eq!(
        (m["version"].as_u64(), m["inputs"][1]["version"].as_u64()),
        (Some(2), Some(2))
    );
    let log: Vec<String> = std::fs::read_dir(env.path("out/_seqwin_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(log, ["00000000000000000002.json"]);
    let out = env.seqwin(&["inspect", "--json", "out"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<u64> = (j["versions"].as_array().unwrap().iter())
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2]);
    // Appending continues from there.
    write_input(&env, "data", 2);
    env.run_ok(&p, &["--set", "windows.seq_len=8"]);
    assert_eq!(manifest(&env.path("out"))["version"], 3);
    assert!(env.seqwin(&["inspect", "out"]).status.success());
}

#[test]
fn check_says_what_an_append_would_add() {
    let env = Env::new();
    write_input(&env, "data", 0);
    let p = env.pipeline("p.yaml", APPEND);
    env.run_ok(&p, &[]);
    write_input(&env, "data", 1);
    let out = env.seqwin(&["check", p.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("\n  input: 1 file(s), 30 rows, ~"), "{text}");
    assert!(text.ends_with("\n  append: version 0 holds 1 input file(s); 1 new input file(s) would make version 1 (the input and estimate above are theirs)\n"), "{text}");
    let out = env.seqwin(&["check", p.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["append"],
        serde_json::json!({"version": 0, "ingested": 1, "new_files": 1})
    );
    let out = env.seqwin(&["check", p.to_str().unwrap(), "--set", "windows.stride=2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sink.mode: append cannot change `windows.stride`: expected 3 (as in version 0 of the dataset), found 2"));
}
