"""seqwin.Loader (sharded, shuffled, resumable batches) and seqwin.WindowDataset
against an independent oracle: the split read by pyarrow in manifest order."""
import collections
import json
import pickle
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import seqwin
from conftest import run_seqwin
from loader_util import SEQ_LEN, check_batch, expect_cover, oracle, write_dataset

B = 8


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("loader"))


@pytest.fixture(scope="module")
def truth(out):
    return oracle(out, "train")


def loader(out, **kw):
    kw.setdefault("batch_size", B)
    return seqwin.Loader(out, split="train", with_index=True, **kw)


def epoch_indices(ld, truth):
    return [i for batch in ld for i in check_batch(batch, truth, ld.batch_size)]


def test_import_does_not_import_torch():
    code = "import sys, seqwin; seqwin.Loader; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_is_required_when_the_dataset_has_splits(out):
    with pytest.raises(ValueError, match=r"splits \['train', 'val'\]: choose one with split="):
        seqwin.Loader(out, batch_size=4)
    with pytest.raises(ValueError, match="no split 'test'"):
        seqwin.Loader(out, batch_size=4, split="test")


def test_one_process_epoch_covers_every_window_with_padding(out, truth):
    n = len(truth["input"])
    ld = loader(out, columns=["position_ids", "doc_id", "start"])
    assert ld.windows == n and n > 300 and n % B != 0  # the fixture needs padding
    got = []
    for batch in ld:
        got += check_batch(batch, truth, B)
        idx = batch["index"]
        assert np.array_equal(batch["position_ids"], truth["position_ids"][idx])
        assert np.array_equal(batch["doc_id"], truth["doc_id"][idx])
        assert np.array_equal(batch["start"], truth["start"][idx])
    assert len(got) == len(ld) * B == -(-n // B) * B
    expect_cover(got, n, len(got) - n)


def test_orders_differ_across_epochs_and_reproduce(out, truth):
    ld = loader(out, seed=5)
    e0 = epoch_indices(ld, truth)
    ld.set_epoch(1)
    e1 = epoch_indices(ld, truth)
    assert e0 != e1 and set(e0) == set(e1) and len(e0) == len(e1)  # padding repeats differ
    again = loader(out, seed=5)
    assert epoch_indices(again, truth) == e0
    again.set_epoch(1)
    assert epoch_indices(again, truth) == e1
    assert epoch_indices(loader(out, seed=6), truth) != e0
    # Unshuffled: manifest order, then padding from the start.
    plain = epoch_indices(loader(out, shuffle=False), truth)
    n = len(truth["input"])
    assert plain == list(range(n)) + list(range(len(plain) - n))


def test_shuffle_stays_within_blocks_of_k_row_groups(out, truth):
    # k = 1: the epoch is its row groups one after the other, each shuffled
    # inside: the windows of a row group come in one run.
    ld = loader(out, block_row_groups=1, seed=2, drop_last=True)
    starts = ld.files.rg_start
    flat = epoch_indices(ld, truth)
    groups = (np.searchsorted(starts, flat, side="right") - 1).tolist()
    runs = [g for k, g in enumerate(groups) if k == 0 or groups[k - 1] != g]
    assert len(runs) == len(set(runs)) > 40
    assert flat != sorted(flat)  # shuffled inside row groups and across them
    assert runs != sorted(runs)


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_share_an_epoch_exactly(out, truth, world, drop_last):
    n = len(truth["input"])
    per_rank = [epoch_indices(loader(out, rank=r, world_size=world, drop_last=drop_last, seed=1), truth)
                for r in range(world)]
    lengths = {len(p) for p in per_rank}
    assert len(lengths) == 1 and lengths.pop() % B == 0
    everything = [i for p in per_rank for i in p]
    if drop_last:
        assert len(everything) == (n // (world * B)) * world * B
        assert len(set(everything)) == len(everything)
    else:
        assert len(everything) == -(-n // (world * B)) * world * B
        expect_cover(everything, n, len(everything) - n)


def run_ranks(out, truth, world, batches=None, state=None, **kw):
    """Each rank's list of batches (index lists), at most ``batches`` each."""
    result = []
    for r in range(world):
        ld = loader(out, rank=r, world_size=world, seed=9, **kw)
        if state is not None:
            ld.load_state_dict(state)
        got = []
        for batch in ld if batches != 0 else ():
            got.append(check_batch(batch, truth, B))
            if batches is not None and len(got) == batches:
                break
        result.append((ld, got))
    return result


@pytest.mark.parametrize("drop_last", [False, True])
def test_resume_at_several_batch_boundaries_yields_exactly_the_rest(out, truth, drop_last):
    full = [got for _, got in run_ranks(out, truth, 4, drop_last=drop_last)]
    steps = len(full[0])
    for c in [0, 1, steps // 2, steps - 1, steps]:
        ranks = run_ranks(out, truth, 4, batches=c, drop_last=drop_last)
        state = ranks[0][0].state_dict()
        assert ranks[0][0].state_dict(batches=c) == state
        assert all(ld.state_dict() == state for ld, _ in ranks)  # any rank's state is the global one
        state = pickle.loads(pickle.dumps(state))
        assert len(state["remaining"]) <= 4 and len(repr(state)) < 400
        rest = run_ranks(out, truth, 4, state=state, drop_last=drop_last)
        for r in range(4):
            assert ranks[r][1] + rest[r][1] == full[r], (c, r)


def test_elastic_resume_from_four_ranks_to_two_covers_the_rest_exactly_once(out, truth):
    n = len(truth["input"])
    before = run_ranks(out, truth, 4, batches=3)
    state = before[0][0].state_dict()
    consumed = [i for _, got in before for b in got for i in b]
    assert len(set(consumed)) == len(consumed) == 4 * 3 * B
    after = run_ranks(out, truth, 2, state=state)
    assert len(after[0][1]) == len(after[1][1])
    rest = [i for _, got in after for b in got for i in b]
    expect_cover(consumed + rest, n, len(consumed) + len(rest) - n)
    # and again from those two ranks to three, mid-way
    part = run_ranks(out, truth, 2, batches=2, state=state)
    state2 = part[0][0].state_dict()
    third = run_ranks(out, truth, 3, state=state2)
    seen = consumed + [i for _, got in part for b in got for i in b] + [i for _, got in third for b in got for i in b]
    expect_cover(seen, n, len(seen) - n)


def test_state_from_another_configuration_is_refused(out):
    state = loader(out, seed=1).state_dict()
    with pytest.raises(ValueError, match="seed=1, this loader has seed=2"):
        loader(out, seed=2).load_state_dict(state)


def test_rank_and_world_from_the_environment(out, truth, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ld = loader(out, seed=1)
    assert (ld.rank, ld.world_size) == (1, 2)
    assert epoch_indices(ld, truth) == epoch_indices(loader(out, seed=1, rank=1, world_size=2), truth)


def test_unsplit_dataset_needs_no_split(tmp_path):
    out = write_dataset(tmp_path, docs=60, split=False)
    truth = oracle(out, None)
    ld = seqwin.Loader(out, batch_size=4, with_index=True, drop_last=True, shuffle=False)
    got = [i for b in ld for i in check_batch(b, truth, 4)]
    assert got == list(range(len(truth["input"]) // 4 * 4))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint16", "uint32"])
@pytest.mark.parametrize("stride", [8, 16])  # PLAIN and DELTA_BINARY_PACKED token lists
def test_every_dtype_and_encoding_reads_as_pyarrow_does(tmp_path, dtype, stride):
    # int32/int64 lists take the page-by-page fast path, the other types and
    # the uint8 loss_mask arrow-rs's record reader; blocks of 3 row groups.
    corpus = [[(7 * i + j) % 1000 for j in range(5 + i % 70)] for i in range(300)]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"tokens": pa.array(corpus, pa.list_(pa.int32()))}), tmp_path / "data" / "a.parquet")
    (tmp_path / "p.yaml").write_text(
        f"""
source: {{path: data, tokens: tokens}}
windows: {{seq_len: {SEQ_LEN}, stride: {stride}, dtype: {dtype}, vocab_size: 1000, remainder: pad, ignore_index: 1001,
          columns: [loss_mask, position_ids]}}
sink: {{path: out, row_group_rows: 16}}
"""
    )
    run_seqwin("run", "p.yaml", "--quiet", cwd=tmp_path)
    out = tmp_path / "out"
    manifest = json.loads((out / "_seqwin.json").read_text())
    columns = ["input", "target", "loss_mask", "position_ids"]
    tables = [pq.read_table(out / f["name"], columns=columns) for p in manifest["partitions"] for f in p["files"]]
    truth = {c: np.concatenate([np.stack(t.column(c).to_numpy(zero_copy_only=False)) for t in tables]) for c in columns}
    assert truth["input"].dtype == np.dtype(dtype) and truth["loss_mask"].dtype == np.uint8
    ld = seqwin.Loader(out, batch_size=4, columns=columns, with_index=True, block_row_groups=3, seed=1)
    seen = []
    for batch in ld:
        for c in columns:
            assert batch[c].dtype == truth[c].dtype and batch[c].flags["C_CONTIGUOUS"]
            assert np.array_equal(batch[c], truth[c][batch["index"]]), c
        seen += batch["index"].tolist()
    expect_cover(seen, len(truth["input"]), len(seen) - len(truth["input"]))


def test_local_cache_exact_global_shuffle_and_resume(out, truth, tmp_path):
    n = len(truth["input"])
    cache = tmp_path / "cache"
    ld = loader(out, cache_dir=cache, seed=4, columns=["doc_id"])
    batches = list(ld)
    got = [i for b in batches for i in check_batch(b, truth, B)]
    for b in batches:
        assert np.array_equal(b["doc_id"], truth["doc_id"][b["index"]])
    expect_cover(got, n, len(got) - n)
    # exact global shuffle: the first batch alone spans many row groups
    groups = np.searchsorted(ld.files.rg_start, got[: 4 * B], side="right") - 1
    assert len(set(groups.tolist())) > 12
    (built,) = [p for p in cache.iterdir()]
    assert sorted(p.name for p in built.iterdir()) == ["_DONE", "doc_id.npy", "input.npy", "target.npy"]
    stamp = (built / "input.npy").stat().st_mtime_ns
    again = loader(out, cache_dir=cache, seed=4, columns=["doc_id"])
    assert [i for b in again for i in b["index"].tolist()] == got  # the same order, from the same files
    assert (built / "input.npy").stat().st_mtime_ns == stamp  # not rebuilt
    # resume and elastic resume work the same way
    full = [got for _, got in run_ranks(out, truth, 4, cache_dir=cache)]
    head = run_ranks(out, truth, 4, batches=2, cache_dir=cache)
    state = head[0][0].state_dict()
    assert state["block_row_groups"] == 0
    rest = run_ranks(out, truth, 4, state=state, cache_dir=cache)
    assert all(head[r][1] + rest[r][1] == full[r] for r in range(4))
    with pytest.raises(ValueError, match="block_row_groups=0, this loader has block_row_groups=4"):
        loader(out, seed=9).load_state_dict(state)


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_yields_the_rank_order_whatever_the_workers(out, truth, workers):
    ld = loader(out, seed=3, rank=1, world_size=2)
    expected = epoch_indices(loader(out, seed=3, rank=1, world_size=2), truth)
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=workers)
    got = []
    for batch in dl:
        assert isinstance(batch["input"], torch.Tensor) and batch["input"].shape == (B, SEQ_LEN)
        assert batch["input"].is_contiguous()
        got += check_batch({k: v.numpy() for k, v in batch.items()}, truth, B)
    assert got == expected
    assert len(dl) == len(expected) // B
    # Resume mid-epoch with a different number of workers.
    c = 5
    state = ld.state_dict(batches=c)
    ld2 = loader(out, seed=3, rank=1, world_size=2)
    ld2.load_state_dict(state)
    dl2 = torch.utils.data.DataLoader(ld2, batch_size=None, num_workers=2 - workers)
    rest = [i for batch in dl2 for i in check_batch({k: v.numpy() for k, v in batch.items()}, truth, B)]
    assert rest == expected[c * B :]


def test_local_cache_with_dataloader_workers(out, truth, tmp_path):
    ld = loader(out, cache_dir=tmp_path, seed=8)
    expected = epoch_indices(ld, truth)
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=2)
    assert [i for b in dl for i in check_batch({k: v.numpy() for k, v in b.items()}, truth, B)] == expected


def test_batches_share_memory_with_tensors(out):
    batch = next(iter(loader(out)))
    t = torch.from_numpy(batch["input"])
    assert t.data_ptr() == batch["input"].ctypes.data


def test_window_dataset_random_access_and_batched_fetch(out, truth):
    with pytest.warns(UserWarning, match="split=None reads them all"):
        seqwin.WindowDataset(out)
    ds = seqwin.WindowDataset(out, split="train", columns=["input", "target", "doc_id"], cache_bytes=20_000)
    n = len(truth["input"])
    assert len(ds) == n
    order = list(range(n))
    random.Random(4).shuffle(order)
    for i in order[:200]:
        item = ds[i]
        assert np.array_equal(item["input"], truth["input"][i]) and int(item["doc_id"]) == truth["doc_id"][i]
    assert ds._cached <= 20_000 + 16 * SEQ_LEN * 8 + 16 * 8  # the LRU honours its budget (one row group over at most)
    items = ds.__getitems__(order[:50])
    assert [int(x["doc_id"]) for x in items] == truth["doc_id"][order[:50]].tolist()
    ds = pickle.loads(pickle.dumps(ds))
    dl = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                                     generator=torch.Generator().manual_seed(0))
    seen = collections.Counter()
    for batch in dl:  # every window once, with its values, through the batched fetch in workers
        for row, d in zip(batch["target"].numpy(), batch["doc_id"].tolist()):
            seen[(d, tuple(row.tolist()))] += 1
    assert seen == collections.Counter(zip(truth["doc_id"].tolist(), map(tuple, truth["target"].tolist())))


@pytest.mark.parametrize("dictionary", [False, True])
@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_token_lists_other_writers_wrote_read_as_pyarrow_does(tmp_path, dictionary, version):
    # Token lists in pages seqwin's writer never makes: v1 and v2 data pages
    # of pyarrow, several per chunk, PLAIN (decoded page by page into the
    # batch) or dictionary-encoded (left to parquet's column reader).
    from seqwin._files import to_numpy

    rng = np.random.default_rng(5)
    tokens = rng.integers(-(2**31), 2**31, size=(300, 24), dtype=np.int64)
    # Non-null lists of non-null items: the fast path's shape (max levels 1).
    schema = pa.schema([pa.field(name, pa.list_(pa.field("item", t, nullable=False), 24), nullable=False)
                        for name, t in [("input", pa.int32()), ("target", pa.int64())]])
    table = pa.table({
        "input": pa.FixedSizeListArray.from_arrays(pa.array(tokens.ravel().astype(np.int32)), 24),
        "target": pa.FixedSizeListArray.from_arrays(pa.array(tokens.ravel() % 50), 24),
    }).cast(schema)
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=100, use_dictionary=dictionary,
                   data_page_version=version, data_page_size=512, compression="zstd")
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    column = meta.row_group(0).column(0)
    assert ("RLE_DICTIONARY" in column.encodings) == dictionary
    leaf = meta.schema.column(0)
    assert (leaf.max_definition_level, leaf.max_repetition_level) == (1, 1)
    reader = seqwin._seqwin.RowGroupReader(str(tmp_path), ["a.parquet"])
    got = to_numpy(reader.read([(0, 2), (0, 0)], ["input", "target"], 2))
    want = np.concatenate([tokens[200:], tokens[:100]])
    assert got["input"].dtype == np.int32 and np.array_equal(got["input"], want.astype(np.int32))
    assert got["target"].dtype == np.int64 and np.array_equal(got["target"], want % 50)
