"""Type stubs of ``seqwin._seqwin``, the Rust extension (python/src/lib.rs)."""
import os
from typing import Callable, Any, Iterable, Sequence

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
