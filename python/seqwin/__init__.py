"""seqwin: next-token-prediction windows from tokenized Arrow and Parquet data.

The functions here run the same Rust code as the ``seqwin`` command line:

- :func:`windows` windows any Arrow data (pyarrow Table or RecordBatchReader,
  Polars DataFrame, DuckDB result — anything with ``__arrow_c_stream__``);
- :func:`assign_split` gives the split ``seqwin run`` puts each document in;
- :func:`run` is ``seqwin run PIPELINE``;
- :class:`WindowDataset` is a map-style dataset over a seqwin output
  directory for PyTorch's ``DataLoader`` (seqwin does not import torch);
- :mod:`seqwin.spark` runs the kernel on Spark executors (``mapInArrow``).

Errors: :class:`SeqwinError` (a ``ValueError``) for a bad configuration,
bad arguments or bad data — the CLI's exit code 2 — and
:class:`SeqwinIOError` (an ``OSError``) for I/O and every other failure
(exit code 1); both carry ``.exit_code``. Streams returned with
``stream=True`` raise them too, while being read.

pyarrow and numpy are imported when first needed, so the ``seqwin`` command
line (``python -m seqwin``, the wheel's console script) runs without them.
"""
from __future__ import annotations

import json
import os
from typing import (
    TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Mapping, NoReturn, Sequence,
)

from . import _seqwin
from ._seqwin import SeqwinError, SeqwinIOError, __version__

if TYPE_CHECKING:
    import pyarrow as pa

    from .dataset import WindowDataset
    from .loader import Loader, Mix

__all__ = [
    "windows",
    "assign_split",
    "run",
    "window_defaults",
    "WindowDataset",
    "Loader",
    "Mix",
    "SeqwinError",
    "SeqwinIOError",
    "__version__",
]

#: ``{"fractions": {"train": 0.9, "val": 0.1}, "seed": 0}`` or a bare fractions mapping.
SplitSpec = Mapping[str, Any]
#: Output token types.
Dtype = Literal["int32", "int64", "uint16", "uint32"]


def __getattr__(name: str) -> Any:
    # WindowDataset imports numpy and pyarrow: only when asked for.
    if name == "WindowDataset":
        from .dataset import WindowDataset

        return WindowDataset
    # The trainer-side loader imports numpy (and pyarrow for local files).
    if name in ("Loader", "Mix"):
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'seqwin' has no attribute {name!r}")


def _split_config(split: SplitSpec | None) -> dict[str, Any] | None:
    """``{"fractions": {...}, "seed": 0}`` or a bare fractions mapping."""
    if split is None:
        return None
    if "fractions" in split:
        return {"fractions": dict(split["fractions"]), "seed": int(split.get("seed", 0))}
    return {"fractions": dict(split), "seed": 0}


def window_defaults() -> dict[str, Any]:
    """Every ``windows:`` option with its default (``None`` where it has none),
    as the Rust side defines them: the keyword options of :func:`windows` and
    :func:`seqwin.spark.windows` are these keys, and an option left at
    ``None`` takes this default."""
    defaults: dict[str, Any] = json.loads(_seqwin.window_defaults())
    return defaults


def _config(
    *, tokens: str, options: Mapping[str, Any], id: str | None, carry: Iterable[str],
    split: SplitSpec | None,
) -> str:
    """The JSON the Rust side reads: the pipeline file's keys, only those
    given (the Rust side fills in the defaults)."""
    w = {k: (list(v) if k == "columns" else v) for k, v in options.items() if v is not None}
    return json.dumps(
        {"tokens": tokens, "id": id, "carry": list(carry), "windows": w, "split": _split_config(split)}
    )


def _arrow_stream(data: Any) -> Any:
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if hasattr(data, "arrow"):  # older DuckDB relations
        return data.arrow()
    raise TypeError(
        "seqwin.windows expects Arrow data: a pyarrow Table or RecordBatchReader, a Polars "
        f"DataFrame, a DuckDB result or any object with __arrow_c_stream__; got {type(data).__name__}"
    )


def _raise_from_stream(handle: _seqwin.ArrowStream, e: Exception) -> NoReturn:
    """Re-raises a failure of the window stream as seqwin's own exception
    (pyarrow only sees its message); a failure of the input stream as is."""
    err = handle.error()
    if err is None:
        raise e
    raise err from None


def _checked(reader: pa.RecordBatchReader, handle: _seqwin.ArrowStream) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    try:
        yield from reader
    except pa.ArrowException as e:
        _raise_from_stream(handle, e)


