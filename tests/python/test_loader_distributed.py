"""seqwin.Loader under torch.distributed: gloo, spawned processes, world size
2 and 4, rank and world taken from the process group. Each rank records the
window numbers it was given; the test compares them with the oracle."""
import json

import pytest

from loader_util import check_batch, expect_cover, oracle, write_dataset

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

B = 8
SEED = 17


def epoch(ld, truth, batches=None):
    out = []
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=0)
    for batch in dl if batches != 0 else ():
        out.append(check_batch({k: v.numpy() for k, v in batch.items()}, truth, B))
        if batches is not None and len(out) == batches:
            break
    return out


def worker(rank, world, out, rdv, record, elastic_state):
    import seqwin

    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world)
    try:
        truth = oracle(out, "train")
        make = lambda: seqwin.Loader(out, split="train", batch_size=B, seed=SEED, with_index=True)  # noqa: E731
        ld = make()
        assert (ld.rank, ld.world_size) == (rank, world)  # from the process group
        result = {"epochs": [], "resumed": {}, "elastic": None}
        for e in range(2):
            ld.set_epoch(e)
            result["epochs"].append(epoch(ld, truth))
        steps = len(result["epochs"][0])
        # resume epoch 1 at several batch boundaries
        for c in sorted({1, steps // 2, steps - 1}):
            ld = make()
            ld.set_epoch(1)
            head = epoch(ld, truth, c)
            state = [ld.state_dict(batches=c) if rank == 0 else None]
            dist.broadcast_object_list(state, src=0)
            again = make()
            again.load_state_dict(state[0])
            result["resumed"][str(c)] = head + epoch(again, truth)
        if world == 4:  # stop epoch 1 after 3 batches, for the elastic run
            ld = make()
            ld.set_epoch(1)
            result["elastic_head"] = epoch(ld, truth, 3)
            if rank == 0:
                elastic_state.write_text(json.dumps(ld.state_dict(batches=3)))
        if world == 2 and elastic_state.exists():
            ld = make()
            ld.load_state_dict(json.loads(elastic_state.read_text()))
            result["elastic"] = epoch(ld, truth)
        (record / f"{world}-{rank}.json").write_text(json.dumps(result))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    out = write_dataset(tmp)
    record = tmp / "record"
    record.mkdir()
    elastic_state = tmp / "elastic.json"
    for world in (4, 2):  # 4 first: the 2-rank run resumes its state
        mp.spawn(worker, args=(world, out, tmp / f"rdv{world}", record, elastic_state), nprocs=world, join=True)
    results = {w: [json.loads((record / f"{w}-{r}.json").read_text()) for r in range(w)] for w in (2, 4)}
    return out, results


def flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("world", [2, 4])
def test_every_window_once_per_epoch_equal_batches_different_orders(runs, world):
    out, results = runs
    n = len(oracle(out, "train")["input"])
    ranks = results[world]
    for e in range(2):
        counts = {len(r["epochs"][e]) for r in ranks}
        assert len(counts) == 1  # the same number of batches on every rank
        steps = counts.pop()
        assert steps == -(-n // (world * B))
        seen = [i for r in ranks for i in flat(r["epochs"][e])]
        expect_cover(seen, n, world * steps * B - n)
    e0 = [flat(r["epochs"][0]) for r in ranks]
    e1 = [flat(r["epochs"][1]) for r in ranks]
    assert e0 != e1
    # reproducible: epoch 1 again (inside the resume runs, from batch 0) is the same
    for r in ranks:
        for whole in r["resumed"].values():
            assert whole == r["epochs"][1]


def test_resume_at_several_boundaries_is_exactly_the_rest(runs):
    _, results = runs
    for world in (2, 4):
        for r in results[world]:
            assert len(r["resumed"]) == 3
            for c, whole in r["resumed"].items():
                assert whole == r["epochs"][1], (world, c)


def test_elastic_resume_from_four_ranks_to_two(runs):
    out, results = runs
    n = len(oracle(out, "train")["input"])
    head = [i for r in results[4] for i in flat(r["elastic_head"])]
    assert len(head) == len(set(head)) == 4 * 3 * B
    rest = [flat(r["elastic"]) for r in results[2]]
    assert len(rest[0]) == len(rest[1]) > 0 and all(len(x) % B == 0 for x in rest)
    everything = head + rest[0] + rest[1]
    expect_cover(everything, n, len(everything) - n)
