//! Issue #15: a sink that never destroys what is not ours. One test per item,
//! each asserting the exit code, the exact message and what is on disk
//! before and after (item 4, signals, is in `signals.rs`).

use std::collections::BTreeMap;
use std::process::Output;

use crate::harness::*;

/// A fresh env with twenty short documents in `data/`.
fn small_corpus() -> Env {
    let env = Env::new();
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&random_docs(20, 30, 9, 1), 0, &["x", "y"]),
        10,
    );
    env
}

const SPLIT: &str = "source: {path: data, tokens: tokens, id: doc_id}
windows: {seq_len: 4}
split: {fractions: {train: 0.8, val: 0.2}}
sink: {path: out, partition_by: [split], mode: overwrite}
";

/// Runs `seqwin ARGS` and asserts exit code `code` and the exact stderr.
fn assert_fails(env: &Env, args: &[&str], code: i32, stderr: &str) -> Output {
    let out = env.seqwin(args);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(code), stderr)
    );
    out
}

fn sink_error(env: &Env, sink: &str, message: &str) -> String {
    format!("seqwin: error: {}: {message}\n", env.path(sink).display())
}

fn config_error(env: &Env, problems: &[&str]) -> String {
    format!(
        "seqwin: error: {}: invalid pipeline:{}\n",
        env.path("p.yaml").display(),
        problems
            .iter()
            .map(|p| format!("\n  - {p}"))
            .collect::<String>()
    )
}

#[test]
fn item_05_split_without_partition_by_split_is_refused() {
    let env = small_corpus();
    let p = env.pipeline("p.yaml", &SPLIT.replace("partition_by: [split], ", ""));
    let expected = config_error(
        &env,
        &["`split` is given but `sink.partition_by` does not name `split`: the split would be computed and thrown away; add `split` to `sink.partition_by`"],
    );
    for cmd in ["check", "run"] {
        assert_fails(&env, &[cmd, p.to_str().unwrap()], 2, &expected);
    }
    assert_eq!(env.root_entries(), ["data", "p.yaml"]);
    // With the split as a partition column the same pipeline runs.
    env.pipeline("p.yaml", SPLIT);
    env.run_ok(&p, &[]);
    assert_eq!(
        manifest(&env.path("out"))["partition_by"],
        serde_json::json!(["split"])
    );
}

#[test]
fn item_06_partition_column_starting_with_underscore_or_dot_is_refused() {
    let env = Env::new();
    let b = corpus_batch(&random_docs(20, 30, 9, 1), 0, &["x", "y"]);
    let renamed = arrow_array::RecordBatch::try_from_iter(vec![
        ("doc_id", b.column(0).clone()),
        ("_src", b.column(1).clone()),
        (".lang", b.column(1).clone()),
        ("tokens", b.column(2).clone()),
    ])
    .unwrap();
    write_parquet(&env.path("data/a.parquet"), &renamed, 10);
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, carry: [_src, .lang]}\nwindows: {seq_len: 4}\nsink: {path: out, partition_by: [_src, .lang]}\n",
    );
    let expected = config_error(
        &env,
        &[
            "`sink.partition_by` column `_src` starts with `_`: readers (pyarrow, Spark, seqwin) treat `_src=…` directories as hidden and would read no rows; rename the column",
            "`sink.partition_by` column `.lang` starts with `.`: readers (pyarrow, Spark, seqwin) treat `.lang=…` directories as hidden and would read no rows; rename the column",
        ],
    );
    for cmd in ["check", "run"] {
        assert_fails(&env, &[cmd, p.to_str().unwrap()], 2, &expected);
    }
    assert_eq!(env.root_entries(), ["data", "p.yaml"]);
    // Carried (not partitioned) such columns are fine.
    env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, carry: [_src]}\nwindows: {seq_len: 4}\nsink: {path: out}\n",
    );
    env.run_ok(&p, &[]);
}

