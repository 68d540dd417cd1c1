//! Issue #15, item 4: a run stopped by SIGINT, SIGTERM or SIGHUP at a
//! random moment removes its staging directory and lock, exits `128 + signal`
//! and leaves the previous dataset exactly as it was.

use crate::harness::*;

#[test]
fn item_04_signals_remove_staging_and_lock_and_keep_the_previous_dataset() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let env = Env::new();
    big_corpus(&env, 12000);
    let p = env.pipeline("p.yaml", BIG_PIPELINE);
    let t0 = Instant::now();
    env.run_ok(&p, &[]);
    let full = t0.elapsed();
    let mut previous = tree(&env.path("out"));
    // Delays from a fixed xorshift, up to 60% of a full run (measured just
    // above, so a slow or loaded machine gets longer delays), counted from
    // the moment the run holds its lock (see below).
    let span = (full.as_millis() as u64 * 6 / 10).max(100);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let signals = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
    ];
    let trials = 24;
    let mut interrupted = 0;
    for k in 0..trials {
        let sig = signals[k % signals.len()];
        let delay = Duration::from_millis(next() % span);
        // Each finished run is recognisable by its stride; strides close to
        // the first run's keep every run about as long.
        let stride = 9 + k % 4;
        let child = Command::new(env!("CARGO_BIN_EXE_seqwin"))
            .args([
                "run",
                p.to_str().unwrap(),
                "--quiet",
                "--set",
                &format!("windows.stride={stride}"),
            ])
            .current_dir(env.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The delay counts from the moment the run holds its lock: the
        // handlers are armed by then (before it, a signal has its default
        // action, and a loaded machine can take longer than any fixed margin
        // to get there).
        let mut child = child;
        let lock = env.path(".out.seqwin.lock");
        let waited = Instant::now();
        while !lock.exists()
            && child.try_wait().unwrap().is_none()
            && waited.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(delay);
        // SAFETY: signalling a child we spawned and have not yet waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!(
            "trial {k}: signal {sig} after {delay:?}: {:?} {stderr}",
            out.status
        );
        match out.status.code() {
            Some(0) => {
                // Finished first: the new dataset replaced the old one.
                assert_eq!(stderr, "", "{what}");
                assert_eq!(
                    manifest(&env.path("out"))["config"]["windows"]["stride"],
                    stride,
                    "{what}"
                );
                previous = tree(&env.path("out"));
            }
            Some(code) => {
                assert_eq!(code, 128 + sig, "{what}");
                let name = match sig {
                    libc::SIGINT => "SIGINT",
                    libc::SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                assert_eq!(
                    stderr,
                    format!(
                        "seqwin: error: interrupted by {name}; nothing was written (sink.path is unchanged)\n"
                    ),
                    "{what}"
                );
                assert!(
                    tree(&env.path("out")) == previous,
                    "{what}: dataset changed"
                );
                interrupted += 1;
            }
            None => panic!("{what}: killed by the signal"),
        }
        assert_eq!(env.root_entries(), ["data", "out", "p.yaml"], "{what}");
    }
    eprintln!("signals: {interrupted} of {trials} runs interrupted; a full run takes {full:?}");
    assert!(
        interrupted >= trials / 2,
        "only {interrupted} of {trials} runs were interrupted (a run takes {full:?})"
    );
}
