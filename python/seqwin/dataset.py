"""A map-style dataset over a seqwin output directory."""
from __future__ import annotations

import collections
import os
import warnings
from typing import Any, Iterable, Mapping, Sequence, cast

import numpy as np

from ._files import DatasetFiles

DEFAULT_CACHE_BYTES = 1 << 30


class WindowDataset:
    """Windows of a seqwin dataset, by index: ``ds[i]`` is a dict of numpy
    arrays (``input`` and ``target``, shape ``(seq_len,)``, plus any other
    requested ``columns``); ``ds.__getitems__(indices)`` (used by PyTorch's
    batched fetch) reads a whole batch at once.

    Works as a PyTorch map-style dataset (``__len__`` / ``__getitem__``) in a
    ``DataLoader``, shuffled or not, with worker processes; seqwin never
    imports torch. Rows are ordered as the manifest lists them: partitions by
    path, files in order, rows in file order.

    What random access costs: files stay open and their footers decoded
    (once per process); a sample whose row group is cached costs a few
    microseconds; a miss decodes that row group (in Rust, GIL released) into
    an LRU cache of ``cache_bytes`` (1 GiB by default). A shuffled epoch over
    a split that fits the cache decodes every row group once; over a larger
    split the hit rate is about ``cache_bytes / split size`` — for those use
    :class:`seqwin.Loader`, which reads each row group once per epoch.

    ``split=None`` on a dataset with splits reads all of them (with a
    warning: that mixes validation windows into training).
    """

    def __init__(self, path: str | os.PathLike[str], split: str | None = None,
                 columns: Iterable[str] = ("input", "target"), cache_bytes: int = DEFAULT_CACHE_BYTES,
                 storage_options: Mapping[str, str] | None = None) -> None:
        self.files = DatasetFiles(path, split, storage_options, require_split=False)
        if split is None and self.files.splits:
            warnings.warn(
                f"{path} has splits {self.files.splits} and split=None reads them all; "
                "pass split= to train on one",
                stacklevel=2,
            )
        self.columns = list(columns)
        self.cache_bytes = int(cache_bytes)
        #: Decoded row groups by global id, least recently used first.
        self._cache: collections.OrderedDict[int, dict[str, np.ndarray]] = collections.OrderedDict()
        self._cached = 0

    def __len__(self) -> int:
        return self.files.windows

    def _row_group(self, g: int) -> dict[str, np.ndarray]:
        hit = self._cache.get(g)
        if hit is not None:
            self._cache.move_to_end(g)
            return hit
        arrays = self.files.read([g], self.columns)
        size: int = sum(a.nbytes for a in arrays.values())
        while self._cache and self._cached + size > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= sum(a.nbytes for a in old.values())
        self._cache[g] = arrays
        self._cached += size
        return arrays

    def _index(self, index: int) -> int:
        index = int(index)
        n = self.files.windows
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} windows")
        return index

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = self._index(index)
        g = int(np.searchsorted(self.files.rg_start, index, side="right")) - 1
        arrays = self._row_group(g)
        row = index - int(self.files.rg_start[g])
        return {name: a[row] for name, a in arrays.items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """A list of samples (what PyTorch's fetcher hands ``collate_fn``),
        grouped by row group so each row group is looked up once."""
        idx = np.array([self._index(i) for i in indices], dtype=np.int64)
        groups = np.searchsorted(self.files.rg_start, idx, side="right") - 1
        out: list[dict[str, np.ndarray] | None] = [None] * len(idx)
        for g in np.unique(groups):
            arrays = self._row_group(int(g))
            for k in np.flatnonzero(groups == g):
                row = int(idx[k] - self.files.rg_start[g])
                out[k] = {name: a[row] for name, a in arrays.items()}
        # Every index belongs to one of the groups: no slot is left None.
        return cast("list[dict[str, np.ndarray]]", out)

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes start with an empty cache and open their own files.
        state = dict(self.__dict__)
        state["_cache"] = collections.OrderedDict()
        state["_cached"] = 0
        return state