#[test]
fn item_01_overwrite_needs_a_real_manifest() {
    let env = small_corpus();
    let p = env.pipeline("p.yaml", SPLIT);
    let run = ["run", p.to_str().unwrap(), "--quiet"];
    let refused = |why: &str| {
        sink_error(
            &env,
            "out",
            &format!("sink.path is not a seqwin dataset ({why}); refusing to overwrite it"),
        )
    };
    // Refused with exit 2 and this reason, the sink left exactly as it was.
    let refused_untouched = |why: &str| {
        let before = tree(&env.path("out"));
        assert_fails(&env, &run, 2, &refused(why));
        assert_eq!(tree(&env.path("out")), before);
    };

    // A project directory with an empty `_seqwin.json` and the user's notes.
    std::fs::create_dir_all(env.path("out/sub")).unwrap();
    std::fs::write(env.path("out/_seqwin.json"), "").unwrap();
    std::fs::write(env.path("out/notes.txt"), "precious").unwrap();
    std::fs::write(env.path("out/sub/keep.txt"), "precious").unwrap();
    refused_untouched(
        "_seqwin.json is not a seqwin manifest: EOF while parsing a value at line 1 column 0",
    );
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);
    std::fs::remove_dir_all(env.path("out")).unwrap();

    // A real dataset the user added files to.
    env.run_ok(&p, &[]);
    std::fs::create_dir_all(env.path("out/checkpoints")).unwrap();
    std::fs::write(env.path("out/checkpoints/step1.pt"), "weights").unwrap();
    std::fs::write(env.path("out/NOTES.md"), "notes").unwrap();
    std::fs::write(env.path("out/split=train/part-00000.parquet.bak"), "x").unwrap();
    refused_untouched("it holds what seqwin did not write: NOTES.md, checkpoints/, split=train/part-00000.parquet.bak");
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);
    for f in [
        "checkpoints",
        "NOTES.md",
        "split=train/part-00000.parquet.bak",
    ] {
        let f = env.path("out").join(f);
        if f.is_dir() {
            std::fs::remove_dir_all(f).unwrap();
        } else {
            std::fs::remove_file(f).unwrap();
        }
    }

    // More than five foreign paths: the first five are named.
    for k in 0..7 {
        std::fs::write(env.path(&format!("out/n{k}")), "x").unwrap();
    }
    assert_fails(
        &env,
        &run,
        2,
        &refused("it holds what seqwin did not write: n0, n1, n2, n3, n4 and 2 more"),
    );
    for k in 0..7 {
        std::fs::remove_file(env.path(&format!("out/n{k}"))).unwrap();
    }

    // No `_SUCCESS`, or a listed file missing: not a complete dataset.
    std::fs::remove_file(env.path("out/_SUCCESS")).unwrap();
    refused_untouched("no _SUCCESS");
    std::fs::write(env.path("out/_SUCCESS"), "").unwrap();
    std::fs::remove_file(env.path("out/split=val/part-00000.parquet")).unwrap();
    refused_untouched("files listed in _seqwin.json are missing: split=val/part-00000.parquet");

    // A manifest naming a path outside the dataset.
    std::fs::remove_dir_all(env.path("out")).unwrap();
    env.run_ok(&p, &[]);
    let text = std::fs::read_to_string(env.path("out/_seqwin.json")).unwrap();
    std::fs::write(
        env.path("out/_seqwin.json"),
        text.replace("split=val/part-00000.parquet", "../../etc/passwd"),
    )
    .unwrap();
    refused_untouched(
        "_seqwin.json lists `../../etc/passwd`, which is not a path inside the dataset",
    );

    // An untouched dataset is replaced.
    std::fs::remove_dir_all(env.path("out")).unwrap();
    env.run_ok(&p, &[]);
    env.run_ok(&p, &["--set", "windows.seq_len=3"]);
    assert_eq!(
        manifest(&env.path("out"))["config"]["windows"]["seq_len"],
        3
    );
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);
}

