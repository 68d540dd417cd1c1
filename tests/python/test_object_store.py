"""s3:// sources and sinks against a local S3-compatible server (moto).

The server runs in this process (moto's ThreadedMotoServer on 127.0.0.1), so
its buckets survive stopping and restarting the HTTP server: the test for a
server that goes away mid-write restarts it to look at what was left behind.
"""
import json
import os
import pathlib
import socket
import subprocess
import time

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from conftest import SEQ_LEN, SOURCES, make_docs, seqwin_bin

BUCKET = "lake"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3:
    """A moto server on 127.0.0.1 and a boto3 client for it."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.start()
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def start(self):
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self):
        self.server.stop()

    def env(self):
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION="us-east-1",
            AWS_ENDPOINT_URL=self.endpoint,
        )
        return env

    def upload_dir(self, local, prefix):
        for path in sorted(pathlib.Path(local).rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(local).as_posix()}"
                self.client.upload_file(str(path), BUCKET, key)

    def objects(self, prefix):
        """{key relative to prefix: bytes}."""
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix + "/"
        ):
            for o in page.get("Contents", []):
                body = self.client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
                out[o["Key"][len(prefix) + 1 :]] = body
        return out

    def uploads(self, prefix):
        r = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix + "/")
        return r.get("Uploads", [])


@pytest.fixture(scope="module")
def s3():
    server = S3()
    server.client.create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def seqwin(args, cwd, env):
    return subprocess.run([seqwin_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True)


PIPELINE = """
source: {{path: {source}, tokens: tokens, id: doc_id, carry: [source]}}
windows: {{seq_len: {seq_len}, stride: 8, vocab_size: 1000, columns: [doc_id, start]}}
split: {{fractions: {{train: 0.8, val: 0.2}}, seed: 1}}
shuffle: {shuffle}
sink: {{path: {sink}, partition_by: [split, source], row_group_rows: 64, mode: {mode}}}
"""


def write_corpus(root):
    docs = make_docs(count=300, seed=11)
    table = pa.table(
        {
            "doc_id": pa.array(range(len(docs)), pa.int64()),
            "source": pa.array([SOURCES[i % len(SOURCES)] for i in range(len(docs))]),
            "tokens": pa.array(docs, pa.list_(pa.int32())),
        }
    )
    (root / "data" / "part=0").mkdir(parents=True)
    (root / "data" / "part=1").mkdir(parents=True)
    pq.write_table(table.slice(0, 120), root / "data" / "part=0" / "a.parquet", row_group_size=25)
    pq.write_table(table.slice(120), root / "data" / "part=1" / "b.parquet", row_group_size=40)


def manifest_figures(m):
    return {
        "partitions": m["partitions"],
        "totals": m["totals"],
        "schema": m["schema"],
        "partition_by": m["partition_by"],
        "inputs": [(pathlib.PurePosixPath(i["path"]).name, i["bytes"], i["rows"]) for i in m["inputs"]],
    }


@pytest.mark.parametrize("shuffle", ["null", "{seed: 3}"], ids=["source-order", "shuffled"])
def test_s3_to_s3_equals_a_local_run(tmp_path, s3, shuffle):
    write_corpus(tmp_path)
    prefix = f"runs/{shuffle != 'null'}"
    s3.upload_dir(tmp_path / "data", f"{prefix}/corpus")
    (tmp_path / "local.yaml").write_text(
        PIPELINE.format(source="data", sink="out", mode="error", seq_len=SEQ_LEN, shuffle=shuffle)
    )
    (tmp_path / "remote.yaml").write_text(
        PIPELINE.format(
            source=f"s3://{BUCKET}/{prefix}/corpus",
            sink=f"s3://{BUCKET}/{prefix}/out",
            mode="error",
            seq_len=SEQ_LEN,
            shuffle=shuffle,
        )
    )
    local = seqwin(["run", "local.yaml", "--quiet"], tmp_path, s3.env())
    assert local.returncode == 0, local.stderr
    remote = seqwin(["run", "remote.yaml", "--quiet"], tmp_path, s3.env())
    assert remote.returncode == 0, remote.stderr

    objects = s3.objects(f"{prefix}/out")
    out = tmp_path / "out"
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # The same objects under the same names (hive escapes included) …
    assert sorted(objects) == sorted(files)
    assert any("%2F" in k for k in files), "a partition value that needs escaping"
    # … the same Parquet bytes …
    for name, data in files.items():
        if name.endswith(".parquet"):
            assert objects[name] == data, name
    assert objects["_SUCCESS"] == b""
    # … and the same manifest figures (paths and elapsed time aside).
    m_local = json.loads(files["_seqwin.json"])
    m_remote = json.loads(objects["_seqwin.json"])
    assert manifest_figures(m_remote) == manifest_figures(m_local)
    assert m_remote["inputs"][0]["path"].startswith(f"s3://{BUCKET}/{prefix}/corpus/part=0/")


def test_refusals_leave_the_prefix_as_it_was(tmp_path, s3):
    write_corpus(tmp_path)
    s3.upload_dir(tmp_path / "data", "refuse/corpus")
    s3.client.put_object(Bucket=BUCKET, Key="refuse/notours/report.csv", Body=b"a,b\n")

    def run(sink, mode):
        (tmp_path / "p.yaml").write_text(
            PIPELINE.format(source="data", sink=sink, mode=mode, seq_len=SEQ_LEN, shuffle="null")
        )
        return seqwin(["run", "p.yaml", "--quiet"], tmp_path, s3.env())

    for sink, mode, message in [
        (f"s3://{BUCKET}/refuse/corpus", "error", "not empty"),
        (f"s3://{BUCKET}/refuse/notours", "overwrite", "not a seqwin dataset"),
        (f"s3://{BUCKET}/refuse/corpus", "overwrite", "not a seqwin dataset"),
    ]:
        before = s3.objects(sink.split(BUCKET + "/")[1])
        r = run(sink, mode)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and sink in r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
        assert s3.objects(sink.split(BUCKET + "/")[1]) == before

    # A missing bucket and missing credentials: one sentence, exit 2.
    r = run("s3://no-such-bucket/out", "error")
    assert r.returncode == 2 and "NoSuchBucket" in r.stderr, r.stderr
    env = s3.env()
    del env["AWS_ACCESS_KEY_ID"]
    (tmp_path / "p.yaml").write_text(
        PIPELINE.format(source="data", sink=f"s3://{BUCKET}/x", mode="error", seq_len=SEQ_LEN, shuffle="null")
    )
    r = seqwin(["run", "p.yaml", "--quiet"], tmp_path, env)
    assert r.returncode == 2 and "no AWS credentials" in r.stderr, r.stderr


def test_overwrite_replaces_a_seqwin_dataset(tmp_path, s3):
    write_corpus(tmp_path)

    def run(seq_len):
        (tmp_path / "p.yaml").write_text(
            PIPELINE.format(
                source="data", sink=f"s3://{BUCKET}/ow/out", mode="overwrite", seq_len=seq_len, shuffle="null"
            )
        )
        r = seqwin(["run", "p.yaml", "--quiet"], tmp_path, s3.env())
        assert r.returncode == 0, r.stderr
        return s3.objects("ow/out")

    first = run(16)
    second = run(12)
    third = run(16)
    for objects, seq_len in [(first, 16), (second, 12), (third, 16)]:
        manifest = json.loads(objects["_seqwin.json"])
        listed = {f["name"] for p in manifest["partitions"] for f in p["files"]}
        parquet = {k for k in objects if k.endswith(".parquet")}
        # Exactly the new dataset remains: the old files and the marker are gone.
        assert parquet == listed
        assert set(objects) == parquet | {"_seqwin.json", "_SUCCESS"}
        assert manifest["config"]["windows"]["seq_len"] == seq_len
        assert listed
    # The second run could not reuse the first run's names while they existed.
    assert not set(first) & set(second) - {"_seqwin.json", "_SUCCESS"}


def test_server_stopped_mid_write(tmp_path, s3):
    # Enough data that the upload is still running when the server goes away.
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50_000, size=24_000_000, dtype=np.int32)
    offsets = np.arange(0, len(tokens) + 1, 200_000, dtype=np.int32)
    docs = pa.ListArray.from_arrays(pa.array(offsets), pa.array(tokens))
    (tmp_path / "big").mkdir()
    pq.write_table(pa.table({"tokens": docs}), tmp_path / "big" / "a.parquet", row_group_size=8)
    (tmp_path / "p.yaml").write_text(
        f"""
