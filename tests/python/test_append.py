"""`sink.mode: append` seen from outside: directory readers (pyarrow, Polars,
DuckDB, Spark) and seqwin's Python reader see exactly the latest version;
on S3 (moto, which honours `If-None-Match: *`) and Azure (Azurite) two
concurrent appends end with one commit and one clean refusal."""
import json
import subprocess
import time

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from conftest import SEQ_LEN, make_docs, seqwin_bin, spark_session
from test_object_store import BUCKET, S3, Azure

PIPELINE = """
source: {{path: {source}, tokens: tokens, id: doc_id}}
windows: {{seq_len: {seq_len}, stride: 8, columns: [doc_id, start]}}
split: {{fractions: {{train: 0.8, val: 0.2}}, seed: 1}}
sink: {{path: {sink}, partition_by: [split], row_group_rows: 64, mode: {mode}}}
"""


def write_file(path, k, count=200):
    docs = make_docs(count=count, seed=20 + k)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "doc_id": pa.array(range(1000 * k, 1000 * k + len(docs)), pa.int64()),
            "tokens": pa.array(docs, pa.list_(pa.int32())),
        }
    )
    pq.write_table(table, path, row_group_size=50)


def run(tmp_path, source, sink, mode, env=None, name="p.yaml"):
    (tmp_path / name).write_text(PIPELINE.format(source=source, sink=sink, mode=mode, seq_len=SEQ_LEN))
    return subprocess.run([seqwin_bin(), "run", name, "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True)


def split_windows(manifest):
    return {p["values"]["split"]: p["account"]["windows"] for p in manifest["partitions"]}


def test_readers_see_the_latest_version(tmp_path):
    from seqwin import WindowDataset
    import duckdb
    import polars as pl

    write_file(tmp_path / "data" / "a.parquet", 0)
    assert run(tmp_path, "data", "out", "append").returncode == 0
    write_file(tmp_path / "data" / "b.parquet", 1)
    assert run(tmp_path, "data", "out", "append").returncode == 0
    r = run(tmp_path, "data", "whole", "error", name="w.yaml")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "_seqwin.json").read_text())
    assert m["version"] == 1
    expected = split_windows(json.loads((tmp_path / "whole" / "_seqwin.json").read_text()))
    assert split_windows(m) == expected
    out = str(tmp_path / "out")
    for split, n in expected.items():
        assert len(WindowDataset(out, split=split)) == n
        table = pads.dataset(out, partitioning="hive").to_table(filter=pads.field("split") == split)
        assert table.num_rows == n
        lazy = pl.scan_parquet(f"{out}/**/*.parquet", hive_partitioning=True)
        assert lazy.filter(pl.col("split") == split).select(pl.len()).collect().item() == n
        got = duckdb.sql(
            f"select count(*) from read_parquet('{out}/**/*.parquet', hive_partitioning=true) where split = '{split}'"
        ).fetchall()[0][0]
        assert got == n
    # `_seqwin.json` lagging behind the log (an object store writer that died
    # between its commit and the manifest): the reader follows the log.
    (tmp_path / "out" / "_seqwin.json").write_bytes((tmp_path / "out" / "_seqwin_log" / f"{0:020d}.json").read_bytes())
    for split, n in expected.items():
        ds = WindowDataset(out, split=split)
        assert (ds.files.version, len(ds)) == (1, n)
    spark = spark_session("append")
    try:
        rows = {r["split"]: r["count"] for r in spark.read.parquet(out).groupBy("split").count().collect()}
    finally:
        spark.stop()
    assert rows == expected


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


@pytest.fixture(params=["s3", "az"])
def store(request):
    return request.getfixturevalue({"s3": "s3", "az": "azure"}[request.param])


def test_concurrent_appends_one_commits(tmp_path, store):
    """Both appends read version 0 and race for version 1's log entry: the
    conditional put lets one commit; the other exits 2 and removes its files.
    When the second starts after the first committed, it finds nothing new;
    attempts repeat until a race was seen."""
    write_file(tmp_path / "data" / "a.parquet", 0)
    write_file(tmp_path / "data" / "b.parquet", 1, count=3000)
    raced = 0
    for attempt in range(6):
        prefix = f"race{attempt}"
        corpus = f"{store.scheme}://{BUCKET}/{prefix}/corpus"
        url = f"{store.scheme}://{BUCKET}/{prefix}/out"
        store.put(f"{prefix}/corpus/a.parquet", (tmp_path / "data" / "a.parquet").read_bytes())
        assert run(tmp_path, corpus, url, "append", store.env()).returncode == 0
        store.put(f"{prefix}/corpus/b.parquet", (tmp_path / "data" / "b.parquet").read_bytes())
        (tmp_path / "p.yaml").write_text(PIPELINE.format(source=corpus, sink=url, mode="append", seq_len=SEQ_LEN))
        procs = [
            subprocess.Popen(
                [seqwin_bin(), "run", "p.yaml", "--json"],
                cwd=tmp_path,
                env=store.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _, _ in results)
        objects = store.objects(f"{prefix}/out")
        m = json.loads(objects["_seqwin.json"])
        assert m["version"] == 1
        listed = {f["name"] for p in m["partitions"] for f in p["files"]}
        # Exactly the committed version: the loser's uploads are gone.
        assert set(objects) == listed | {
            "_seqwin.json",
            "_SUCCESS",
            "_seqwin_log/00000000000000000000.json",
            "_seqwin_log/00000000000000000001.json",
        }
        assert json.loads(objects["_seqwin_log/00000000000000000001.json"]) == m
        if codes == [0, 2]:
            raced += 1
            loser = next(err for code, _, err in results if code == 2)
            assert loser == (
                f"seqwin: error: {url}: another seqwin run committed version 1 of this dataset first; "
                "this run's files were removed and the dataset is unchanged "
                "(run the append again to add what is still missing)\n"
            )
        else:
            assert codes == [0, 0], results
            outcomes = sorted(json.loads(out)["outcome"] for _, out, _ in results)
            assert outcomes == ["appended", "nothing_new"]
        if raced:
            break
    assert raced, "the two appends never overlapped"
    # The committed windows are those of one local run over both files.
    r = run(tmp_path, "data", "whole", "error", name="w.yaml")
    assert r.returncode == 0, r.stderr
    assert split_windows(m) == split_windows(json.loads((tmp_path / "whole" / "_seqwin.json").read_text()))


def test_sigkill_during_an_append_leaves_a_whole_version(tmp_path, s3, monkeypatch):
    """SIGKILL at random moments of an append to S3: the dataset is at
    version 0 or 1, every file its manifest lists is present and seqwin's
    reader opens it (files of a killed append may remain, unlisted)."""
    import random

    from seqwin._files import DatasetFiles

    write_file(tmp_path / "data" / "a.parquet", 0)
    write_file(tmp_path / "data" / "b.parquet", 1, count=4000)
    for k, v in s3.env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)

    def version0(prefix):
        corpus, url = f"s3://{BUCKET}/{prefix}/corpus", f"s3://{BUCKET}/{prefix}/out"
        s3.put(f"{prefix}/corpus/a.parquet", (tmp_path / "data" / "a.parquet").read_bytes())
        assert run(tmp_path, corpus, url, "append", s3.env()).returncode == 0
        s3.put(f"{prefix}/corpus/b.parquet", (tmp_path / "data" / "b.parquet").read_bytes())
        return url

    def start():
        return subprocess.Popen(
            [seqwin_bin(), "run", "p.yaml", "--quiet"], cwd=tmp_path, env=s3.env(), stderr=subprocess.PIPE, text=True
        )

    version0("kill-timing")
    began = time.time()
    assert start().wait() == 0
    full = time.time() - began
    pick = random.Random(3)
    seen = {0: 0, 1: 0}
    for k in range(12):
        prefix = f"kill{k}"
        url = version0(prefix)
        proc = start()
        time.sleep(pick.random() * 1.5 * full)
        proc.kill()
        proc.wait()
        objects = s3.objects(f"{prefix}/out")
        assert "_SUCCESS" in objects
        files = DatasetFiles(url, split="train")
        assert files.version in (0, 1), k
        listed = {f["name"] for p in files.manifest["partitions"] for f in p["files"]}
        assert listed <= set(objects), k
        assert files.windows == next(
            p["account"]["windows"] for p in files.manifest["partitions"] if p["values"]["split"] == "train"
        )
        seen[files.version] += 1
    print(f"S3 SIGKILL during append: {seen} (a full append takes {full:.2f} s)")
    assert seen[0] > 0, "no append was interrupted"
