//! Atomic output under kills, full disks, concurrent runs and refused sinks.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A fresh env with five short documents in `data/`.
fn small_corpus() -> Env {
    let env = Env::new();
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&random_docs(5, 30, 9, 1), 0, &["x"]),
        10,
    );
    env
}

fn inspect_ok(env: &Env) -> bool {
    env.seqwin(&["inspect", "out"]).status.success()
}

fn stride_of(env: &Env) -> i64 {
    manifest(&env.path("out"))["config"]["windows"]["stride"]
        .as_i64()
        .unwrap()
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_dataset() {
    let env = Env::new();
    big_corpus(&env, 4000);
    let p = env.pipeline("p.yaml", BIG_PIPELINE);
    let t0 = Instant::now();
    env.run_ok(&p, &[]);
    let full = t0.elapsed();
    assert!(inspect_ok(&env));
    assert_eq!(stride_of(&env), 8);
    // Kill moments spread over the whole run (start-up, reading, writing, commit).
    let trials = 24;
    let mut killed = 0;
    for k in 0..trials {
        let delay = full.mul_f64((k as f64 + 0.5) / trials as f64 * 0.95);
        let stride = 9 + k;
        let mut child = Command::new(env!("CARGO_BIN_EXE_seqwin"))
            .args([
                "run",
                p.to_str().unwrap(),
                "--quiet",
                "--set",
                &format!("windows.stride={stride}"),
            ])
            .current_dir(env.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        // The sink is either the previous complete dataset or the new complete one.
        assert!(env.path("out").exists(), "trial {k}: sink vanished");
        assert!(
            inspect_ok(&env),
            "trial {k}: partial dataset (status {status:?})"
        );
        let s = stride_of(&env);
        assert!(s <= stride, "trial {k}: stride {s}");
    }
    eprintln!("sigkill: {killed} of {trials} runs killed mid-way; a full run takes {full:?}");
    assert!(
        killed >= trials / 3,
        "only {killed} of {trials} runs were killed mid-way"
    );
    // The next run cleans the leftovers and succeeds.
    env.run_ok(&p, &["--set", "windows.stride=8"]);
    assert!(inspect_ok(&env));
    assert_eq!(stride_of(&env), 8);
    let leftovers: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|e| e.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn killed_first_run_leaves_no_dataset() {
    let env = Env::new();
    big_corpus(&env, 4000);
    let p = env.pipeline("p.yaml", BIG_PIPELINE);
    let mut child = Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(["run", p.to_str().unwrap(), "--quiet"])
        .current_dir(env.dir.path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    assert!(!env.path("out").exists() || inspect_ok(&env));
    env.run_ok(&p, &[]);
    assert!(inspect_ok(&env));
}

#[test]
fn file_size_limit_gives_exit_1_and_no_dataset() {
    let env = Env::new();
    big_corpus(&env, 4000);
    env.pipeline("p.yaml", BIG_PIPELINE);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -f 200; exec {} run p.yaml --quiet",
            env!("CARGO_BIN_EXE_seqwin")
        ))
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("part-") && stderr.contains("too large"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"));
    assert!(!env.path("out").exists());
    assert!(
        env.root_entries().iter().all(|e| !e.contains("staging")),
        "{:?}",
        env.root_entries()
    );
}

#[test]
fn two_runs_on_one_sink_one_wins() {
    let env = Env::new();
    big_corpus(&env, 4000);
    let p = env.pipeline("p.yaml", BIG_PIPELINE);
    let first = Command::new(env!("CARGO_BIN_EXE_seqwin"))
        .args(["run", p.to_str().unwrap(), "--quiet"])
        .current_dir(env.dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let second = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    let first = first.wait_with_output().unwrap();
    let codes = (first.status.code(), second.status.code());
    let loser = if codes.0 == Some(0) { &second } else { &first };
    assert!(codes.0 == Some(0) || codes.1 == Some(0), "{codes:?}");
    assert_eq!(loser.status.code(), Some(2), "{codes:?}");
    assert!(String::from_utf8_lossy(&loser.stderr).contains("another seqwin run is writing"));
    assert!(inspect_ok(&env));
}

#[test]
fn mode_error_refuses_a_non_empty_sink() {
    let env = small_corpus();
    std::fs::create_dir_all(env.path("out")).unwrap();
    std::fs::write(env.path("out/keep.txt"), "precious").unwrap();
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n",
    );
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_to_string(env.path("out/keep.txt")).unwrap(),
        "precious"
    );
    // An empty directory is fine.
    std::fs::remove_file(env.path("out/keep.txt")).unwrap();
    env.run_ok(&p, &[]);
}

#[test]
fn overwrite_refuses_anything_but_a_seqwin_dataset() {
    let env = small_corpus();
    std::fs::create_dir_all(env.path("out/sub")).unwrap();
    std::fs::write(env.path("out/sub/keep.txt"), "precious").unwrap();
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out, mode: overwrite}\n",
    );
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a seqwin dataset"));
    assert_eq!(
        std::fs::read_to_string(env.path("out/sub/keep.txt")).unwrap(),
        "precious"
    );
    // A symlink to a seqwin dataset is not followed.
    std::fs::remove_dir_all(env.path("out")).unwrap();
    env.run_ok(&p, &["--set", "sink.path=real"]);
    std::os::unix::fs::symlink(env.path("real"), env.path("out")).unwrap();
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
    assert!(env.path("real/_seqwin.json").exists());
    // A seqwin dataset is replaced.
    std::fs::remove_file(env.path("out")).unwrap();
    env.run_ok(&p, &[]);
    env.run_ok(&p, &["--set", "windows.seq_len=3"]);
    assert_eq!(
        manifest(&env.path("out"))["config"]["windows"]["seq_len"],
        3
    );
}

