"""seqwin on Spark: the Rust kernel runs on the executors through ``mapInArrow``.

``windows(df, tokens=..., seq_len=..., ...)`` returns a Spark DataFrame of
windows with the same rows ``seqwin run`` writes for the same data. Spark 4
cannot take Arrow fixed-size lists from Python, so ``input``, ``target`` and
the other per-position columns are ``array<int>`` (``array<bigint>`` for
``dtype="int64"`` or ``"uint32"``, ``array<tinyint>`` for ``loss_mask``)
holding exactly ``seq_len`` elements.

Each Spark partition is one input stream: with ``pack=True`` documents are
packed within a partition (and within a split), never across partitions —
``df.repartition(n)`` or ``coalesce`` first to choose how many packed streams
there are (for example ``df.repartition(64, "shard")``). Splits hash the
``id`` column exactly as ``seqwin run`` does, so a document lands in the same
split on the cluster and on a laptop; ``split`` therefore needs ``id``.

The executors need the seqwin wheel: ``spark-submit --py-files`` cannot ship
a compiled module, so install the wheel in the executors' Python (a packed
environment with ``--archives env.tar.gz#env`` and
``PYSPARK_PYTHON=./env/bin/python``, or the cluster's library mechanism).
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import pyarrow as pa

from . import Dtype, SplitSpec
from . import window_defaults
from . import windows as _windows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_LIST_TYPES = {"int32": pa.int32(), "uint16": pa.int32(), "int64": pa.int64(), "uint32": pa.int64()}


def _output_schema(
    df: DataFrame, tokens: str, dtype: str, columns: Sequence[str], id: str | None,
    carry: Sequence[str], split: SplitSpec | None,
) -> Any:
    from pyspark.sql import types as T

    fields = {f.name: f for f in df.schema.fields}
    for name in [tokens, id, *carry]:
        if name is not None and name not in fields:
            raise ValueError(f"column {name!r} not found; available columns: {', '.join(fields)}")
    element = T.LongType() if _LIST_TYPES[dtype] == pa.int64() else T.IntegerType()
    out = [
        T.StructField("input", T.ArrayType(element, False), False),
        T.StructField("target", T.ArrayType(element, False), False),
    ]
    extra: dict[str, Any] = {
        "doc_id": fields[id].dataType if id is not None else T.LongType(),
        "start": T.LongType(),
        "loss_mask": T.ArrayType(T.ByteType(), False),
        "position_ids": T.ArrayType(T.IntegerType(), False),
        "segment_ids": T.ArrayType(T.IntegerType(), False),
    }
    for c in columns:
        if c not in extra:
            raise ValueError(f"unknown extra column {c!r}; expected one of {', '.join(extra)}")
        out.append(T.StructField(c, extra[c], True))
    for c in carry:
        out.append(T.StructField(c, fields[c].dataType, True))
    if split is not None:
        out.append(T.StructField("split", T.StringType(), False))
    return T.StructType(out)


def windows(
    df: DataFrame,
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
) -> DataFrame:
    """Windows a Spark DataFrame on its executors (see the module docs).

    Arguments are those of :func:`seqwin.windows` (options left at ``None``
    take :func:`seqwin.window_defaults`). Returns a DataFrame with
    ``input``, ``target``, the requested ``columns``, the carried columns and,
    with ``split``, a ``split`` string column — ready for
    ``.write.partitionBy("split").parquet(path)``.
    """
    defaults = window_defaults()
    if dtype is None:
        dtype = defaults["dtype"]
    if columns is None:
        columns = defaults["columns"]
    if dtype not in _LIST_TYPES:
        raise ValueError(f"dtype must be one of {', '.join(_LIST_TYPES)}, got {dtype!r}")
    if split is not None and id is None:
        raise ValueError(
            "split needs an id column on Spark: without one, documents would be numbered per partition"
        )
    columns, carry = list(columns), list(carry)
    kwargs: dict[str, Any] = dict(
        tokens=tokens, seq_len=seq_len, stride=stride, pack=pack, separator=separator,
        remainder=remainder, pad_id=pad_id, ignore_index=ignore_index, dtype=dtype,
        vocab_size=vocab_size, columns=columns, id=id, carry=carry, split=split,
    )
    schema = _output_schema(df, tokens, dtype, columns, id, carry, split)
    needed = list(dict.fromkeys([tokens, *([id] if id is not None else []), *carry]))
    # Check every argument on the driver (SeqwinError naming the key) rather
    # than in each task: window an empty table of the input's schema.
    from pyspark.sql.pandas.types import to_arrow_schema

    _windows(to_arrow_schema(df.select(*needed).schema).empty_table(), **kwargs)

    def run_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark.sql.pandas.types import to_arrow_schema

        target = to_arrow_schema(schema)
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return
        reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
        for batch in _windows(reader, stream=True, **kwargs):
            # fixed_size_list -> list (Spark's array), other types as Spark expects.
            arrays = [batch.column(f.name).cast(f.type) for f in target]
            yield pa.RecordBatch.from_arrays(arrays, schema=target)

    return df.select(*needed).mapInArrow(run_partition, schema)