def windows(
    data: Any,
    *,
    tokens: str,
    seq_len: int,
    stride: int | None = None,
    pack: bool | None = None,
    separator: int | None = None,
    remainder: Literal["drop", "pad"] | None = None,
    pad_id: int | None = None,
    ignore_index: int | None = None,
    dtype: Dtype | None = None,
    columns: Sequence[str] | None = None,
    id: str | None = None,
    carry: Sequence[str] = (),
    vocab_size: int | None = None,
    split: SplitSpec | None = None,
    stream: bool = False,
) -> pa.Table | pa.RecordBatchReader:
    """Cuts every document of ``data`` into ``input``/``target`` windows.

    Same semantics, checks and defaults as the pipeline's ``windows:`` section
    (docs/format.md §1): an option left at ``None`` takes the default
    :func:`window_defaults` reports.
    ``tokens`` names a list-of-integers column (one document per row) or a
    plain integer column (a flat stream; with ``id``, runs of equal ids are
    documents). ``columns`` adds ``doc_id``, ``start``, ``loss_mask``,
    ``position_ids``, ``segment_ids``; ``carry`` copies columns onto every
    window. ``split`` (``{"fractions": {"train": 0.9, "val": 0.1}, "seed": 0}``)
    adds a ``split`` column with the CLI's hash of the ``id`` column (the row
    ordinal without ``id``); with ``pack`` each split is packed on its own.

    Returns a ``pyarrow.Table``, or with ``stream=True`` a
    ``pyarrow.RecordBatchReader`` that windows the input batch by batch
    (bounded memory for large inputs). The input is read through the Arrow C
    stream interface without a copy; each window's tokens are copied once,
    into the output's ``input``/``target`` buffers.

    Raises :class:`SeqwinError` for bad arguments or data (while reading
    the stream, with ``stream=True``), ``TypeError`` for ``data`` that is not
    Arrow data.
    """
    import pyarrow as pa

    options = dict(
        seq_len=seq_len, stride=stride, pack=pack, separator=separator, remainder=remainder,
        pad_id=pad_id, ignore_index=ignore_index, dtype=dtype, vocab_size=vocab_size,
        columns=columns,
    )
    config = _config(tokens=tokens, options=options, id=id, carry=carry, split=split)
    handle = _seqwin.windows(_arrow_stream(data), config)
    reader = pa.RecordBatchReader.from_stream(handle)
    if stream:
        return pa.RecordBatchReader.from_batches(reader.schema, _checked(reader, handle))
    try:
        return reader.read_all()
    except pa.ArrowException as e:
        _raise_from_stream(handle, e)


def assign_split(ids: Iterable[int | str] | Any, fractions: Mapping[str, float], seed: int = 0) -> list[str]:
    """The split ``seqwin run`` assigns each document id to (list of names).

    ``ids`` is any iterable of integers or strings (a list, a numpy array, a
    pyarrow or Polars column); ``fractions`` maps split names to fractions
    summing to 1, as ``split.fractions`` in a pipeline.
    """
    if hasattr(ids, "to_pylist"):
        ids = ids.to_pylist()
    elif hasattr(ids, "to_list"):
        ids = ids.to_list()
    elif hasattr(ids, "tolist"):
        ids = ids.tolist()
    return _seqwin.assign_split(ids, json.dumps({"fractions": dict(fractions), "seed": int(seed)}))


def run(
    pipeline_path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    threads: int | None = None,
    progress: bool | Callable[[int, int], object] | None = None,
) -> dict[str, Any]:
    """Runs a pipeline file like ``seqwin run``; returns the manifest (a dict).

    ``overrides`` maps dotted keys to values (``{"windows.seq_len": 64}``) or
    is a list of ``"KEY=VALUE"`` strings, like ``--set``. ``progress``: a
    progress bar of the rows read (``tqdm.auto`` when installed — a widget in
    a notebook — else one line on stderr); ``None`` shows it when stderr is a
    terminal or in a Jupyter notebook; a callable gets ``(rows_done,
    rows_total)`` instead. Ctrl-C (KeyboardInterrupt) cancels the run: it
    cleans up like an interrupted ``seqwin run`` (no staging directory, no
    lock, a previous dataset at the sink intact) and the KeyboardInterrupt
    propagates. Raises :class:`SeqwinError` (bad config or data, nothing
    written) or :class:`SeqwinIOError` (a write failed; nothing is left at the
    sink).
    """
    if overrides is None:
        sets: list[str] = []
    elif isinstance(overrides, Mapping):
        sets = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    else:
        sets = list(overrides)
    callback = _progress_callback(progress)
    manifest: dict[str, Any] = json.loads(
        _seqwin.run(os.fspath(pipeline_path), sets, threads, callback)
    )
    return manifest


def _in_notebook() -> bool:
    import sys

    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _progress_callback(
    progress: bool | Callable[[int, int], object] | None,
) -> Callable[[int, int], object] | None:
    """What :func:`run` calls with ``(rows_done, rows_total)``, if anything."""
    import sys

    if callable(progress):
        return progress
    if progress is None:
        progress = sys.stderr.isatty() or _in_notebook()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    bar: Any = None

    def show(rows: int, total: int) -> None:
        nonlocal bar
        if tqdm is not None:
            if bar is None:
                bar = tqdm(total=total, unit="rows", desc="seqwin run")
            bar.total = total
            bar.n = rows
            bar.refresh()
            if rows >= total:
                bar.close()
        else:
            end = "\n" if rows >= total else ""
            sys.stderr.write(f"\rseqwin run: {rows}/{total} rows{end}")
            sys.stderr.flush()

    return show
