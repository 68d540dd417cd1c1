"""The Python package (built by scripts/test.sh with maturin into .venv)
against the CLI on the same data: seqwin.windows on pyarrow, Polars and
DuckDB input, assign_split, run, WindowDataset and seqwin.spark.windows."""
import collections
import json
import pickle
import random

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import seqwin
import seqwin.spark
from conftest import ROOT, make_docs, run_seqwin, spark_session

FRACTIONS = {"train": 0.75, "val": 0.25}
CASES = {
    "overlapping": dict(seq_len=16, stride=8, columns=["doc_id", "start"]),
    "packed": dict(
        seq_len=12, stride=12, pack=True, separator=999, remainder="pad",
        columns=["doc_id", "start", "position_ids", "segment_ids", "loss_mask"],
    ),
}


def yaml_windows(kw):
    return json.dumps({k: v for k, v in kw.items()})  # JSON is YAML


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    docs = make_docs(count=260, seed=5)
    table = pa.table(
        {
            "doc_id": pa.array(range(10_000, 10_000 + len(docs)), pa.int64()),
            "source": pa.array(["web" if i % 3 else "books" for i in range(len(docs))]),
            "tokens": pa.array(docs, pa.list_(pa.int32())),
        }
    )
    (tmp / "data").mkdir()
    pq.write_table(table.slice(0, 100), tmp / "data" / "a.parquet", row_group_size=33)
    pq.write_table(table.slice(100), tmp / "data" / "b.parquet", row_group_size=50)
    return tmp, table


def cli_output(tmp, case):
    """Runs the CLI once per case; returns the output directory."""
    out = tmp / f"out-{case}"
    if not out.exists():
        (tmp / f"{case}.yaml").write_text(
            f"""
source: {{path: data, tokens: tokens, id: doc_id, carry: [source]}}
windows: {yaml_windows(CASES[case])}
split: {{fractions: {json.dumps(FRACTIONS)}, seed: 7}}
sink: {{path: {out.name}, partition_by: [split], row_group_rows: 40}}
"""
        )
        run_seqwin("run", f"{case}.yaml", "--quiet", cwd=tmp)
    return out


def cli_rows(out):
    """{split: [row dicts in file order]} from the CLI's dataset."""
    manifest = json.loads((out / "_seqwin.json").read_text())
    rows = {}
    for p in manifest["partitions"]:
        split = p["values"]["split"]
        for f in p["files"]:
            rows.setdefault(split, []).extend(pq.read_table(out / f["name"]).to_pylist())
    return rows


def api_rows(table):
    rows = {}
    for r in table.to_pylist():
        rows.setdefault(r.pop("split"), []).append(r)
    return rows


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("frame", ["pyarrow", "polars", "duckdb", "stream"])
def test_windows_equals_the_cli(corpus, case, frame):
    tmp, table = corpus
    expected = cli_rows(cli_output(tmp, case))
    if frame == "pyarrow":
        data = table
    elif frame == "polars":
        import polars as pl

        data = pl.from_arrow(table)
        assert isinstance(data, pl.DataFrame)
    elif frame == "duckdb":
        import duckdb

        corpus_table = table  # noqa: F841 (DuckDB finds it by name)
        data = duckdb.sql("select * from corpus_table")
    else:  # batch by batch, in small batches
        data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=17))
    kw = dict(CASES[case])
    got = seqwin.windows(
        data, tokens="tokens", id="doc_id", carry=["source"],
        split={"fractions": FRACTIONS, "seed": 7}, **kw,
    )
    assert got.schema.field("input").type == pa.list_(pa.field("item", pa.int32(), nullable=False), kw["seq_len"])
    assert api_rows(got) == expected  # same rows, same order within each split


def test_windows_stream_is_lazy_and_bounded(corpus):
    _, table = corpus
    batches = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=50))
    reader = seqwin.windows(batches, tokens="tokens", seq_len=4, stream=True)
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [b.num_rows for b in reader]
    assert len(sizes) > 1 and sum(sizes) == seqwin.windows(table, tokens="tokens", seq_len=4).num_rows


def test_windows_errors(corpus):
    _, table = corpus
    with pytest.raises(seqwin.SeqwinError, match="vocab_size") as e:
        seqwin.windows(table, tokens="tokens", seq_len=4, vocab_size=10)
    assert e.value.exit_code == 2 and "row 0" in str(e.value)
    with pytest.raises(seqwin.SeqwinError, match="available columns: doc_id, source, tokens"):
        seqwin.windows(table, tokens="toks", seq_len=4)
    with pytest.raises(seqwin.SeqwinError, match="windows.stride"):
        seqwin.windows(table, tokens="tokens", seq_len=4, stride=0)
    with pytest.raises(TypeError, match="Arrow data"):
        seqwin.windows([[1, 2, 3]], tokens="tokens", seq_len=4)


