"""A map-style dataset over a seqwin output directory."""
import bisect
import json
import pathlib

import numpy as np
import pyarrow.parquet as pq


class WindowDataset:
    """Windows of a seqwin dataset, by index: ``ds[i]`` is a dict of numpy
    arrays (``input`` and ``target``, shape ``(seq_len,)``, plus any other
    requested ``columns``).

    Works as a PyTorch map-style dataset (``__len__`` / ``__getitem__``) in a
    ``DataLoader``, shuffled or not, with worker processes; seqwin never
    imports torch. Rows are ordered as the manifest lists them: partitions by
    path, files in order, rows in file order. Row groups are read lazily, one
    at a time (the last few are cached), so sequential and
    ``DataLoader``-style access read each row group about once per epoch when
    the sampler is sequential and the memory stays at a few row groups
    otherwise.
    """

    def __init__(self, path, split=None, columns=("input", "target"), cache_row_groups=2):
        self.root = pathlib.Path(path)
        manifest_path = self.root / "_seqwin.json"
        if not (self.root / "_SUCCESS").exists() or not manifest_path.exists():
            raise FileNotFoundError(f"{self.root} is not a complete seqwin dataset (no _SUCCESS or _seqwin.json)")
        self.manifest = json.loads(manifest_path.read_text())
        parts = self.manifest["partitions"]
        if split is not None:
            names = sorted({p["values"].get("split") for p in parts if p["values"].get("split")})
            parts = [p for p in parts if p["values"].get("split") == split]
            if not parts:
                raise ValueError(f"no split {split!r} in {self.root}; splits: {names}")
        self.columns = list(columns)
        self._row_groups = []  # (file path, row group index)
        self._starts = []  # first global row of each row group
        total = 0
        for p in parts:
            for f in p["files"]:
                path_ = self.root / f["name"]
                meta = pq.read_metadata(path_)
                for rg in range(meta.num_row_groups):
                    self._row_groups.append((path_, rg))
                    self._starts.append(total)
                    total += meta.row_group(rg).num_rows
        self._len = total
        self._cache = {}
        self._cache_size = max(1, cache_row_groups)

    def __len__(self):
        return self._len

    def _load(self, k):
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        path, rg = self._row_groups[k]
        table = pq.ParquetFile(path).read_row_group(rg, columns=self.columns)
        arrays = {}
        for name in self.columns:
            col = table.column(name).combine_chunks()
            if hasattr(col, "list_size"):  # fixed_size_list: one (rows, seq_len) view
                arrays[name] = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
            else:
                arrays[name] = col.to_numpy(zero_copy_only=False)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[k] = arrays
        return arrays

    def __getitem__(self, index):
        index = int(index)
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} windows")
        k = bisect.bisect_right(self._starts, index) - 1
        arrays = self._load(k)
        row = index - self._starts[k]
        return {name: a[row] for name, a in arrays.items()}

    def __getstate__(self):
        # Worker processes start with an empty cache.
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state
