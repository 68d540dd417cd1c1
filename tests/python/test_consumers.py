"""Real consumers read seqwin output with their usual calls (docs/format.md §2)."""
import glob
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import SEQ_LEN, SOURCES, spark_session


def rows_by_doc(table):
    got = {}
    d = table.to_pydict()
    for i in range(table.num_rows):
        got.setdefault(d["doc_id"][i], []).append((d["start"][i], d["input"][i], d["target"][i], d["split"][i], d["source"][i]))
    return got


def check_against_reference(got, expected, corpus):
    splits = {}
    for doc_id, windows in expected.items():
        rows = sorted(got.get(doc_id, []))
        assert [(s, i, t) for s, i, t, _, _ in rows] == windows, doc_id
        # A document lives in exactly one split and carries its source.
        assert len({r[3] for r in rows}) <= 1
        for r in rows:
            assert r[4] == SOURCES[doc_id % len(SOURCES)]
            splits[doc_id] = r[3]
    assert set(splits.values()) == {"train", "val"}


def test_pyarrow_dataset(dataset, expected, corpus, stride):
    data = ds.dataset(dataset, format="parquet", partitioning="hive")
    schema = data.schema
    assert schema.field("input").type == pa.list_(pa.field("item", pa.int32(), nullable=False), SEQ_LEN)
    assert schema.field("target").type == pa.list_(pa.field("item", pa.int32(), nullable=False), SEQ_LEN)
    table = data.to_table()
    assert set(table.column("source").to_pylist()) == set(SOURCES)
    check_against_reference(rows_by_doc(table), expected, corpus)
    # Key-value metadata a trainer can assert on.
    f = sorted(glob.glob(f"{dataset}/**/*.parquet", recursive=True))[0]
    md = pq.read_metadata(f).metadata
    assert md[b"seqwin.seq_len"] == str(SEQ_LEN).encode()
    assert md[b"seqwin.stride"] == str(stride).encode()
    # The token lists' encoding: PLAIN when windows overlap, delta otherwise.
    rg = pq.ParquetFile(f).metadata.row_group(0)
    codecs = {rg.column(c).path_in_schema.split(".")[0]: rg.column(c).compression for c in range(rg.num_columns)}
    encodings = set(rg.column(0).encodings)
    assert ("DELTA_BINARY_PACKED" in encodings) == (stride >= SEQ_LEN), encodings
    # `sink.compression: auto` (the default): zstd, but delta-packed lists uncompressed.
    lists = "UNCOMPRESSED" if stride >= SEQ_LEN else "ZSTD"
    assert codecs == {"input": lists, "target": lists, "doc_id": "ZSTD", "start": "ZSTD"}, codecs
    assert md[b"seqwin.vocab_size"] == b"1000"
    for key in [b"seqwin.pack", b"seqwin.separator", b"seqwin.pad_id", b"seqwin.ignore_index", b"seqwin.version"]:
        assert key in md
    # Manifest account agrees with what pyarrow reads.
    manifest = json.loads((dataset / "_seqwin.json").read_text())
    assert manifest["totals"]["windows"] == table.num_rows
    tokens_in = sum(len(d) for d in corpus)
    assert manifest["totals"]["tokens_in"] == tokens_in


def test_numpy_zero_copy_reshape(dataset):
    f = sorted(glob.glob(f"{dataset}/**/*.parquet", recursive=True))[0]
    table = pq.read_table(f)
    col = table.column("input").combine_chunks()
    values = col.values.to_numpy(zero_copy_only=True)
    batch = values.reshape(-1, SEQ_LEN)
    assert batch.shape == (table.num_rows, SEQ_LEN)
    assert batch.dtype == np.int32
    assert np.shares_memory(batch, values)
    target = table.column("target").combine_chunks().values.to_numpy(zero_copy_only=True).reshape(-1, SEQ_LEN)
    assert (batch[:, 1:] == target[:, :-1]).all()


def test_polars_scan(dataset, expected, corpus):
    import polars as pl

    lf = pl.scan_parquet(f"{dataset}/**/*.parquet", hive_partitioning=True)
    schema = lf.collect_schema()
    assert schema["input"] == pl.Array(pl.Int32, SEQ_LEN)
    assert schema["target"] == pl.Array(pl.Int32, SEQ_LEN)
    df = lf.collect()
    assert set(df["split"].unique().to_list()) == {"train", "val"}
    assert set(df["source"].unique().to_list()) == set(SOURCES)
    table = df.select("doc_id", "start", "input", "target", "split", "source").to_arrow()
    table = table.cast(
        pa.schema(
            [
                ("doc_id", pa.int64()),
                ("start", pa.int64()),
                ("input", pa.list_(pa.int32())),
                ("target", pa.list_(pa.int32())),
                ("split", pa.string()),
                ("source", pa.string()),
            ]
        )
    )
    check_against_reference(rows_by_doc(table), expected, corpus)


def test_duckdb(dataset, expected):
    import duckdb

    con = duckdb.connect()
    counts = dict(
        con.execute(
            f"select split, count(*) from read_parquet('{dataset}/**/*.parquet', hive_partitioning=true) group by split"
        ).fetchall()
    )
    manifest = json.loads((dataset / "_seqwin.json").read_text())
    by_split = {}
    for p in manifest["partitions"]:
        split = p["values"]["split"]
        by_split[split] = by_split.get(split, 0) + p["account"]["windows"]
    assert counts == by_split
    assert sum(counts.values()) == sum(len(w) for w in expected.values())
    row = con.execute(
        f"select input::INTEGER[{SEQ_LEN}] as i, target, source from read_parquet('{dataset}/**/*.parquet', hive_partitioning=true) "
        "where doc_id = 1 and start = 0"
    ).fetchone()
    assert list(row[0]) == expected[1][0][1]
    sources = {r[0] for r in con.execute(f"select distinct source from read_parquet('{dataset}/**/*.parquet', hive_partitioning=true)").fetchall()}
    assert sources == set(SOURCES)


def test_huggingface_datasets(dataset, expected, tmp_path):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    files = {
        split: sorted(glob.glob(f"{dataset}/split={split}/**/*.parquet", recursive=True)) for split in ["train", "val"]
    }
    dsd = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    manifest = json.loads((dataset / "_seqwin.json").read_text())
    for split in ["train", "val"]:
        windows = sum(p["account"]["windows"] for p in manifest["partitions"] if p["values"]["split"] == split)
        assert dsd[split].num_rows == windows
    row = dsd["train"][0]
    assert len(row["input"]) == SEQ_LEN
    doc = row["doc_id"]
    assert (row["start"], row["input"], row["target"]) in expected[doc]
    arr = dsd["train"].with_format("numpy")[:4]["input"]
    assert arr.shape == (4, SEQ_LEN)


def test_pyspark(dataset, expected):
    spark = spark_session("seqwin-consumer-test")
    try:
        df = spark.read.parquet(str(dataset))
        types = dict(df.dtypes)
        assert types["input"] == "array<int>"
        assert types["target"] == "array<int>"
        assert types["split"] == "string"
        manifest = json.loads((dataset / "_seqwin.json").read_text())
        assert df.count() == manifest["totals"]["windows"]
        counts = {r["source"]: r["count"] for r in df.groupBy("source").count().collect()}
        assert set(counts) == set(SOURCES)  # `/`, `=`, `%`, space and é round-trip
        for p in manifest["partitions"]:
            assert counts[p["values"]["source"]] >= p["account"]["windows"]
        row = df.where("doc_id = 1 and start = 0").collect()[0]
        assert list(row["input"]) == expected[1][0][1]
    finally:
        spark.stop()