#[test]
fn item_02_lock_file_never_follows_a_symlink_nor_truncates() {
    let env = small_corpus();
    let p = env.pipeline("p.yaml", SPLIT);
    let run = ["run", p.to_str().unwrap(), "--quiet"];
    std::fs::write(env.path("victim.txt"), "precious").unwrap();
    let lock = env.path(".out.seqwin.lock");
    let refused = sink_error(
        &env,
        "out",
        &format!(
            "the lock file {} is a symbolic link; refusing to open it (remove it if no seqwin run is writing this sink)",
            lock.display()
        ),
    );
    // A symlink planted at the lock's name, to a file and to nowhere.
    std::os::unix::fs::symlink(env.path("victim.txt"), &lock).unwrap();
    assert_fails(&env, &run, 2, &refused);
    assert_eq!(
        std::fs::read_to_string(env.path("victim.txt")).unwrap(),
        "precious"
    );
    assert_eq!(std::fs::read_link(&lock).unwrap(), env.path("victim.txt"));
    assert_eq!(
        env.root_entries(),
        [".out.seqwin.lock", "data", "p.yaml", "victim.txt"]
    );
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(env.path("created-by-seqwin"), &lock).unwrap();
    assert_fails(&env, &run, 2, &refused);
    assert_eq!(
        env.root_entries(),
        [".out.seqwin.lock", "data", "p.yaml", "victim.txt"]
    );
    std::fs::remove_file(&lock).unwrap();
    // A FIFO (opening it for writing would block) or a directory at the name.
    let not_a_file = sink_error(
        &env,
        "out",
        &format!(
            "the lock file {} is not a regular file; refusing to use it (remove it if no seqwin run is writing this sink)",
            lock.display()
        ),
    );
    let c = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_fails(&env, &run, 2, &not_a_file);
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    assert_fails(&env, &run, 2, &not_a_file);
    assert_eq!(
        env.root_entries(),
        [".out.seqwin.lock", "data", "p.yaml", "victim.txt"]
    );
    std::fs::remove_dir(&lock).unwrap();
    // A hard link at the lock's name is opened without truncation (and only
    // the name is removed at the end).
    std::fs::hard_link(env.path("victim.txt"), &lock).unwrap();
    env.run_ok(&p, &[]);
    assert_eq!(
        std::fs::read_to_string(env.path("victim.txt")).unwrap(),
        "precious"
    );
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml", "victim.txt"]);
}

#[test]
fn item_03_refused_runs_leave_no_lock_and_no_directories() {
    let env = small_corpus();
    // Refused at the sink check (mode: error, non-empty): no lock left.
    std::fs::create_dir_all(env.path("out")).unwrap();
    std::fs::write(env.path("out/keep.txt"), "precious").unwrap();
    let p = env.pipeline("p.yaml", &SPLIT.replace("mode: overwrite", "mode: error"));
    assert_fails(
        &env,
        &["run", p.to_str().unwrap(), "--quiet"],
        2,
        &sink_error(
            &env,
            "out",
            "sink.path is not empty (sink.mode: error); remove it or set sink.mode: overwrite",
        ),
    );
    assert_eq!(
        tree(&env.path("out")),
        BTreeMap::from([("keep.txt".to_string(), b"precious".to_vec())])
    );
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);

    // `..` in sink.path is refused before anything is created.
    let p = env.pipeline("p.yaml", &SPLIT.replace("path: out,", "path: a/b/../../c,"));
    for cmd in ["check", "run"] {
        assert_fails(
            &env,
            &[cmd, p.to_str().unwrap()],
            2,
            &config_error(
                &env,
                &["`sink.path` must not contain `..` components, got `a/b/../../c`; write the path without them"],
            ),
        );
    }
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);

    // Bad input data found while reading: the sink's new parents are removed.
    let p = env.pipeline(
        "p.yaml",
        &SPLIT
            .replace("path: out,", "path: new/deeper/out,")
            .replace("seq_len: 4", "seq_len: 4, vocab_size: 3"),
    );
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "seqwin: error: {}: row 0 (column `tokens`): token 6 is not below windows.vocab_size 3\n",
            env.path("data/a.parquet").display()
        )
    );
    assert_eq!(env.root_entries(), ["data", "out", "p.yaml"]);
    // Parents that existed before stay.
    std::fs::create_dir_all(env.path("new")).unwrap();
    let out = env.seqwin(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(tree(&env.path("new")), BTreeMap::new());
    assert_eq!(env.root_entries(), ["data", "new", "out", "p.yaml"]);
}

