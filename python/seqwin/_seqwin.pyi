"""Type stubs of ``seqwin._seqwin``, the Rust extension (python/src/lib.rs)."""
import os
from typing import Any, Callable, Iterable, Sequence, final

__version__: str

class SeqwinError(ValueError):
    """Bad configuration, arguments or input data (``exit_code`` 2)."""

    exit_code: int

class SeqwinIOError(OSError):
    """An I/O or other failure that is not the input's fault (``exit_code`` 1)."""

    exit_code: int

class ArrowStream:
    """A window stream, handed to pyarrow once through ``__arrow_c_stream__``."""

    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any: ...
    def error(self) -> SeqwinError | SeqwinIOError | None: ...

def windows(data: Any, config_json: str) -> ArrowStream: ...
def assign_split(ids: Iterable[int | str], split_json: str) -> list[str]: ...
def run(
    pipeline_path: str | os.PathLike[str],
    overrides: Sequence[str],
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> str: ...
def main(argv: Sequence[str]) -> int: ...
def window_defaults() -> str: ...

# The trainer-side readers (python/src/loader.rs). ``storage_options`` are the
# pipeline's storage options (a dict of strings); paths are relative to ``root``,
# a local directory or an object-store URL.

@final
class RowGroupReader:
    """The Parquet files ``root/name`` of a seqwin dataset, opened once."""

    def __init__(
        self, root: str, names: Sequence[str], storage_options: dict[str, str] | None = None
    ) -> None: ...
    def row_group_rows(self) -> list[list[int]]:
        """Rows of every row group, per file."""
    def key_value_metadata(self) -> dict[str, str]:
        """The key-value metadata of the first file (the ``seqwin.*`` keys)."""
    def read(
        self, row_groups: Sequence[tuple[int, int]], columns: Sequence[str], threads: int = 1
    ) -> ArrowStream:
        """Decodes ``columns`` of ``(file, row group)`` pairs into one batch."""
    def prefetch(
        self,
        blocks: Sequence[Sequence[tuple[int, int]]],
        columns: Sequence[str],
        ahead: int,
        threads: int = 1,
    ) -> Prefetch:
        """Decodes ``blocks`` in order on a background thread, ``ahead`` (>= 1) blocks ahead."""

@final
class Prefetch:
    """Blocks decoded ahead by a background thread, in order."""

    def next(self) -> ArrowStream | None:
        """The next block (an Arrow C stream of one batch), ``None`` after the last."""

def read_dataset_file(root: str, name: str, storage_options: dict[str, str] | None = None) -> bytes: ...
