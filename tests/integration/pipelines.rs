//! Every example pipeline in `pipelines/` validates and runs.

use crate::harness::*;

#[test]
fn every_example_pipeline_checks_and_runs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        seen += 1;
        let env = Env::new();
        let out = env.seqwin(&["check", p.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let sink = env.path("out");
        let set = format!("sink.path={}", sink.display());
        env.run_ok(&p, &["--set", &set]);
        assert!(env
            .seqwin(&["inspect", sink.to_str().unwrap()])
            .status
            .success());
        assert!(
            !dataset_files(&sink).is_empty(),
            "{} wrote no files",
            p.display()
        );
    }
    assert!(seen >= 1);
}
