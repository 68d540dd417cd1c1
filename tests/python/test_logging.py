"""`-v` on object stores: the client's credential source, footer reads of
input objects and the object_store crate's retries are logged on stderr;
without `-v` stderr is what it always was."""
import subprocess

from conftest import seqwin_bin
from test_object_store import BUCKET, S3, free_port, write_corpus

PIPELINE = """
source: {{path: {source}, tokens: tokens, storage_options: {{max_retries: 2, retry_timeout: 10}}}}
windows: {{seq_len: 8}}
sink: {{path: out}}
"""


def _seqwin(args, cwd, env):
    env = dict(env)
    env.pop("RUST_LOG", None)
    return subprocess.run([seqwin_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_verbose_logs_credentials_footer_reads_and_retries(tmp_path):
    s3 = S3()
    try:
        write_corpus(tmp_path)
        s3.upload_dir(tmp_path / "data", "logging/data")
        source = f"s3://{BUCKET}/logging/data"
        (tmp_path / "p.yaml").write_text(PIPELINE.format(source=source))
        quiet = _seqwin(["check", "p.yaml"], tmp_path, s3.env())
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stderr == ""
        out = _seqwin(["-v", "check", "p.yaml"], tmp_path, s3.env())
        assert out.returncode == 0, out.stderr
        assert out.stdout == quiet.stdout
        lines = out.stderr.splitlines()
        assert all(" DEBUG " in l or " INFO " in l for l in lines), out.stderr
        # object_store names the credential provider it chose.
        assert any("Using Static credential provider" in l for l in lines), out.stderr
        assert any("object store client: credentials" in l and f"s3://{BUCKET}" in l for l in lines)
        for name in ("part=0/a.parquet", "part=1/b.parquet"):
            assert any("opening input file" in l and f"{source}/{name}" in l for l in lines), name
    finally:
        s3.stop()

    # Nothing listens on this port: the client retries (logged by object_store).
    env = s3.env()
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    quiet = _seqwin(["check", "p.yaml"], tmp_path, env)
    assert quiet.returncode == 2
    assert len(quiet.stderr.splitlines()) == 1 and quiet.stderr.startswith("seqwin: error: ")
    out = _seqwin(["-v", "check", "p.yaml"], tmp_path, env)
    assert out.returncode == 2
    retries = [l for l in out.stderr.splitlines() if "backing off" in l]
    # Each request (a HEAD for a single object, then the listing) is retried twice.
    counts = [r.split("retry ")[-1].split(":")[0] for r in retries]
    assert counts and counts == ["1 of 2", "2 of 2"] * (len(counts) // 2), out.stderr
    assert all(" INFO object_store::client::retry: Encountered transport error" in r for r in retries)
    # The error line is the same as without -v (up to the request's timing).
    last = out.stderr.splitlines()[-1]
    assert last.startswith("seqwin: error: ") and last.split(" in ")[0] == quiet.stderr.split(" in ")[0]
