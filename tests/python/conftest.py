"""Shared fixtures: the seqwin binary, a corpus, and a dataset written by seqwin."""
import os
import pathlib
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEQ_LEN = 16
# Overlapping windows are written PLAIN, non-overlapping ones DELTA_BINARY_PACKED:
# every consumer is tested on both.
STRIDES = [8, 16]
# Partition values that must survive Hive escaping in every consumer.
SOURCES = ["web", "a/b=c%d e", "café", "books"]


def seqwin_bin():
    return os.environ.get("SEQWIN_BIN", str(ROOT / "target" / "debug" / "seqwin"))


def run_seqwin(*args, cwd=None):
    out = subprocess.run([seqwin_bin(), *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out


def spark_session(app):
    """A local[2] Spark session whose Python workers run this interpreter
    (the one the seqwin package is installed in)."""
    import sys

    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    return (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )


def make_docs(count=240, seed=3):
    import random

    rng = random.Random(seed)
    return [[rng.randrange(1000) for _ in range(rng.randrange(0, 90))] for _ in range(count)]


def reference_windows(doc, seq_len, stride):
    """The plain loop of docs/format.md §1.1."""
    out = []
    s = 0
    while s + seq_len + 1 <= len(doc):
        out.append((s, doc[s : s + seq_len], doc[s + 1 : s + seq_len + 1]))
        s += stride
    return out


@pytest.fixture(scope="session")
def corpus():
    return make_docs()


@pytest.fixture(scope="session", params=STRIDES, ids=lambda s: f"stride{s}")
def stride(request):
    return request.param


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, corpus, stride):
    """Runs seqwin with splits and a carried partition column; returns the dataset dir."""
    tmp = tmp_path_factory.mktemp(f"consumers-stride{stride}")
    docs = corpus
    table = pa.table(
        {
            "doc_id": pa.array(range(len(docs)), pa.int64()),
            "source": pa.array([SOURCES[i % len(SOURCES)] for i in range(len(docs))]),
            "tokens": pa.array(docs, pa.list_(pa.int32())),
        }
    )
    (tmp / "data").mkdir()
    pq.write_table(table.slice(0, 100), tmp / "data" / "a.parquet", row_group_size=30)
    pq.write_table(table.slice(100), tmp / "data" / "b.parquet", row_group_size=30)
    (tmp / "p.yaml").write_text(
        f"""
source: {{path: data, tokens: tokens, id: doc_id, carry: [source]}}
windows: {{seq_len: {SEQ_LEN}, stride: {stride}, vocab_size: 1000, columns: [doc_id, start]}}
split: {{fractions: {{train: 0.8, val: 0.2}}, seed: 1}}
sink: {{path: out, partition_by: [split, source], row_group_rows: 64}}
"""
    )
    run_seqwin("run", "p.yaml", "--quiet", cwd=tmp)
    return tmp / "out"


@pytest.fixture(scope="session")
def expected(corpus, stride):
    """doc_id -> list of (start, input, target)."""
    return {i: reference_windows(d, SEQ_LEN, stride) for i, d in enumerate(corpus)}