def test_assign_split_equals_the_cli(corpus):
    tmp, table = corpus
    expected = {}
    for split, rows in cli_rows(cli_output(tmp, "overlapping")).items():
        for r in rows:
            expected[r["doc_id"]] = split
    ids = [i for i in table.column("doc_id").to_pylist() if i in expected]
    assert len(ids) > 200
    assert seqwin.assign_split(ids, FRACTIONS, seed=7) == [expected[i] for i in ids]
    assert seqwin.assign_split(np.array(ids), FRACTIONS, seed=7) == [expected[i] for i in ids]


def test_run_and_assign_split_on_string_ids(tmp_path):
    """seqwin.run is the CLI's run; the quickstart has string document ids."""
    manifest = seqwin.run(
        ROOT / "pipelines" / "quickstart.yaml", overrides={"sink.path": str(tmp_path / "qs")}
    )
    assert (tmp_path / "qs" / "_SUCCESS").exists()
    dataset = pads.dataset(tmp_path / "qs", format="parquet", partitioning="hive")
    assert dataset.count_rows() == manifest["totals"]["windows"]
    seen = {}
    for r in dataset.to_table(columns=["doc_id", "split"]).to_pylist():
        seen[r["doc_id"]] = r["split"]
    ids = sorted(seen)
    assert len(ids) >= 13 and all(isinstance(i, str) for i in ids)
    assert seqwin.assign_split(ids, {"train": 0.8, "val": 0.2}, seed=0) == [seen[i] for i in ids]
    with pytest.raises(seqwin.SeqwinError) as e:
        seqwin.run(ROOT / "pipelines" / "quickstart.yaml", overrides=["windows.seq_len=0"])
    assert e.value.exit_code == 2 and "windows.seq_len" in str(e.value)


def test_window_dataset_order_and_shuffled_access(corpus):
    tmp, _ = corpus
    out = cli_output(tmp, "overlapping")
    expected = cli_rows(out)
    ordered = [r for split in sorted(expected) for r in expected[split]]
    ds = seqwin.WindowDataset(out)
    assert len(ds) == len(ordered) == json.loads((out / "_seqwin.json").read_text())["totals"]["windows"]
    for i in range(len(ds)):  # sequential
        item = ds[i]
        assert item["input"].dtype == np.int32 and item["input"].shape == (16,)
        assert item["input"].tolist() == ordered[i]["input"]
        assert item["target"].tolist() == ordered[i]["target"]
    # A shuffled sampler in a worker process (the dataset is pickled to it).
    ds = pickle.loads(pickle.dumps(ds))
    order = list(range(len(ds)))
    random.Random(3).shuffle(order)
    for i in order:
        assert ds[i]["input"].tolist() == ordered[i]["input"]
    assert ds[-1]["target"].tolist() == ordered[-1]["target"]
    with pytest.raises(IndexError):
        ds[len(ds)]
    val = seqwin.WindowDataset(out, split="val", columns=["input", "target", "doc_id"])
    assert len(val) == len(expected["val"])
    assert [int(val[i]["doc_id"]) for i in range(len(val))] == [r["doc_id"] for r in expected["val"]]
    with pytest.raises(ValueError, match="splits: \\['train', 'val'\\]"):
        seqwin.WindowDataset(out, split="test")


@pytest.fixture(scope="module")
def spark():
    session = spark_session("seqwin-spark-test")
    yield session
    session.stop()


def multiset(rows):
    return collections.Counter(
        (r["doc_id"], r["start"], tuple(r["input"]), tuple(r["target"]), r["split"], r["source"])
        for r in rows
    )


def test_spark_windows_equals_the_cli(corpus, spark, tmp_path):
    tmp, _ = corpus
    expected = [
        dict(r, split=split) for split, rows in cli_rows(cli_output(tmp, "overlapping")).items() for r in rows
    ]
    df = spark.read.parquet(str(tmp / "data")).repartition(3)
    out = seqwin.spark.windows(
        df, tokens="tokens", id="doc_id", carry=["source"],
        split={"fractions": FRACTIONS, "seed": 7}, **CASES["overlapping"],
    )
    types = dict(out.dtypes)
    assert types["input"] == "array<int>" and types["target"] == "array<int>"
    assert types["doc_id"] == "bigint" and types["split"] == "string"
    rows = [r.asDict() for r in out.collect()]
    assert all(len(r["input"]) == 16 for r in rows)
    assert multiset(rows) == multiset(expected)
    # The README's job: write partitioned by split, read back.
    out.write.partitionBy("split").parquet(str(tmp_path / "lake"))
    back = spark.read.parquet(str(tmp_path / "lake"))
    assert multiset(r.asDict() for r in back.collect()) == multiset(expected)


