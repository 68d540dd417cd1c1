"""Issue 14: a row group too large to decode at once (one long document) in
an object store is read as streams from blocks fetched on demand
(src/store/io.rs `Blocks`), not fetched whole: the same output bytes as the
same file read locally, and memory that does not grow with the document."""
import pathlib
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import seqwin_bin
from test_object_store import BUCKET, S3


@pytest.fixture(scope="module")
def s3():
    server = S3()
    yield server
    server.stop()


def one_document(path, tokens, short=()):
    """One document of `tokens` tokens (below 50,000, no runs) among short
    ones, written as pyarrow does by default (snappy, dictionary, one data
    page for the long document)."""
    docs = [np.asarray(d, np.int32) for d in short]
    docs.insert(len(docs) // 2, (np.arange(tokens, dtype=np.int64) * 7919 % 50_000).astype(np.int32))
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(docs)))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"tokens": lists}), path)


def run(cwd, env, source, sink, stream_tokens=None):
    """Runs a windowing of `source` into `sink` under GNU time; returns the peak RSS in KiB."""
    (cwd / "p.yaml").write_text(
        f"source: {{path: {source}, tokens: tokens}}\n"
        "windows: {seq_len: 1000, stride: 700, remainder: pad, columns: [doc_id, start]}\n"
        f"sink: {{path: {sink}, mode: overwrite}}\n"
    )
    env = dict(env)
    if stream_tokens is not None:
        env["SEQWIN_STREAM_TOKENS"] = str(stream_tokens)
    r = subprocess.run(["/usr/bin/time", "-f", "peak-rss-kib %M", seqwin_bin(), "run", "p.yaml", "--quiet",
                        "--threads", "1"], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return int(r.stderr.strip().splitlines()[-1].split()[1])


def parquet_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in pathlib.Path(root).rglob("*.parquet")}


def test_a_long_document_in_an_object_store_reads_as_the_local_file(tmp_path, s3):
    short = [np.arange(n, dtype=np.int32) % 977 for n in (5, 1200, 0, 3000)]
    one_document(tmp_path / "data" / "a.parquet", 2_000_003, short)
    s3.upload_dir(tmp_path / "data", "pieces/data")
    env = s3.env()
    run(tmp_path, env, "data", "local", 50_000)
    run(tmp_path, env, f"s3://{BUCKET}/pieces/data", "remote", 50_000)
    local, remote = parquet_files(tmp_path / "local"), parquet_files(tmp_path / "remote")
    assert sorted(remote) == sorted(local) and local
    for name in local:
        assert remote[name] == local[name], name
    # The pieces give the bytes of the row group decoded whole.
    run(tmp_path, env, "data", "whole", 10**12)
    assert parquet_files(tmp_path / "whole") == local


def test_a_long_document_in_an_object_store_runs_in_memory_that_does_not_grow_with_it(tmp_path, s3):
    """16M and 48M tokens in one snappy page (32 and 96 MB): fetched whole,
    the larger needed 129 MiB more (141 vs 270 MiB); read in 4 MiB blocks,
    about the same."""
    rss = []
    for name, tokens in [("small", 16 << 20), ("large", 48 << 20)]:
        one_document(tmp_path / name / "a.parquet", tokens)
        s3.upload_dir(tmp_path / name, f"memory/{name}")
        (tmp_path / name / "a.parquet").unlink()
        rss.append(run(tmp_path, s3.env(), f"s3://{BUCKET}/memory/{name}", f"out-{name}"))
    growth_mib = (rss[1] - rss[0]) / 1024
    print(f"one document from S3: peak RSS {rss[0]} KiB at 16M tokens, {rss[1]} KiB at 48M")
    assert growth_mib < 24, f"peak RSS {rss[0]} KiB at 16M tokens, {rss[1]} KiB at 48M"
