"""The files and row groups of one split of a seqwin dataset (local or object store)."""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa

from . import _seqwin

SPLIT_KEY = "split"


def is_remote(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


class DatasetFiles:
    """The manifest of a seqwin dataset, the files of the chosen split and
    their row groups (footers read once, by the Rust reader).

    ``rg_file``, ``rg_index``, ``rg_rows``, ``rg_start`` describe every row
    group in manifest order (partitions by path, files in order): the
    windows of the split are numbered ``0 .. windows - 1`` in that order.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        require_split: bool = True,
    ) -> None:
        root = str(path)
        if root.startswith("file://"):
            root = root[len("file://"):]
        self.root = root.rstrip("/") if is_remote(root) else root
        self.storage_options = dict(storage_options or {})
        if not is_remote(root):
            local = pathlib.Path(root)
            if not (local / "_SUCCESS").exists() or not (local / "_seqwin.json").exists():
                raise FileNotFoundError(f"{root} is not a complete seqwin dataset (no _SUCCESS or _seqwin.json)")
        else:
            try:
                _seqwin.read_dataset_file(self.root, "_SUCCESS", self.storage_options)
            except OSError as e:
                if "does not exist" not in str(e):
                    raise
                raise FileNotFoundError(f"{root} is not a complete seqwin dataset (no _SUCCESS)") from None
        self.manifest: dict[str, Any] = self._latest_manifest()
        #: The dataset version read (docs/format.md §3.1).
        self.version: int = int(self.manifest.get("version", 0))
        parts = self.manifest["partitions"]
        splits: list[str] = sorted({p["values"][SPLIT_KEY] for p in parts if p["values"].get(SPLIT_KEY) is not None})
        if split is None:
            if splits and require_split:
                raise ValueError(
                    f"{root} has splits {splits}: choose one with split= (reading them all would mix "
                    "validation windows into training)"
                )
        else:
            parts = [p for p in parts if p["values"].get(SPLIT_KEY) == split]
            if not parts:
                raise ValueError(f"no split {split!r} in {root}; splits: {splits}")
        self.split = split
        self.splits = splits
        self.names: list[str] = [f["name"] for p in parts for f in p["files"]]
        self._reader: _seqwin.RowGroupReader | None = None
        rows = self.reader().row_group_rows() if self.names else []
        file_of: list[int] = []
        index_of: list[int] = []
        rows_of: list[int] = []
        for fi, per_file in enumerate(rows):
            for rg, n in enumerate(per_file):
                file_of.append(fi)
                index_of.append(rg)
                rows_of.append(n)
        self.rg_file = np.asarray(file_of, dtype=np.int64)
        self.rg_index = np.asarray(index_of, dtype=np.int64)
        self.rg_rows = np.asarray(rows_of, dtype=np.int64)
        self.rg_start = np.concatenate([[0], np.cumsum(self.rg_rows)]).astype(np.int64)
        self.windows = int(self.rg_start[-1])
        seq_len = int(self.manifest.get("config", {}).get("windows", {}).get("seq_len", 0))
        self.seq_len: int | None = seq_len or None

    def _read(self, name: str) -> bytes | None:
        """A small file of the dataset, or None if it does not exist."""
        if not is_remote(self.root):
            path = pathlib.Path(self.root) / name
            return path.read_bytes() if path.exists() else None
        try:
            return bytes(_seqwin.read_dataset_file(self.root, name, self.storage_options))
        except OSError as e:
            if "does not exist" in str(e):
                return None
            raise

    def _latest_manifest(self) -> dict[str, Any]:
        """The manifest of the newest version: ``_seqwin.json``, or a newer
        entry of the version log (on an object store ``_seqwin.json`` is
        written just after the log entry that commits a version, and lags
        behind it if the writer died in between)."""
        text = self._read("_seqwin.json")
        if text is None:
            raise FileNotFoundError(f"{self.root} is not a complete seqwin dataset (no _seqwin.json)")
        manifest: dict[str, Any] = json.loads(text)
        while "version" in manifest:
            newer = self._read(f"_seqwin_log/{int(manifest['version']) + 1:020d}.json")
            if newer is None:
                break
            manifest = json.loads(newer)
        return manifest

    def reader(self) -> _seqwin.RowGroupReader:
        """The Rust reader of this split's files, opened once per process."""
        if self._reader is None:
            self._reader = _seqwin.RowGroupReader(self.root, self.names, self.storage_options)
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        # Each process (DataLoader worker) opens its own files.
        state = dict(self.__dict__)
        state["_reader"] = None
        return state

    def pairs(self, row_groups: Iterable[int]) -> list[tuple[int, int]]:
        """(file, row group in file) pairs of global row-group ids."""
        return [(int(self.rg_file[g]), int(self.rg_index[g])) for g in row_groups]

    def read(
        self, row_groups: Iterable[int], columns: Iterable[str], threads: int = 1
    ) -> dict[str, np.ndarray]:
        """Decodes ``columns`` of the row groups (global ids), concatenated: a dict of numpy arrays."""
        return to_numpy(self.reader().read(self.pairs(row_groups), list(columns), threads))

    def prefetch(
        self, blocks: Iterable[Iterable[int]], columns: Iterable[str], ahead: int, threads: int = 1
    ) -> _seqwin.Prefetch:
        """Decodes blocks (lists of global row-group ids) in order on a Rust thread
        (each block's column chunks on up to ``threads`` threads)."""
        return self.reader().prefetch([self.pairs(b) for b in blocks], list(columns), ahead, threads)


#: Arrow types whose values numpy views straight from the Arrow buffer.
_NUMPY_TYPES: dict[pa.DataType, np.dtype[Any]] = {
    t: np.dtype(t.to_pandas_dtype())
    for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
              pa.uint64(), pa.float32(), pa.float64())
}


def _view(values: pa.Array, start: int, count: int) -> np.ndarray | None:
    """``count`` items of ``values`` from ``start``, a view of its buffer
    (no copy), if it is a null-free array of a fixed-width numeric type.
    ``Array.to_numpy`` would do the same but imports pandas (~40 MB of
    memory) on its first call."""
    dtype = _NUMPY_TYPES.get(values.type)
    if dtype is None or values.null_count:
        return None
    if count == 0:
        empty: np.ndarray = np.empty(0, dtype=dtype)
        return empty
    data = values.buffers()[1]
    view: np.ndarray = np.frombuffer(data, dtype=dtype, count=count, offset=(values.offset + start) * dtype.itemsize)
    return view


def to_numpy(stream: _seqwin.ArrowStream) -> dict[str, np.ndarray]:
    """One Arrow batch (a C stream from Rust) as numpy arrays: a
    ``fixed_size_list`` column of ``rows`` lists of ``L`` becomes a
    ``(rows, L)`` view of its values buffer (no copy)."""
    batch = pa.RecordBatchReader.from_stream(stream).read_next_batch()
    out: dict[str, np.ndarray] = {}
    for name, col in zip(batch.schema.names, batch.columns):
        if pa.types.is_fixed_size_list(col.type):
            size = col.type.list_size
            a = None if col.null_count else _view(col.values, col.offset * size, len(col) * size)
            if a is not None:
                out[name] = a.reshape(len(col), size)
                continue
            values = col.flatten()
            out[name] = values.to_numpy(zero_copy_only=values.null_count == 0 and pa.types.is_primitive(values.type)).reshape(
                len(col), col.type.list_size
            )
        else:
            a = _view(col, 0, len(col))
            out[name] = a if a is not None else col.to_numpy(zero_copy_only=False)
    return out
