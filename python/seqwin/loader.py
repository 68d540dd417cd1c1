"""The trainer-side loader: shuffled, sharded, resumable batches of a seqwin split.

How an epoch is ordered (everything is a function of ``(seed, epoch)`` and
the dataset, never of timing, ranks or workers)::

    row groups  g0 g1 g2 g3 g4 g5 g6 g7 g8 ...     (manifest order)
    permuted    g5 g1 g8 | g0 g3 g7 | g2 g6 g4     (seed, epoch)
    blocks      [  B0   ] [   B1   ] [   B2   ]    k = block_row_groups
    S           windows of B0 shuffled, then B1's, then B2's ...

``S`` is the epoch's global sequence of windows. The remaining part of an
epoch is a list of intervals of positions in ``S`` (all of it at the start);
its concatenation ``R`` is cut into ``world_size`` equal contiguous shares of
``n`` windows, ``n`` a multiple of ``batch_size``: rounded down
(``drop_last=True``: the last ``len(R) mod (world_size * batch_size)``
windows are skipped this epoch) or up (default: ``R`` is padded by repeating
its first windows, as ``DistributedSampler`` does). Every rank therefore has
``n / batch_size`` full batches. A rank's batches are numbered in its share's
order; DataLoader worker ``w`` of ``W`` yields batches ``w, w + W, ...``, so
the DataLoader's round-robin hands them to the training loop in exactly the
rank's order, whatever the number of workers.

Resuming is arithmetic: after every rank has taken ``c`` batches, the rest of
the epoch is each share minus its first ``c * batch_size`` windows, a few
intervals of ``S`` (``state_dict``). Loading it on any number of ranks and
workers cuts the rest into new shares the same way: each window not yet
consumed is yielded exactly once (plus padding).

Memory: a reader holds the decoded blocks one batch spans (two when a block
holds at least a batch) plus ``prefetch`` blocks being decoded ahead by a
Rust thread, each block at most ``block_row_groups`` row groups of the
selected columns. With ``cache_dir`` the split is one block served from
memory-mapped local files (an exact global shuffle).

:class:`Mix` blends several loaders' sequences by Megatron's rule into one
sequence of ``samples`` positions and shards and resumes it the same way.
The sharding, padding and resume of both are in :mod:`seqwin._sharding`.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import pathlib
import shutil
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ._files import DatasetFiles, to_numpy
from ._sharding import STATE_FORMAT as STATE_FORMAT  # public: seqwin.loader.STATE_FORMAT
from ._sharding import _Sharded

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

    from . import _seqwin
    from ._sharding import Ints

    #: A batch: column name → batch-first array.
    Batch: TypeAlias = dict[str, np.ndarray]
    #: A block's window ids (manifest order) and its shuffle (see :meth:`_Epoch.rows`).
    Rows: TypeAlias = tuple[Ints, Ints]
    #: A block for :func:`_batches`: its source, its row groups and its rows.
    Block: TypeAlias = tuple[int, Ints, Callable[[], Rows]]
    #: A source for :func:`_batches`: files, columns, prefetch, decode threads, memmaps.
    Source: TypeAlias = tuple[DatasetFiles, list[str], int, int, Optional[Batch]]
    #: A decoded block: its arrays, window ids and shuffle.
    Decoded: TypeAlias = tuple[Batch, Ints, Ints]

DEFAULT_BLOCK_ROW_GROUPS = 4
DEFAULT_PREFETCH = 1
DEFAULT_DECODE_THREADS = 2


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in key])))


class _Epoch:
    """The global sequence ``S`` of one epoch: blocks of row groups and the
    shuffle of the windows inside each block."""

    def __init__(self, files: DatasetFiles, seed: int, epoch: int, shuffle: bool, k: int) -> None:
        self.files, self.seed, self.epoch, self.shuffle = files, seed, epoch, shuffle
        groups = len(files.rg_rows)
        if k == 0:  # one block, the whole split: an exact global shuffle
            self.blocks: list[Ints] = [np.arange(groups)] if groups else []
        else:
            order = _rng(seed, epoch, 0).permutation(groups) if shuffle else np.arange(groups)
            self.blocks = [order[i : i + k] for i in range(0, groups, k)]
        sizes = np.array([files.rg_rows[b].sum() for b in self.blocks], dtype=np.int64)
        self.block_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def rows(self, b: int) -> Rows:
        """Window ids (manifest order) of block ``b``'s rows, and its shuffle:
        position ``o`` of the block in ``S`` is row ``perm[o]``."""
        f = self.files
        ids = np.concatenate([np.arange(f.rg_start[g], f.rg_start[g + 1]) for g in self.blocks[b]])
        n = len(ids)
        perm = _rng(self.seed, self.epoch, 1, b).permutation(n) if self.shuffle else np.arange(n)
        return ids, perm

    def locate(self, positions: Ints) -> tuple[Ints, Ints]:
        """Block and offset in the block of positions of ``S``."""
        b = np.searchsorted(self.block_start, positions, side="right") - 1
        return b, positions - self.block_start[b]


def local_cache(
    files: DatasetFiles, columns: Sequence[str], cache_dir: str | os.PathLike[str], threads: int = 1
) -> Batch:
    """The split's ``columns`` decoded into ``cache_dir`` (once; an atomic
    rename publishes it), as read-only memory maps: ``{column: array}``.
    Keyed by the dataset, the split, the manifest and the columns."""
    key = hashlib.sha256(json.dumps(
        [files.root, files.split, files.manifest, sorted(columns)], sort_keys=True, default=str
    ).encode()).hexdigest()[:20]
    final = pathlib.Path(cache_dir) / f"seqwin-{key}"
    if not (final / "_DONE").exists():
        tmp = pathlib.Path(cache_dir) / f".seqwin-{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        out: dict[str, np.memmap[Any, Any]] = {}
        for g in range(len(files.rg_rows)):
            arrays = files.read([g], columns, threads)
            lo, hi = int(files.rg_start[g]), int(files.rg_start[g + 1])
            for name, a in arrays.items():
                if a.dtype == object:
                    raise ValueError(f"cache_dir holds numeric columns only; `{name}` is {a.dtype}")
                if name not in out:
                    out[name] = np.lib.format.open_memmap(
                        tmp / f"{name}.npy", mode="w+", dtype=a.dtype, shape=(files.windows,) + a.shape[1:]
                    )
                out[name][lo:hi] = a
        for a in out.values():
            a.flush()
        del out
        (tmp / "_DONE").write_text("")
        try:
            os.rename(tmp, final)
        except OSError:  # another process published it first
            shutil.rmtree(tmp, ignore_errors=True)
    # Plain ndarray views of the maps (batches gathered from them are ndarrays).
    return {c: np.asarray(np.load(final / f"{c}.npy", mmap_mode="r")) for c in columns}


def _batches(
    mine: Sequence[int],
    batch_size: int,
    key_of: Ints,
    offset_of: Ints,
    block: Callable[[int], Block],
    sources: Sequence[Source],
    with_index: bool,
    source_of: Ints | None = None,
    on_batch: Callable[[], None] | None = None,
) -> Iterator[Batch]:
    """The generic read loop: yields the batches ``mine`` (numbers in the
    rank's share) from decoded blocks.

    ``key_of``/``offset_of``: block key and offset in the block of every
    position of the share; ``block(key)`` → ``(source, row_groups, rows)``
    with ``rows()`` → ``(window ids, shuffle)``; ``sources[s]`` → ``(files,
    columns, prefetch, threads, memmaps or None)``. Each source's blocks are
    decoded ahead on its own Rust prefetch thread, in the order they are
    first needed; a block is dropped once the next batch does not need it.
    """
    B = batch_size
    needs = [np.unique(key_of[j * B : (j + 1) * B]) for j in mine]
    # The blocks each source's reader must deliver, in order (simulating the cache below).
    sequences: collections.defaultdict[int, list[int]] = collections.defaultdict(list)
    held: set[int] = set()
    for t, need in enumerate(needs):
        for k in need.tolist():
            if k not in held:
                sequences[block(k)[0]].append(k)
                held.add(k)
        held &= set(needs[t + 1].tolist()) if t + 1 < len(needs) else set()
    streams: dict[int, _seqwin.Prefetch] = {}
    pulled: collections.Counter[int] = collections.Counter()
    for s, seq in sequences.items():
        files, columns, ahead, threads, memmaps = sources[s]
        if memmaps is None:
            streams[s] = files.prefetch([block(k)[1] for k in seq], columns, ahead, threads)
    cache: dict[int, Decoded] = {}
    for t, j in enumerate(mine):
        for k in needs[t].tolist():
            while k not in cache:
                s = block(k)[0]
                memmaps = sources[s][4]
                if memmaps is not None:
                    cache[k] = (memmaps, *block(k)[2]())
                    continue
                got = sequences[s][pulled[s]]
                pulled[s] += 1
                stream = streams[s].next()
                # The reader was handed exactly the blocks pulled here: it ends after the last.
                assert stream is not None, "the prefetch stream ended early"
                cache[got] = (to_numpy(stream), *block(got)[2]())
        keys, offsets = key_of[j * B : (j + 1) * B], offset_of[j * B : (j + 1) * B]
        batch = _gather(cache, keys, offsets, with_index)
        if with_index and source_of is not None:
            batch["source"] = source_of[j * B : (j + 1) * B]
        if on_batch is not None:
            on_batch()  # before the yield: a loop may stop right after this batch
        yield batch
        nxt = set(needs[t + 1].tolist()) if t + 1 < len(needs) else set()
        for k in [k for k in cache if k not in nxt]:
            del cache[k]


def _gather(cache: Mapping[int, Decoded], keys: Ints, offsets: Ints, with_index: bool) -> Batch:
    """One batch: C-contiguous ``(batch, ...)`` arrays gathered from decoded blocks."""
    first = int(keys[0])
    if (keys == first).all():
        arrays, ids, perm = cache[first]
        rows = perm[offsets]
        out = {name: np.take(a, rows, axis=0) for name, a in arrays.items()}
        if with_index:
            out["index"] = ids[rows]
        return out
    out = {}
    for k in np.unique(keys):
        arrays, ids, perm = cache[int(k)]
        where = np.flatnonzero(keys == k)
        rows = perm[offsets[where]]
        for name, a in arrays.items():
            if name not in out:
                out[name] = np.empty((len(keys),) + a.shape[1:], dtype=a.dtype)
            out[name][where] = a[rows]
        if with_index:
            out.setdefault("index", np.empty(len(keys), dtype=np.int64))[where] = ids[rows]
    return out


class Loader(_Sharded):
    """Shuffled, sharded, resumable batches of one split of a seqwin dataset.

    ``iter(loader)`` yields dicts of batch-first C-contiguous numpy arrays:
    ``input`` and ``target`` of shape ``(batch_size, seq_len)``, plus the
    selected ``columns`` (``loss_mask``, ``position_ids``, ``doc_id`` …) and,
    with ``with_index=True``, ``index``: each window's number in the split
    (manifest order). It is a PyTorch ``IterableDataset`` when torch is
    loaded (``DataLoader(loader, batch_size=None, num_workers=...)``;
    ``torch.as_tensor`` / the DataLoader's conversion shares the buffers),
    and a plain iterator of numpy batches without torch.

    Arguments:

    - ``path``: a seqwin output directory or an ``s3://``/``gs://``/``az://``
      URL (``storage_options`` as in the pipeline's ``storage_options``).
    - ``split``: required when the dataset has splits.
    - ``seed``, ``shuffle``: the epoch's order is a function of
      ``(seed, epoch)`` (call :meth:`set_epoch` before each epoch).
    - ``block_row_groups`` (k): windows are shuffled within blocks of k row
      groups; memory holds at most ``(2 + prefetch) * k`` row groups (when
      a block holds at least a batch).
    - ``drop_last``: ``False`` pads every rank's share by repeating windows
      (as ``DistributedSampler``), ``True`` drops the tail; either way every
      rank gets the same number of full batches.
    - ``prefetch``: blocks decoded ahead by a Rust thread (GIL released);
      ``decode_threads``: threads decoding one block, one column at a time
      each (``input`` and ``target`` on two cores by default).
    - ``cache_dir``: decode the split once into flat local files there
      (one ``.npy`` per column, shared by the ranks and workers of a
      machine) and serve batches from them by memory map, with an exact
      global shuffle of the windows (``block_row_groups`` is then unused).
    - ``rank``, ``world_size``: default to ``torch.distributed`` when it is
      initialized, else ``RANK``/``WORLD_SIZE``, else a single process.

    Import torch before building the loader for ``DataLoader`` to see an
    ``IterableDataset``.
    """

    def __init__(self, path: str | os.PathLike[str], *, batch_size: int, split: str | None = None,
                 columns: Iterable[str] = (), seed: int = 0, shuffle: bool = True,
                 block_row_groups: int = DEFAULT_BLOCK_ROW_GROUPS, drop_last: bool = False,
                 rank: int | None = None, world_size: int | None = None, prefetch: int = DEFAULT_PREFETCH,
                 decode_threads: int = DEFAULT_DECODE_THREADS, with_index: bool = False,
                 cache_dir: str | os.PathLike[str] | None = None,
                 storage_options: Mapping[str, str] | None = None) -> None:
        if block_row_groups < 1:
            raise ValueError(f"block_row_groups must be at least 1, got {block_row_groups}")
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.files = DatasetFiles(path, split, storage_options)
        self.columns = ["input", "target"] + [c for c in columns if c not in ("input", "target")]
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.block_row_groups = int(block_row_groups)
        self.prefetch = int(prefetch)
        self.decode_threads = max(1, int(decode_threads))
        self.with_index = bool(with_index)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self._setup(batch_size, drop_last, rank, world_size)

    @property
    def windows(self) -> int:
        """Windows in the split."""
        return self.files.windows

    def _total(self) -> int:
        return self.files.windows

    def _k(self) -> int:
        """Row groups per block; 0: one block (the local cache's exact shuffle)."""
        return 0 if self.cache_dir is not None else self.block_row_groups

    def _config(self) -> dict[str, Any]:
        """What a saved state must agree with."""
        return {"seed": self.seed, "shuffle": self.shuffle, "block_row_groups": self._k(),
                "windows": self.files.windows}

    def _epoch(self, epoch: int) -> _Epoch:
        return _Epoch(self.files, self.seed, epoch, self.shuffle, self._k())

    def _source(self) -> Source:
        memmaps = None
        if self.cache_dir is not None:
            memmaps = local_cache(self.files, self.columns, self.cache_dir, self.decode_threads)
        return (self.files, self.columns, self.prefetch, self.decode_threads, memmaps)

    def __iter__(self) -> Iterator[Batch]:
        positions, mine, count = self._mine()
        if not mine:
            return
        epoch = self._epoch(self.epoch)
        b_of, o_of = epoch.locate(positions)

        def block(b: int) -> Block:
            return 0, epoch.blocks[b], lambda: epoch.rows(b)

        yield from _batches(mine, self.batch_size, b_of, o_of, block, [self._source()], self.with_index,
                            on_batch=count)


def blend(weights: Sequence[float], samples: int) -> Ints:
    """Megatron's blending: for each of ``samples`` positions, the dataset
    whose share is furthest behind its weight (``argmax(w * max(i, 1) -
    taken)``). Every prefix of ``i`` positions takes ``w_d * i`` from dataset
    ``d`` up to rounding."""
    w = np.asarray(weights, dtype=np.float64)
    out: Ints = np.empty(samples, dtype=np.int64)
    taken: Ints = np.zeros(len(w), dtype=np.int64)
    for i in range(samples):
        d = int(np.argmax(w * max(i, 1) - taken))
        out[i] = d
        taken[d] += 1
    return out


class Mix(_Sharded):
    """Several seqwin splits mixed with weights, as Megatron's blended
    dataset does: an epoch is ``samples`` windows (default: all windows of
    all loaders), dataset ``d`` supplying position ``i`` by :func:`blend`,
    so every prefix holds each dataset in proportion to its weight (up to
    one window). Each dataset is read in its own loader's order (its seed,
    shuffle, blocks or cache), continuing into its next epoch when the mix
    takes more windows than it has (upsampling). Sharding, padding, resume
    and the batches are as in :class:`Loader`; ``with_index=True`` adds
    ``index`` (the window's number in its split) and ``source`` (the
    loader's position in ``loaders``).
    """

    def __init__(self, loaders: Iterable[Loader], weights: Sequence[float], *, batch_size: int,
                 samples: int | None = None, drop_last: bool = False, rank: int | None = None,
                 world_size: int | None = None, with_index: bool = False) -> None:
        self.loaders = list(loaders)
        if not self.loaders or len(self.loaders) != len(weights):
            raise ValueError(f"expected one weight per loader, got {len(weights)} for {len(self.loaders)}")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
        columns = {tuple(ld.columns) for ld in self.loaders}
        if len(columns) != 1:
            raise ValueError(f"the loaders must select the same columns, got {sorted(columns)}")
        if any(ld.windows == 0 for ld in self.loaders):
            raise ValueError("a mixed split has no windows")
        self.weights: list[float] = (w / w.sum()).tolist()
        self.samples = int(samples) if samples is not None else sum(ld.windows for ld in self.loaders)
        self.with_index = bool(with_index)
        self._source_of = blend(self.weights, self.samples)
        # position i is the taken[i]-th window dataset source_of[i] gives this epoch
        self._taken_before: Ints = np.zeros(self.samples, dtype=np.int64)
        counts: Ints = np.zeros(len(self.loaders), dtype=np.int64)
        for d in range(len(self.loaders)):
            where = np.flatnonzero(self._source_of == d)
            self._taken_before[where] = np.arange(len(where))
            counts[d] = len(where)
        self._per_epoch = counts
        self._setup(batch_size, drop_last, rank, world_size)

    def _total(self) -> int:
        return self.samples

    def _config(self) -> dict[str, Any]:
        return {"weights": self.weights, "samples": self.samples,
                "datasets": [ld._config() for ld in self.loaders]}

    def __iter__(self) -> Iterator[Batch]:
        positions, mine, count = self._mine()
        if not mine:
            return
        d_of = self._source_of[positions]
        # The dataset's stream index: epochs of the mix continue each dataset's stream.
        g = self.epoch * self._per_epoch[d_of] + self._taken_before[positions]
        sizes = np.array([ld.windows for ld in self.loaders], dtype=np.int64)
        ep_of, s_of = g // sizes[d_of], g % sizes[d_of]
        epochs: dict[tuple[int, int], _Epoch] = {}
        key_of: Ints = np.empty(len(positions), dtype=np.int64)
        o_of: Ints = np.empty(len(positions), dtype=np.int64)
        blocks: dict[tuple[int, int, int], int] = {}
        for d, ld in enumerate(self.loaders):
            for e in np.unique(ep_of[d_of == d]).tolist():
                where = np.flatnonzero((d_of == d) & (ep_of == e))
                epoch = epochs.setdefault((d, e), ld._epoch(e))
                b, o = epoch.locate(s_of[where])
                for bb in np.unique(b).tolist():
                    blocks.setdefault((d, e, bb), len(blocks))
                ids = np.array([blocks[(d, e, bb)] for bb in b.tolist()], dtype=np.int64)
                key_of[where], o_of[where] = ids, o
        table = {k: key for key, k in blocks.items()}

        def block(k: int) -> Block:
            d, e, b = table[k]
            epoch = epochs[(d, e)]
            return d, epoch.blocks[b], lambda: epoch.rows(b)

        sources = [ld._source() for ld in self.loaders]
        yield from _batches(mine, self.batch_size, key_of, o_of, block, sources, self.with_index,
                            source_of=d_of, on_batch=count)