source: {{path: big, tokens: tokens}}
windows: {{seq_len: 1024, stride: 512}}
sink:
  path: s3://{BUCKET}/crash/out
  compression: none
  storage_options: {{max_retries: 1, retry_timeout: 2}}
"""
    )
    proc = subprocess.Popen(
        [seqwin_bin(), "run", "p.yaml", "--quiet"],
        cwd=tmp_path,
        env=s3.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not s3.uploads("crash/out"):
        assert proc.poll() is None, "the run finished before the server could be stopped"
        assert time.time() < deadline
        time.sleep(0.01)
    s3.stop()
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        s3.start()
    assert proc.returncode == 1, stderr
    assert stderr.startswith("seqwin: error: s3://lake/crash/out"), stderr
    assert stderr.count("\n") == 1, stderr
    keys = set(s3.objects("crash/out"))
    assert "_SUCCESS" not in keys and "_seqwin.json" not in keys, keys


def test_failed_overwrite_leaves_the_old_dataset(tmp_path, s3):
    """Bad data found mid-run (after files were uploaded): exit 2, and the
    prefix holds exactly the old dataset again, `_SUCCESS` included."""
    write_corpus(tmp_path)
    (tmp_path / "good.yaml").write_text(
        PIPELINE.format(source="data", sink=f"s3://{BUCKET}/fail/out", mode="overwrite", seq_len=SEQ_LEN, shuffle="null")
    )
    r = seqwin(["run", "good.yaml", "--quiet"], tmp_path, s3.env())
    assert r.returncode == 0, r.stderr
    before = s3.objects("fail/out")

    docs = make_docs(count=400, seed=12)
    docs[-1] = docs[-1] + [5000]  # out of vocabulary, in the last row group
    table = pa.table(
        {
            "doc_id": pa.array(range(len(docs)), pa.int64()),
            "source": pa.array(["web"] * len(docs)),
            "tokens": pa.array(docs, pa.list_(pa.int32())),
        }
    )
    (tmp_path / "bad").mkdir()
    pq.write_table(table, tmp_path / "bad" / "a.parquet", row_group_size=4)
    (tmp_path / "bad.yaml").write_text(
        PIPELINE.format(source="bad", sink=f"s3://{BUCKET}/fail/out", mode="overwrite", seq_len=4, shuffle="null")
        .replace("row_group_rows: 64", "row_group_rows: 2")
    )
    r = seqwin(["run", "bad.yaml", "--quiet"], tmp_path, s3.env())
    assert r.returncode == 2, r.stderr
    assert "5000" in r.stderr and "vocab_size" in r.stderr
    assert s3.objects("fail/out") == before
    assert s3.uploads("fail/out") == []
