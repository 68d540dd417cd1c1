"""seqwin: next-token-prediction windows from tokenized Arrow and Parquet data.

The functions here run the same Rust code as the ``seqwin`` command line:

- :func:`windows` windows any Arrow data (pyarrow Table or RecordBatchReader,
  Polars DataFrame, DuckDB result — anything with ``__arrow_c_stream__``);
- :func:`assign_split` gives the split ``seqwin run`` puts each document in;
- :func:`run` is ``seqwin run PIPELINE``;
- :class:`WindowDataset` is a map-style dataset over a seqwin output
  directory for PyTorch's ``DataLoader`` (seqwin does not import torch);
- :mod:`seqwin.spark` runs the kernel on Spark executors (``mapInArrow``).

pyarrow and numpy are imported when first needed, so the ``seqwin`` command
line (``python -m seqwin``, the wheel's console script) runs without them.
"""
import json

from . import _seqwin
from ._seqwin import SeqwinError, __version__

__all__ = ["windows", "assign_split", "run", "WindowDataset", "SeqwinError", "__version__"]


def __getattr__(name):
    # WindowDataset imports numpy and pyarrow: only when asked for.
    if name == "WindowDataset":
        from .dataset import WindowDataset

        return WindowDataset
    raise AttributeError(f"module 'seqwin' has no attribute {name!r}")


def _split_config(split):
    """``{"fractions": {...}, "seed": 0}`` or a bare fractions mapping."""
    if split is None:
        return None
    if "fractions" in split:
        return {"fractions": dict(split["fractions"]), "seed": int(split.get("seed", 0))}
    return {"fractions": dict(split), "seed": 0}


def _config(*, tokens, seq_len, stride, pack, separator, remainder, pad_id, ignore_index,
            dtype, vocab_size, columns, id, carry, split):
    """The JSON the Rust side reads: the pipeline file's keys."""
    w = {
        "seq_len": seq_len,
        "pack": pack,
        "remainder": remainder,
        "pad_id": pad_id,
        "ignore_index": ignore_index,
        "dtype": dtype,
        "columns": list(columns),
    }
    for key, value in (("stride", stride), ("separator", separator), ("vocab_size", vocab_size)):
        if value is not None:
            w[key] = value
    return json.dumps(
        {"tokens": tokens, "id": id, "carry": list(carry), "windows": w, "split": _split_config(split)}
    )


def _arrow_stream(data):
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if hasattr(data, "arrow"):  # older DuckDB relations
        return data.arrow()
    raise TypeError(
        "seqwin.windows expects Arrow data: a pyarrow Table or RecordBatchReader, a Polars "
        f"DataFrame, a DuckDB result or any object with __arrow_c_stream__; got {type(data).__name__}"
    )


def windows(data, *, tokens, seq_len, stride=None, pack=False, separator=None, remainder="drop",
            pad_id=0, ignore_index=-100, dtype="int32", columns=(), id=None, carry=(),
            vocab_size=None, split=None, stream=False):
    """Cuts every document of ``data`` into ``input``/``target`` windows.

    Same semantics and checks as the pipeline's ``windows:`` section (SPEC §3).
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
    """
    import pyarrow as pa

    config = _config(
        tokens=tokens, seq_len=seq_len, stride=stride, pack=pack, separator=separator,
        remainder=remainder, pad_id=pad_id, ignore_index=ignore_index, dtype=dtype,
        vocab_size=vocab_size, columns=columns, id=id, carry=carry, split=split,
    )
    reader = pa.RecordBatchReader.from_stream(_seqwin.windows(_arrow_stream(data), config))
    if stream:
        return reader
    try:
        return reader.read_all()
    except pa.ArrowException as e:
        err = SeqwinError(str(e).removeprefix("External error: "))
        err.exit_code = 2
        raise err from None


def assign_split(ids, fractions, seed=0):
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


def run(pipeline_path, overrides=None, threads=None):
    """Runs a pipeline file like ``seqwin run``; returns the manifest (a dict).

    ``overrides`` maps dotted keys to values (``{"windows.seq_len": 64}``) or
    is a list of ``"KEY=VALUE"`` strings, like ``--set``.
    """
    if overrides is None:
        sets = []
    elif isinstance(overrides, dict):
        sets = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    else:
        sets = list(overrides)
    return json.loads(_seqwin.run(str(pipeline_path), sets, threads))
