//! Hostile input: thousands of truncated and byte-flipped variants of valid
//! Parquet files and pipeline files (fixed seed, bounded time). Every one must
//! end in a clean error or a correct run: never a panic, abort or hang.
//!
//! A test binary of its own, because it silences the panic hook (panics inside
//! the Parquet reader are contained by seqwin and would otherwise flood stderr).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use seqwin::config::PipelineConfig;
use seqwin::plan::Plan;
use seqwin::{Pipeline, RunOptions};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn valid_parquet(compression: Compression, rng: &mut Rng) -> Vec<u8> {
    let docs: Vec<Option<Vec<Option<i32>>>> = (0..60)
        .map(|_| {
            let n = rng.below(80);
            Some((0..n).map(|_| Some(rng.below(1000) as i32)).collect())
        })
        .collect();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "doc_id",
            Arc::new(Int64Array::from_iter_values(0..60)) as ArrayRef,
        ),
        (
            "source",
            Arc::new(StringArray::from_iter_values(
                (0..60).map(|i| ["a", "b", "c"][i % 3]),
            )) as ArrayRef,
        ),
        (
            "tokens",
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(docs)) as ArrayRef,
        ),
    ])
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(20))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    match rng.below(4) {
        0 => b.truncate(rng.below(valid.len())),
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            // Corrupt the footer region, where sizes and offsets live.
            let tail = valid.len().min(200);
            for _ in 0..1 + rng.below(3) {
                let i = valid.len() - 1 - rng.below(tail);
                b[i] = rng.next() as u8;
            }
        }
        _ => {
            let start = rng.below(b.len());
            let len = rng.below(16).min(b.len() - start);
            for x in &mut b[start..start + len] {
                *x = rng.next() as u8;
            }
        }
    }
    b
}

const PIPELINE: &str = "source:
  path: data
  tokens: tokens
  id: doc_id
  carry: [source]
windows:
  seq_len: 8
  stride: 3
  remainder: pad
  vocab_size: 1000
  columns: [doc_id, start, loss_mask]
split:
  fractions: {train: 0.75, val: 0.25}
  seed: 4
sink:
  path: out
  partition_by: [split, source]
  mode: overwrite
";

#[test]
fn mutated_parquet_files_never_panic() {
    std::panic::set_hook(Box::new(|_| {}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let plan = Plan::load(&pipeline, &[]).unwrap();
    let mut rng = Rng(0x5eed_5eed_1234_5678);
    let valids = [
        valid_parquet(Compression::UNCOMPRESSED, &mut rng),
        valid_parquet(Compression::SNAPPY, &mut rng),
        valid_parquet(Compression::ZSTD(ZstdLevel::default()), &mut rng),
    ];
    let file = dir.path().join("data/c.parquet");
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    let trials = 5000;
    for t in 0..trials {
        let bytes = mutate(&valids[t % valids.len()], &mut rng);
        std::fs::write(&file, &bytes).unwrap();
        let options = RunOptions {
            counter: None,
            threads: Some(1 + t % 2),
            progress: false,
        };
        let result = std::panic::catch_unwind(|| Pipeline::new(plan.clone()).run(&options));
        let key = match result {
            Err(p) => panic!(
                "trial {t}: panic escaped: {}\n(mutated file kept at {})",
                seqwin::error::panic_message(p.as_ref()),
                keep(&bytes)
            ),
            Ok(Ok(_)) => "ok".to_string(),
            Ok(Err(e)) => {
                assert_eq!(e.exit_code(), 2, "trial {t}: {e}");
                let msg = e.to_string();
                assert!(
                    msg.contains("c.parquet"),
                    "trial {t}: message does not name the file: {msg}"
                );
                if msg.contains("reader failed") {
                    // A panic inside the Parquet reader, contained by seqwin.
                    "error (contained panic)".to_string()
                } else {
                    "error".to_string()
                }
            }
        };
        *outcomes.entry(key).or_default() += 1;
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "too slow: {t} trials"
        );
    }
    eprintln!(
        "mutated Parquet files: {trials} trials, outcomes {outcomes:?}, {:?}",
        started.elapsed()
    );
    let errors: usize = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("error"))
        .map(|(_, v)| v)
        .sum();
    assert!(errors > trials / 4, "{outcomes:?}");
}

fn keep(bytes: &[u8]) -> String {
    let p = std::env::temp_dir().join("seqwin-mutation-failure.parquet");
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn mutated_pipeline_files_never_panic() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let trials = 5000;
    let path = Path::new("/nonexistent/p.yaml");
    for t in 0..trials {
        let mutated = mutate(PIPELINE.as_bytes(), &mut rng);
        let text = String::from_utf8_lossy(&mutated);
        let result = std::panic::catch_unwind(|| {
            PipelineConfig::parse_str(&text, path)
                .and_then(|c| c.with_overrides(&["windows.seq_len=16".into()]))
                .and_then(|c| Plan::try_new(c, path))
        });
        let key = match result {
            Err(p) => panic!(
                "trial {t}: panic: {}\n{text}",
                seqwin::error::panic_message(p.as_ref())
            ),
            Ok(Ok(_)) => "valid",
            Ok(Err(e)) => {
                assert_eq!(e.exit_code(), 2, "trial {t}: {e}");
                assert!(
                    e.to_string().contains("p.yaml") || e.to_string().contains("--set"),
                    "{e}"
                );
                "error"
            }
        };
        *outcomes.entry(key).or_default() += 1;
    }
    // Alias bombs are refused by the parser's budget, not expanded.
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    assert!(PipelineConfig::parse_str(bomb, path).is_err());
    eprintln!("mutated pipeline files: {trials} trials, outcomes {outcomes:?}");
    // Both outcomes are exercised, and most mutations are refused: a flipped,
    // cut or overwritten byte in a 300-byte pipeline almost always breaks the
    // YAML, a key name or a value's type; the few that survive only change
    // values the rules accept (a seed, a comment, the end of the file).
    let (valid, errors) = (outcomes["valid"], outcomes["error"]);
    assert_eq!(valid + errors, trials);
    assert!(valid >= 1, "no mutated pipeline stayed valid: {outcomes:?}");
    assert!(
        errors * 10 >= trials * 9,
        "fewer than 90% of mutated pipelines were refused: {outcomes:?}"
    );
}

/// Both fuzz tests once more in a child process whose address space is
/// limited to 1 GiB (`ulimit -v`, as in a container): a mutated size that
/// makes a decoder reserve gigabytes must still end in an error, not in an
/// abort (which `catch_unwind` cannot contain: the child would die by
/// SIGABRT).
#[test]
fn fuzz_again_under_an_address_space_limit() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 1 << 30;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "mutated_parquet_files_never_panic",
        "mutated_pipeline_files_never_panic",
        "--nocapture",
    ])
    .env("MALLOC_ARENA_MAX", "2");
    // SAFETY: setrlimit is async-signal-safe and touches no parent state.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 2 passed"),
        "{:?}\n{stdout}\n{stderr}",
        out.status
    );
    let trials: Vec<&str> = stderr.lines().filter(|l| l.contains("trials")).collect();
    assert_eq!(trials.len(), 2, "{stderr}");
    eprintln!("under a 1 GiB address-space limit:\n{}", trials.join("\n"));
}
