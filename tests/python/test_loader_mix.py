"""seqwin.Mix: weighted mixing of seqwin splits, against an independent
reference (Megatron's blending loop written out, and each split's own order
read with a batch-1 loader)."""
import collections

import numpy as np
import pytest

import seqwin
from loader_util import oracle, write_dataset

B = 8


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("mix"))


def reference_blend(weights, samples):
    taken = [0] * len(weights)
    out = []
    for i in range(samples):
        errors = [w * max(i, 1) - t for w, t in zip(weights, taken)]
        d = errors.index(max(errors))
        out.append(d)
        taken[d] += 1
    return out


def order(out, split, seed, epoch):
    ld = seqwin.Loader(out, split=split, batch_size=1, seed=seed, with_index=True)
    ld.set_epoch(epoch)
    return [int(b["index"][0]) for b in ld]


def expected_sequence(out, weights, samples, epoch, seeds=(1, 2), splits=("train", "val")):
    src = reference_blend(weights, samples)
    per_epoch = collections.Counter(src)
    taken = collections.Counter()
    orders = {}
    seq = []
    for d in src:
        g = epoch * per_epoch[d] + taken[d]
        taken[d] += 1
        n = len(order(out, splits[d], seeds[d], 0)) if (d, 0) not in orders else len(orders[(d, 0)])
        e = g // n
        if (d, e) not in orders:
            orders[(d, e)] = order(out, splits[d], seeds[d], e)
        seq.append((d, orders[(d, e)][g % n]))
    return seq


def mix(out, weights, **kw):
    loaders = [seqwin.Loader(out, split="train", batch_size=1, seed=1, columns=["doc_id"]),
               seqwin.Loader(out, split="val", batch_size=1, seed=2, columns=["doc_id"])]
    kw.setdefault("batch_size", B)
    return seqwin.Mix(loaders, weights, with_index=True, **kw)


def pairs(batches):
    return [(int(d), int(i)) for b in batches for d, i in zip(b["source"], b["index"])]


def check_values(batches, out):
    truth = {0: oracle(out, "train"), 1: oracle(out, "val")}
    for b in batches:
        for row in range(len(b["index"])):
            t = truth[int(b["source"][row])]
            i = int(b["index"][row])
            assert np.array_equal(b["input"][row], t["input"][i]) and b["doc_id"][row] == t["doc_id"][i]


@pytest.mark.parametrize("weights", [[0.7, 0.3], [0.5, 0.5]])
def test_mix_follows_megatron_blending_over_each_splits_own_order(out, weights):
    m = mix(out, weights, samples=1000)
    for epoch in (0, 1):
        m.set_epoch(epoch)
        batches = list(m)
        check_values(batches, out)
        got = pairs(batches)
        assert len(got) == len(m) * B == -(-1000 // B) * B
        assert got[:1000] == expected_sequence(out, weights, 1000, epoch)


def test_blend_keeps_every_prefix_in_proportion():
    w = [0.6, 0.3, 0.1]
    src = seqwin.loader.blend(w, 5000)
    assert src.tolist() == reference_blend(w, 5000)
    counts = np.zeros(3)
    for i, d in enumerate(src, start=1):
        counts[d] += 1
        assert np.all(np.abs(counts - np.array(w) * i) <= 1.0 + 1e-9)


def test_mix_shards_and_resumes_elastically(out):
    weights = [0.5, 0.5]  # val (about 300 windows) is upsampled
    full = []
    for r in range(2):
        full += pairs(list(mix(out, weights, rank=r, world_size=2)))
    m = mix(out, weights)
    expected = collections.Counter(expected_sequence(out, weights, m.samples, 0))
    assert not expected - collections.Counter(full)  # every window of the mixed epoch
    assert sum((collections.Counter(full) - expected).values()) == len(full) - m.samples < 2 * B  # + padding
    # 2 ranks take 3 batches each, 3 ranks take the rest
    before, state = [], None
    for r in range(2):
        part = mix(out, weights, rank=r, world_size=2)
        it = iter(part)
        before += pairs([next(it) for _ in range(3)])
        state = part.state_dict()
    after = []
    for r in range(3):
        rest = mix(out, weights, rank=r, world_size=3)
        rest.load_state_dict(state)
        after += pairs(list(rest))
    seen = collections.Counter(before + after)
    assert not expected - seen  # every window of the mixed epoch
    assert sum((seen - expected).values()) == len(before) + len(after) - m.samples < 3 * B


def test_mix_state_is_refused_by_another_mix(out):
    state = mix(out, [0.7, 0.3]).state_dict()
    with pytest.raises(ValueError, match="weights"):
        mix(out, [0.5, 0.5]).load_state_dict(state)


torch = pytest.importorskip("torch")


def test_mix_in_a_dataloader_with_workers(out):
    expected = pairs(list(mix(out, [0.7, 0.3], samples=600)))
    dl = torch.utils.data.DataLoader(mix(out, [0.7, 0.3], samples=600), batch_size=None, num_workers=2)
    assert pairs([{k: v.numpy() for k, v in b.items()} for b in dl]) == expected