#[test]
fn item_13_sink_problems_are_found_by_check_with_exit_2() {
    let env = small_corpus();
    let yaml = |sink: &str| SPLIT.replace("path: out,", &format!("path: {sink},"));
    let both = |yaml: &str, problem: &str| {
        let p = env.pipeline("p.yaml", yaml);
        for cmd in ["check", "run"] {
            assert_fails(
                &env,
                &[cmd, p.to_str().unwrap()],
                2,
                &config_error(&env, &[problem]),
            );
        }
        assert_eq!(env.root_entries(), ["data", "p.yaml"]);
    };
    both(&yaml("\"out\\0x\""), "`sink.path` contains a NUL byte");
    both(
        &yaml("out/."),
        "`sink.path` must end with the name of the dataset directory, got `out/.`",
    );
    both(
        &yaml("out/.."),
        "`sink.path` must not contain `..` components, got `out/..`; write the path without them",
    );
    let long = "n".repeat(235);
    both(
        &yaml(&long),
        "`sink.path`: the directory name is 235 bytes long; at most 231 fit (its staging directory `.NAME.seqwin-staging-PID` must stay within 255 bytes)",
    );
    // A mount point (here /proc, always one on Linux).
    both(
        &yaml("/proc"),
        "`sink.path` /proc is a mount point (another filesystem than /): the dataset is staged beside it and renamed into place, which cannot cross filesystems; use a directory inside it, such as /proc/dataset",
    );
    // The longest name that fits runs.
    let longest = "n".repeat(231);
    let p = env.pipeline("p.yaml", &yaml(&longest));
    env.run_ok(&p, &[]);
    assert_eq!(env.root_entries(), ["data", longest.as_str(), "p.yaml"]);
    std::fs::remove_dir_all(env.path(&longest)).unwrap();

    // A partition value too long for a directory name: exit 2 naming the
    // column and the value's length, nothing left behind.
    let docs = random_docs(20, 30, 9, 1);
    let long_value = "v".repeat(250);
    write_parquet(
        &env.path("data/a.parquet"),
        &corpus_batch(&docs, 0, &["short", &long_value]),
        10,
    );
    let p = env.pipeline(
        "p.yaml",
        "source: {path: data, tokens: tokens, carry: [source]}\nwindows: {seq_len: 4}\nsink: {path: out, partition_by: [source]}\n",
    );
    assert_fails(
        &env,
        &["run", p.to_str().unwrap(), "--quiet"],
        2,
        &sink_error(
            &env,
            "out",
            "partition column `source` has a value of 250 bytes; its directory name `source=…` would be 257 bytes, over the 255-byte limit of file names: shorten the values or do not partition by `source`",
        ),
    );
    assert_eq!(env.root_entries(), ["data", "p.yaml"]);
}

#[test]
fn item_14_sink_inside_the_source_is_refused() {
    let env = small_corpus();
    let refused = |sink: &str, source: &str, how: &str| {
        config_error(
            &env,
            &[&format!(
                "`sink.path` {} {how} `source.path` {}: a rerun would read its own output as input; write the dataset elsewhere",
                env.path(sink).display(),
                env.path(source).display()
            )],
        )
    };
    let cases = [
        ("data", "data/out", "is inside"),
        ("data", "data", "is inside"),
        ("data/", "data/windows/v1", "is inside"),
        ("'data/**/*.parquet'", "data/out", "is matched by"),
    ];
    for (source, sink, how) in cases {
        let p = env.pipeline(
            "p.yaml",
            &SPLIT
                .replace("path: data,", &format!("path: {source},"))
                .replace("path: out,", &format!("path: {sink},")),
        );
        let before = tree(env.dir.path());
        let source_path = source.trim_matches('\'');
        for cmd in ["check", "run"] {
            assert_fails(
                &env,
                &[cmd, p.to_str().unwrap(), "--quiet"][..if cmd == "check" { 2 } else { 3 }],
                2,
                &refused(sink, source_path, how),
            );
        }
        assert_eq!(tree(env.dir.path()), before, "{source} {sink}");
    }
    // Through a symbolic link to the source directory.
    std::os::unix::fs::symlink(env.path("data"), env.path("alias")).unwrap();
    let p = env.pipeline("p.yaml", &SPLIT.replace("path: out,", "path: alias/out,"));
    assert_fails(
        &env,
        &["check", p.to_str().unwrap()],
        2,
        &refused("alias/out", "data", "is inside"),
    );
    // A glob that does not reach the sink, and a sink beside the source, run.
    let p = env.pipeline(
        "p.yaml",
        &SPLIT
            .replace("path: data,", "path: 'data/*.parquet',")
            .replace("path: out,", "path: data/out,"),
    );
    env.run_ok(&p, &[]);
    env.run_ok(&p, &[]);
    std::fs::remove_dir_all(env.path("data/out")).unwrap();
    let p = env.pipeline("p.yaml", SPLIT);
    env.run_ok(&p, &[]);
    env.run_ok(&p, &[]);
}