def test_spark_packs_within_each_partition(corpus, spark):
    tmp, _ = corpus
    df = spark.read.parquet(str(tmp / "data")).coalesce(1)
    kw = dict(seq_len=12, pack=True, separator=999, columns=["start"])
    rows = seqwin.spark.windows(df, tokens="tokens", **kw).collect()
    # One partition: one packed stream, exactly what seqwin.windows gives on
    # the rows in the order Spark reads them (it orders files by size).
    spark_order = pa.table(
        {"tokens": pa.array([r["tokens"] for r in df.collect()], pa.list_(pa.int32()))}
    )
    local = seqwin.windows(spark_order, tokens="tokens", **kw).to_pylist()
    assert sorted((r["start"], tuple(r["input"])) for r in rows) == sorted(
        (r["start"], tuple(r["input"])) for r in local
    )
    with pytest.raises(ValueError, match="split needs an id"):
        seqwin.spark.windows(df, tokens="tokens", seq_len=4, split=FRACTIONS)


def test_keyword_options_and_defaults_come_from_rust():
    """The options of seqwin.windows and seqwin.spark.windows are exactly the
    pipeline's `windows:` keys, and each left at None takes the Rust default."""
    import inspect

    import pyarrow as pa

    import seqwin
    import seqwin.spark

    defaults = seqwin.window_defaults()
    assert defaults == {
        "columns": [], "dtype": "int32", "ignore_index": -100, "pack": False, "pad_id": 0,
        "remainder": "drop", "separator": None, "seq_len": None, "stride": None, "vocab_size": None,
    }
    own = {"data", "df", "tokens", "id", "carry", "split", "stream"}
    for fn in (seqwin.windows, seqwin.spark.windows):
        options = set(inspect.signature(fn).parameters) - own
        assert options == set(defaults), fn
        for name, p in inspect.signature(fn).parameters.items():
            if name in defaults and name != "seq_len":
                assert p.default is None, (fn, name)
    # No option given: the Rust defaults (stride = seq_len, int32, drop).
    docs = pa.table({"tokens": pa.array([list(range(10))], pa.list_(pa.int64()))})
    out = seqwin.windows(docs, tokens="tokens", seq_len=4)
    assert out.schema.field("input").type == pa.list_(pa.field("item", pa.int32(), nullable=False), 4)
    assert out.column("input").to_pylist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert out.column_names == ["input", "target"]


def _big_corpus(tmp_path, docs=300, length=10_000):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    tokens = [rng.integers(0, 1000, length).astype("int32") for _ in range(docs)]
    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.table({"tokens": pa.array(tokens, pa.list_(pa.int32()))}),
        tmp_path / "data" / "c.parquet", row_group_size=10,
    )
    return docs


def test_run_reports_progress_to_a_callback(tmp_path):
    import seqwin

    rows = _big_corpus(tmp_path, docs=60, length=1000)
    (tmp_path / "p.yaml").write_text(
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 16}\nsink: {path: out}\n"
    )
    calls = []
    manifest = seqwin.run(tmp_path / "p.yaml", progress=lambda done, total: calls.append((done, total)))
    assert manifest["totals"]["documents"] == rows
    assert calls[-1] == (rows, rows)
    assert all(total == rows for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)


def test_ctrl_c_interrupts_run_and_keeps_the_previous_dataset(tmp_path):
    import os
    import signal

    import seqwin

    _big_corpus(tmp_path, docs=600)
    (tmp_path / "p.yaml").write_text(
        "source: {path: data, tokens: tokens}\nwindows: {seq_len: 16, stride: 1}\n"
        "sink: {path: out, mode: overwrite}\n"
    )
    # A previous, small dataset at the sink.
    seqwin.run(tmp_path / "p.yaml", overrides={"windows.stride": 4096}, progress=False)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    # Ctrl-C as soon as the run has read some rows but not all: the signal
    # reaches Python's handler, the run's polling loop sees it.
    def ctrl_c_midway(done, total):
        if 0 < done < total:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        seqwin.run(tmp_path / "p.yaml", progress=ctrl_c_midway)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers == []
