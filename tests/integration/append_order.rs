//! `sink.mode: append` with the orders that are not source order: each
//! append shuffles its own windows; with packing each version packs its own
//! documents (docs/format.md §5.1).

use crate::append::{one_run, sorted, windows_in_manifest_order, write_input, APPEND};
use crate::harness::*;

#[test]
fn shuffled_appends_hold_the_windows_of_one_run() {
    let env = Env::new();
    write_input(&env, "data", 0);
    let shuffled = APPEND.replace("sink:", "shuffle: {seed: 9}\nsink:");
    let p = env.pipeline("p.yaml", &shuffled);
    env.run_ok(&p, &[]);
    write_input(&env, "data", 1);
    write_input(&env, "data", 2);
    env.run_ok(&p, &[]);
    one_run(&env, &shuffled);
    let (a, w) = (
        windows_in_manifest_order(&env.path("out")),
        windows_in_manifest_order(&env.path("whole")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
    for (part, rows) in &a {
        assert_eq!(sorted(rows.clone()), sorted(w[part].clone()), "{part}");
        // Version 0's windows come first, in their own shuffled order.
        let v0 = manifest(&env.path("out"))["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == part.as_str())
            .unwrap()["files"][0]["rows"]
            .as_u64()
            .unwrap() as usize;
        assert!(rows[..v0].iter().all(|w| w.doc_id.unwrap() < 100), "{part}");
        assert!(
            rows[v0..].iter().all(|w| w.doc_id.unwrap() >= 100),
            "{part}"
        );
    }
}

#[test]
fn packed_appends_pack_each_version_on_its_own() {
    let env = Env::new();
    let packed = APPEND.replace("stride: 3,", "stride: 3, pack: true, separator: 0,");
    write_input(&env, "data", 0);
    let p = env.pipeline("p.yaml", &packed);
    env.run_ok(&p, &[]);
    write_input(&env, "data", 1);
    env.run_ok(&p, &[]);
    // The oracle: one run over each file alone, in order.
    let mut expected: std::collections::BTreeMap<String, Vec<Window>> = Default::default();
    for k in 0..2 {
        let name = format!("only{k}");
        write_input(&env, &name, k);
        let one = env.pipeline(
            &format!("{name}.yaml"),
            &packed
                .replace("path: data", &format!("path: {name}"))
                .replace("path: out", &format!("path: {name}-out"))
                .replace("append", "error"),
        );
        env.run_ok(&one, &[]);
        for (part, rows) in windows_in_manifest_order(&env.path(&format!("{name}-out"))) {
            expected.entry(part).or_default().extend(rows);
        }
    }
    let got = windows_in_manifest_order(&env.path("out"));
    assert_eq!(got, expected);
    // And so are the accounts: the sum of the two runs'.
    let (m, a, b) = (
        manifest(&env.path("out")),
        manifest(&env.path("only0-out")),
        manifest(&env.path("only1-out")),
    );
    for key in [
        "documents",
        "tokens_in",
        "tokens_targeted",
        "separators",
        "windows",
        "spanning_windows",
    ] {
        let sum = a["totals"][key].as_u64().unwrap() + b["totals"][key].as_u64().unwrap();
        assert_eq!(m["totals"][key].as_u64(), Some(sum), "{key}");
    }
}