#[test]
fn unwritable_destination_is_a_clear_error() {
    let env = small_corpus();
    std::fs::write(env.path("afile"), "x").unwrap();
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: afile/out}\n",
    );
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("afile is a file, not a directory"),
        "{stderr}"
    );
}

#[test]
fn unreadable_input_is_a_clear_error() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("data")).unwrap();
    std::os::unix::fs::symlink(env.path("nowhere.parquet"), env.path("data/a.parquet")).unwrap();
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n",
    );
    let out = env.seqwin(&["run", p.to_str().unwrap()]);
    assert_bad_input(&env, &out, &["a.parquet"]);
}

#[test]
fn overwrite_never_follows_symlinks_out_of_the_dataset() {
    let env = small_corpus();
    std::fs::create_dir_all(env.path("precious")).unwrap();
    std::fs::write(env.path("precious/keep.txt"), "precious").unwrap();
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out, mode: overwrite}\n",
    );
    env.run_ok(&p, &[]);
    // Someone drops a symlink to an outside directory into the dataset, and a
    // killed run leaves a staging directory holding another one.
    std::os::unix::fs::symlink(env.path("precious"), env.path("out/link")).unwrap();
    std::fs::create_dir_all(env.path(".out.seqwin-staging-999999")).unwrap();
    std::os::unix::fs::symlink(
        env.path("precious"),
        env.path(".out.seqwin-staging-999999/link"),
    )
    .unwrap();
    // The link is not seqwin's: overwrite refuses (issue #15, item 1) ...
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it holds what seqwin did not write: link)")
    );
    assert!(std::fs::symlink_metadata(env.path("out/link")).is_ok());
    // ... and once it is gone, the stale staging directory is removed without
    // following the link inside it.
    std::fs::remove_file(env.path("out/link")).unwrap();
    env.run_ok(&p, &[]);
    assert_eq!(
        std::fs::read_to_string(env.path("precious/keep.txt")).unwrap(),
        "precious"
    );
    assert!(!env.path(".out.seqwin-staging-999999").exists());
}
