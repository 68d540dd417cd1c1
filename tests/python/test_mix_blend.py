"""An unshuffled mix (docs/format.md §1.6) against an independent oracle in
plain Python: the windows of each source and split by the plain loop of the
windowing spec, interleaved by the deadline rule written out here, and the
prefix bound |c_s(n) - n * W_s / W| <= 1 checked on what seqwin wrote."""
import random
from fractions import Fraction

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import reference_windows, run_seqwin

NAMES = ["web", "code", "books"]
# Documents per corpus and passes over it (whole passes only: no document
# is chosen by a hash).
COUNTS = [60, 25, 40]
REPEATS = [1, 2, 1]
SEQ_LEN = 8
SEP = 999


def corpora(tmp):
    """Three corpora of 0-40-token documents, each in two files of row
    groups of 7; ids count from 0 in each corpus."""
    docs = []
    for k, (name, count) in enumerate(zip(NAMES, COUNTS)):
        rng = random.Random(10 + k)
        ds = [[rng.randrange(900) for _ in range(rng.randrange(0, 41))] for _ in range(count)]
        docs.append(ds)
        table = pa.table(
            {
                "doc_id": pa.array(range(count), pa.int64()),
                "tokens": pa.array(ds, pa.list_(pa.int32())),
            }
        )
        (tmp / name).mkdir()
        half = count // 2
        pq.write_table(table.slice(0, half), tmp / name / "a.parquet", row_group_size=7)
        pq.write_table(table.slice(half), tmp / name / "b.parquet", row_group_size=7)
    return docs


def pipeline(tmp, windows, split=""):
    sources = "".join(
        f"  - {{name: {n}, path: {n}, tokens: tokens, id: doc_id, repeat: {r}}}\n"
        for n, r in zip(NAMES, REPEATS)
    )
    partition = "partition_by: [split], " if split else ""
    (tmp / "p.yaml").write_text(
        f"sources:\n{sources}mix: {{source_column: true}}\n"
        f"windows: {{{windows}, columns: [doc_id, start]}}\n{split}"
        f"sink: {{path: out, {partition}row_group_rows: 16}}\n"
    )
    return tmp / "p.yaml"


def written(directory):
    """The rows of one partition in file order: (source, doc_id, start, input, target)."""
    rows = []
    for f in sorted(directory.glob("part-*.parquet")):
        t = pq.read_table(f).to_pydict()
        rows += zip(t["source"], t["doc_id"], t["start"], t["input"], t["target"])
    return [(s, d, st, list(i), list(t)) for s, d, st, i, t in rows]


def blend(targets):
    """The interleave of docs/format.md §1.6: at 1-based position n the j-th
    window of source s is released when (j-1)*W <= n*W_s and due at
    floor(j*W/W_s) + 1; the released one due first goes (ties: lowest s)."""
    total = sum(targets)
    placed = [0] * len(targets)
    out = []
    for n in range(1, total + 1):
        candidates = [
            ((placed[s] + 1) * total // w + 1, s)
            for s, w in enumerate(targets)
            if placed[s] < w and placed[s] * total <= n * w
        ]
        s = min(candidates)[1]
        placed[s] += 1
        out.append(s)
    return out


def interleave(per_source):
    order = blend([len(w) for w in per_source])
    taken = [0] * len(per_source)
    out = []
    for s in order:
        out.append(per_source[s][taken[s]])
        taken[s] += 1
    return out


def assert_prefix_bound(rows):
    """|c_s(n) - n * W_s / W| <= 1 at every prefix n of the partition."""
    total = len(rows)
    targets = {s: sum(1 for r in rows if r[0] == s) for s in NAMES}
    counts = dict.fromkeys(NAMES, 0)
    worst = Fraction(0)
    for n, r in enumerate(rows, 1):
        counts[r[0]] += 1
        for s in NAMES:
            worst = max(worst, abs(counts[s] - Fraction(n * targets[s], total)))
    assert worst <= 1, worst
    return worst


def test_unshuffled_mix_interleaves_each_split_in_proportion(tmp_path):
    docs = corpora(tmp_path)
    p = pipeline(
        tmp_path,
        f"seq_len: {SEQ_LEN}, stride: 4",
        "split: {fractions: {train: 0.7, val: 0.3}, seed: 4}\n",
    )
    run_seqwin("run", str(p), "--quiet", cwd=tmp_path)
    out = tmp_path / "out"
    got = {d.name.split("=", 1)[1]: written(d) for d in sorted(out.glob("split=*"))}
    assert sorted(got) == ["train", "val"]

    # Each document's split, read off the windows written (no oracle of the
    # split hash here): one split per document, and every document that has
    # a window is there.
    split_of = {}
    for split, rows in got.items():
        for s, d, *_ in rows:
            assert split_of.setdefault((s, d), split) == split, (s, d)
    expected_docs = {
        (name, i)
        for name, ds in zip(NAMES, docs)
        for i, doc in enumerate(ds)
        if reference_windows(doc, SEQ_LEN, 4)
    }
    assert set(split_of) == expected_docs
    assert {v for v in split_of.values()} == {"train", "val"}

    for split, rows in got.items():
        # Each source in source order: its passes, its documents, their windows.
        per_source = [
            [
                (name, i, start, inp, tgt)
                for _ in range(repeat)
                for i, doc in enumerate(ds)
                if split_of.get((name, i)) == split
                for start, inp, tgt in reference_windows(doc, SEQ_LEN, 4)
            ]
            for name, ds, repeat in zip(NAMES, docs, REPEATS)
        ]
        assert all(per_source), split
        assert rows == interleave(per_source), split
        assert_prefix_bound(rows)


def test_packed_unshuffled_mix_keeps_one_stream_per_source(tmp_path):
    docs = corpora(tmp_path)
    p = pipeline(tmp_path, f"seq_len: {SEQ_LEN}, pack: true, separator: {SEP}")
    run_seqwin("run", str(p), "--quiet", cwd=tmp_path)
    rows = written(tmp_path / "out")
    per_source = []
    for name, ds, repeat in zip(NAMES, docs, REPEATS):
        # The source's packed stream (every pass), and whose token each is.
        stream, owner = [], []
        for _ in range(repeat):
            for i, doc in enumerate(ds):
                stream += doc + [SEP]
                owner += [i] * (len(doc) + 1)
        per_source.append(
            [
                (name, owner[start], start, inp, tgt)
                for start, inp, tgt in reference_windows(stream, SEQ_LEN, SEQ_LEN)
            ]
        )
    assert rows == interleave(per_source)
    # 60 + 2*25 + 40 documents of 0-40 tokens: hundreds of windows each.
    assert [len(w) for w in per_source] == [sum(1 for r in rows if r[0] == n) for n in NAMES]
    assert_prefix_bound(rows)


@pytest.mark.parametrize(
    "targets,expected",
    [([4, 2], [0, 0, 1, 0, 0, 1]), ([1, 0, 2], [2, 0, 2]), ([3, 3, 3], [0, 1, 2] * 3)],
)
def test_the_oracle_interleave_on_small_cases(targets, expected):
    assert blend(targets) == expected
