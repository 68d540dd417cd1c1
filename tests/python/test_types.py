"""The package's types (``mypy --strict`` on python/seqwin, with the
extension's stub ``_seqwin.pyi`` and ``py.typed``) and its exceptions:
``SeqwinError`` (a ValueError, exit code 2) for bad config or data,
``SeqwinIOError`` (an OSError, exit code 1) for I/O, on every path —
streaming included."""
import os
import pathlib
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import seqwin
from conftest import ROOT

PACKAGE = ROOT / "python"


def _mypy(*args, cwd):
    # No cache: nothing is written into the source tree.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         "--config-file", str(PACKAGE / "pyproject.toml"), *args],
        capture_output=True, text=True, cwd=cwd,
    )


def test_mypy_strict_on_the_package():
    out = _mypy("seqwin", cwd=PACKAGE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (PACKAGE / "seqwin" / "py.typed").exists()


def test_mypy_catches_wrong_calls(tmp_path):
    """The hints reach a user's code: a wrong argument type is an error."""
    user = tmp_path / "user.py"
    user.write_text(
        "import seqwin\n"
        "manifest: dict[str, object] = seqwin.run('p.yaml', {'windows.seq_len': 64}, threads=2)\n"
        "names: list[str] = seqwin.assign_split([1, 'a'], {'train': 1.0})\n"
        "seqwin.windows(None, tokens='tokens', seq_len='16')\n"
        "seqwin.windows(None, tokens='tokens', seq_len=16, dtype='int8')\n"
        "code: int = seqwin.SeqwinError('x').exit_code\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         "--follow-imports=silent", str(user)],
        capture_output=True, text=True, cwd=tmp_path,
        env={"MYPYPATH": str(PACKAGE), "PATH": "/usr/bin:/bin"},
    )
    errors = [l for l in out.stdout.splitlines() if ": error:" in l]
    assert [e.split(":")[1] for e in errors] == ["4", "5"], out.stdout


def test_exception_hierarchy():
    assert issubclass(seqwin.SeqwinError, ValueError)
    assert issubclass(seqwin.SeqwinIOError, OSError)
    assert not issubclass(seqwin.SeqwinIOError, ValueError)
    assert not issubclass(seqwin.SeqwinError, OSError)


def _docs(tokens_per_doc):
    return pa.table({"tokens": pa.array(tokens_per_doc, pa.list_(pa.int32()))})


def test_bad_data_raises_seqwin_error_while_streaming():
    # The second batch holds a token outside the vocabulary: the error comes
    # while the stream is read, as SeqwinError (not a pyarrow error).
    good, bad = _docs([list(range(20))]), _docs([[1, 2, 99, 3] * 5])
    reader = pa.RecordBatchReader.from_batches(good.schema, good.to_batches() + bad.to_batches())
    out = seqwin.windows(reader, tokens="tokens", seq_len=4, vocab_size=50, stream=True)
    assert isinstance(out, pa.RecordBatchReader)
    first = out.read_next_batch()
    assert first.num_rows == 4
    with pytest.raises(seqwin.SeqwinError, match="vocab_size") as e:
        out.read_next_batch()
    assert e.value.exit_code == 2
    assert not isinstance(e.value, pa.ArrowException)
    # Without stream=True the same error, the same class.
    reader = pa.RecordBatchReader.from_batches(good.schema, good.to_batches() + bad.to_batches())
    with pytest.raises(ValueError, match="vocab_size") as e:
        seqwin.windows(reader, tokens="tokens", seq_len=4, vocab_size=50)
    assert type(e.value) is seqwin.SeqwinError


def test_bad_arguments_raise_seqwin_error():
    with pytest.raises(seqwin.SeqwinError) as e:
        seqwin.windows(_docs([[1, 2, 3]]), tokens="tokens", seq_len=0)
    assert e.value.exit_code == 2
    with pytest.raises(seqwin.SeqwinError, match="available columns"):
        seqwin.windows(_docs([[1, 2, 3]]), tokens="ids", seq_len=2, stream=True)
    with pytest.raises(TypeError):
        seqwin.windows([1, 2, 3], tokens="tokens", seq_len=2)


def test_a_failing_input_stream_keeps_its_own_error():
    """A failure of the caller's input is not seqwin's: it is not turned
    into a SeqwinError."""
    schema = pa.schema([("tokens", pa.list_(pa.int32()))])

    def batches():
        yield from _docs([list(range(10))]).to_batches()
        raise RuntimeError("the input broke")

    out = seqwin.windows(pa.RecordBatchReader.from_batches(schema, batches()), tokens="tokens",
                         seq_len=4, stream=True)
    with pytest.raises(Exception, match="the input broke") as e:
        for _ in out:
            pass
    assert not isinstance(e.value, (seqwin.SeqwinError, seqwin.SeqwinIOError))


def test_run_raises_value_error_for_bad_config_and_os_error_for_io(tmp_path):
    pq.write_table(_docs([list(range(30))]), tmp_path / "c.parquet")
    p = tmp_path / "p.yaml"
    p.write_text("source: {path: c.parquet, tokens: tokens}\nwindows: {seq_len: 4}\nsink: {path: out}\n")
    with pytest.raises(ValueError) as e:
        seqwin.run(p, {"windows.seq_len": 0})
    assert type(e.value) is seqwin.SeqwinError and e.value.exit_code == 2
    # A regular file where the sink's parent directory should be: I/O, exit 1.
    (tmp_path / "blocker").write_text("")
    with pytest.raises(OSError) as e:
        seqwin.run(p, {"sink.path": "blocker/out"})
    assert type(e.value) is seqwin.SeqwinIOError and e.value.exit_code == 1
    assert "blocker" in str(e.value)
    assert seqwin.run(pathlib.Path(p))["totals"]["windows"] == 7  # starts 0, 4, …, 24
