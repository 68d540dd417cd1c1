"""Shared by the loader tests: a dataset written by the seqwin binary and an
independent oracle of its windows (pyarrow, manifest order)."""
import collections
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import SOURCES, make_docs, run_seqwin

SEQ_LEN = 16


def write_dataset(tmp, *, docs=400, stride=8, row_group_rows=16, split=True):
    """Runs seqwin on a synthetic corpus; returns the dataset directory."""
    corpus = make_docs(docs, seed=11)
    table = pa.table(
        {
            "doc_id": pa.array(range(len(corpus)), pa.int64()),
            "source": pa.array([SOURCES[i % len(SOURCES)] for i in range(len(corpus))]),
            "tokens": pa.array(corpus, pa.list_(pa.int32())),
        }
    )
    (tmp / "data").mkdir()
    pq.write_table(table, tmp / "data" / "a.parquet", row_group_size=50)
    split_line = "split: {fractions: {train: 0.8, val: 0.2}, seed: 1}" if split else ""
    parts = "[split, source]" if split else "[source]"
    (tmp / "p.yaml").write_text(
        f"""
source: {{path: data, tokens: tokens, id: doc_id, carry: [source]}}
windows: {{seq_len: {SEQ_LEN}, stride: {stride}, vocab_size: 1000, columns: [doc_id, start, position_ids]}}
{split_line}
sink: {{path: out, partition_by: {parts}, row_group_rows: {row_group_rows}}}
"""
    )
    run_seqwin("run", "p.yaml", "--quiet", cwd=tmp)
    return tmp / "out"


def oracle(out, split="train"):
    """Columns of the split's windows in manifest order, read by pyarrow."""
    manifest = json.loads((out / "_seqwin.json").read_text())
    cols = collections.defaultdict(list)
    for p in manifest["partitions"]:
        if split is not None and p["values"].get("split") != split:
            continue
        for f in p["files"]:
            t = pq.read_table(out / f["name"])
            for name in ("input", "target", "position_ids"):
                cols[name].append(np.array(t.column(name).to_pylist(), dtype=np.int32).reshape(-1, SEQ_LEN))
            for name in ("doc_id", "start"):
                cols[name].append(np.array(t.column(name).to_pylist(), dtype=np.int64))
    return {k: np.concatenate(v) for k, v in cols.items()}


def check_batch(batch, truth, batch_size):
    """Exact values: every row is the window its ``index`` names."""
    idx = np.asarray(batch["index"])
    assert idx.shape == (batch_size,)
    for name in ("input", "target"):
        a = np.asarray(batch[name])
        assert a.shape == (batch_size, SEQ_LEN) and a.dtype == np.int32
        assert a.flags["C_CONTIGUOUS"]
        assert np.array_equal(a, truth[name][idx])
    return idx.tolist()


def expect_cover(indices, windows, padded):
    """Each window exactly once, plus exactly ``padded`` repeats of other ones."""
    counts = collections.Counter(indices)
    assert set(counts) == set(range(windows)), "a window is missing"
    assert sum(c - 1 for c in counts.values()) == padded
    assert all(c <= 2 for c in counts.values())
