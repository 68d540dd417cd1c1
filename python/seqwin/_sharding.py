"""Sharding, padding and resume of an epoch's global sequence of positions
(``S`` in :mod:`seqwin.loader`): the rank and worker a process is, the
arithmetic of intervals of ``S`` that cuts the rest of an epoch into equal
shares, and :class:`_Sharded`, the base of :class:`~seqwin.loader.Loader`
and :class:`~seqwin.loader.Mix` that holds and saves that rest."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from typing_extensions import TypeAlias

    #: Positions, window ids, row-group ids, block keys.
    Ints: TypeAlias = NDArray[np.int64]
    #: ``[start, end)`` positions of an epoch's sequence ``S``.
    Interval: TypeAlias = list[int]

STATE_FORMAT = 1


def _torch_register(cls: type) -> None:
    """Makes ``cls`` an ``IterableDataset`` for ``DataLoader`` when torch is
    loaded (``isinstance`` only: no torch import here)."""
    data = sys.modules.get("torch.utils.data")
    if data is not None and not issubclass(cls, data.IterableDataset):
        data.IterableDataset.register(cls)


def _dist_rank_world() -> tuple[int, int]:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "WORLD_SIZE" in os.environ:
        return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
    return 0, 1


def _worker() -> tuple[int, int]:
    data = sys.modules.get("torch.utils.data")
    info = data.get_worker_info() if data is not None else None
    return (0, 1) if info is None else (info.id, info.num_workers)


def _in_worker() -> bool:
    data = sys.modules.get("torch.utils.data")
    return data is not None and data.get_worker_info() is not None


def _share(remaining: Iterable[Sequence[int]], world: int, batch_size: int, drop_last: bool) -> tuple[int, int]:
    """Per-rank share size ``n`` and the real length of ``R``."""
    total = sum(b - a for a, b in remaining)
    per = world * batch_size
    n = (total // per if drop_last else -(-total // per)) * batch_size
    return n, total


def _positions(
    remaining: Sequence[Sequence[int]], padding: Sequence[Sequence[int]], lo: int, hi: int
) -> tuple[Ints, NDArray[np.bool_]]:
    """Positions in ``S`` of ``R[lo:hi]`` and whether each is padding: past
    its real windows ``R`` continues with ``padding`` (the padding a resumed
    epoch had left), then repeats itself from the start."""
    comb = list(remaining) + list(padding)
    starts = np.array([a for a, _ in comb], dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum([b - a for a, b in comb])]).astype(np.int64)
    real = sum(b - a for a, b in remaining)
    e: Ints = np.arange(lo, hi, dtype=np.int64)
    if real == 0:
        return e[:0], e[:0].astype(bool)
    pad = e >= real
    e = np.where(e >= cum[-1], (e - cum[-1]) % real, e)
    i = np.searchsorted(cum, e, side="right") - 1
    return starts[i] + (e - cum[i]), pad


def _runs(positions: Ints) -> list[Interval]:
    """Positions as ``[start, end)`` runs, in order."""
    out: list[Interval] = []
    for p in positions.tolist():
        if out and out[-1][1] == p:
            out[-1][1] += 1
        else:
            out.append([p, p + 1])
    return out


def _intervals(remaining: Iterable[Sequence[int]], lo: int, hi: int) -> list[Interval]:
    """``R[lo:hi]`` (within its real length) as intervals of ``S``."""
    out: list[Interval] = []
    offset = 0
    for a, b in remaining:
        n = b - a
        x, y = max(lo, offset), min(hi, offset + n)
        if x < y:
            out.append([a + x - offset, a + y - offset])
        offset += n
    return out


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        elif a < b:
            out.append([a, b])
    return out


class _Sharded:
    """Sharding, padding and resume over an epoch's global sequence of
    ``_total()`` positions (shared by :class:`Loader` and :class:`Mix`)."""

    batch_size: int
    drop_last: bool
    rank: int
    world_size: int
    epoch: int
    _rank: int | None
    _world: int | None
    _remaining: list[Interval]
    _padding: list[Interval]
    _consumed: int

    if TYPE_CHECKING:
        # Defined by the subclasses.
        def _total(self) -> int:
            """Positions in an epoch's global sequence."""

        def _config(self) -> dict[str, Any]:
            """What a saved state must agree with."""

    def _setup(self, batch_size: int, drop_last: bool, rank: int | None, world_size: int | None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        self._rank, self._world = rank, world_size
        self._resolve()
        self.epoch = 0
        self._remaining = [[0, self._total()]]
        self._padding = []
        self._consumed = 0
        _torch_register(type(self))

    def _resolve(self) -> None:
        rank, world = _dist_rank_world()
        self.rank = rank if self._rank is None else int(self._rank)
        self.world_size = world if self._world is None else int(self._world)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")

    def set_epoch(self, epoch: int) -> None:
        """Starts epoch ``epoch`` from its beginning (its own order)."""
        self._resolve()
        self.epoch = int(epoch)
        self._remaining = [[0, self._total()]]
        self._padding = []
        self._consumed = 0

    def __len__(self) -> int:
        """Batches this rank yields in this epoch (from the resume point)."""
        n, _ = _share(self._remaining, self.world_size, self.batch_size, self.drop_last)
        return n // self.batch_size

    def _mine(self) -> tuple[Ints, list[int], Callable[[], None] | None]:
        """This rank's share (positions in the epoch's sequence) and this worker's batches in it."""
        worker, workers = _worker()
        if not _in_worker():
            self._resolve()
        n, _ = _share(self._remaining, self.world_size, self.batch_size, self.drop_last)
        positions, _ = _positions(self._remaining, self._padding, self.rank * n, (self.rank + 1) * n)
        mine = list(range(worker, len(positions) // self.batch_size, workers))
        count = self._count if workers == 1 else None
        return positions, mine, count

    def _count(self) -> None:
        self._consumed += 1

    def state_dict(self, batches: int | None = None) -> dict[str, Any]:
        """The rest of the epoch after this rank took ``batches`` batches since
        :meth:`set_epoch` or :meth:`load_state_dict` (default: the batches
        iterated in this process — pass the count when a DataLoader with
        workers does the iterating). Every rank takes the same number of
        batches, so any rank's state describes all of them: save rank 0's.
        """
        c = self._consumed if batches is None else int(batches)
        n, total = _share(self._remaining, self.world_size, self.batch_size, self.drop_last)
        if not 0 <= c * self.batch_size <= n:
            raise ValueError(f"batches must be in [0, {n // self.batch_size}], got {c}")
        rest: list[Interval] = []
        padding: list[Interval] = []
        for r in range(self.world_size):
            lo, hi = r * n + c * self.batch_size, (r + 1) * n
            rest.extend(_intervals(self._remaining, lo, min(hi, total)))
            positions, pad = _positions(self._remaining, self._padding, max(lo, total), max(hi, total))
            padding.extend(_runs(positions[pad]))
        state: dict[str, Any] = {"format": STATE_FORMAT, "epoch": self.epoch}
        state.update(self._config())
        state.update({"remaining": _merge(rest), "padding": padding})
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continues an epoch from :meth:`state_dict`, on any number of ranks
        and workers: the next iteration yields exactly the windows not yet
        consumed (plus padding up to equal full batches per rank)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown loader state format {state.get('format')!r} (expected {STATE_FORMAT})")
        for key, mine in self._config().items():
            if state.get(key) != mine:
                raise ValueError(f"the state was saved with {key}={state.get(key)!r}, this loader has {key}={mine!r}")
        self._resolve()
        self.epoch = int(state["epoch"])
        self._remaining = [[int(a), int(b)] for a, b in state["remaining"]]
        self._padding = [[int(a), int(b)] for a, b in state.get("padding", [])]
        self._consumed = 0

    def __getstate__(self) -> dict[str, Any]:
        self._resolve()  # in the parent: workers cannot see torch.distributed
        return dict(self.__dict__)
