"""The wheel is the whole install: built by maturin, installed alone (no
dependencies, no Rust) into a clean virtualenv, its ``seqwin`` console script
behaves as the cargo-built binary and writes byte-identical datasets."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import venv
import zipfile

import pytest

from conftest import ROOT, seqwin_bin

QUICKSTART = ROOT / "pipelines" / "quickstart.yaml"


def _maturin():
    beside = pathlib.Path(sys.executable).parent / "maturin"
    found = str(beside) if beside.exists() else shutil.which("maturin")
    if found is None:
        pytest.fail("maturin is not installed (tests/python/requirements.txt)")
    return found


@pytest.fixture(scope="module")
def clean_env(tmp_path_factory):
    """A new virtualenv (no system site-packages) with only the seqwin wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "wheels"
    # Debug build (as `maturin develop` in scripts/test.sh), sharing target/.
    subprocess.run(
        [_maturin(), "build", "--locked", "-q", "-m", str(ROOT / "python" / "Cargo.toml"),
         "--out", str(wheels)],
        check=True, cwd=ROOT,
    )
    (wheel,) = wheels.glob("seqwin-*.whl")
    assert "-abi3-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {"seqwin/py.typed", "seqwin/_seqwin.pyi", "seqwin/__main__.py"} <= names
        entry_points = z.read("seqwin-0.1.0.dist-info/entry_points.txt").decode()
        assert "seqwin=seqwin.__main__:main" in entry_points.replace(" ", ""), entry_points
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
         "--no-deps", str(wheel)],
        check=True,
    )
    return env_dir


def _env():
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def _script(clean_env, *args, cwd=None):
    return subprocess.run([str(clean_env / "bin" / "seqwin"), *args], capture_output=True,
                          text=True, cwd=cwd, env=_env())


def _binary(*args, cwd=None):
    return subprocess.run([seqwin_bin(), *args], capture_output=True, text=True, cwd=cwd,
                          env=_env())


def test_the_venv_is_clean(clean_env):
    """Only the wheel: pyarrow and numpy are absent, so the CLI needs neither."""
    python = str(clean_env / "bin" / "python")
    for module in ("pyarrow", "numpy"):
        out = subprocess.run([python, "-c", f"import {module}"], capture_output=True, env=_env())
        assert out.returncode == 1, module
    out = subprocess.run([python, "-c", "import seqwin; print(seqwin.__version__)"],
                         capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr


def test_version_and_usage_match_the_binary(clean_env):
    out = _script(clean_env, "--version")
    assert (out.returncode, out.stdout, out.stderr) == (0, "seqwin 0.1.0\n", "")
    for args, code in [
        (["--version"], 0),
        (["check", "--help"], 0),
        (["frobnicate"], 2),
        (["run"], 2),
        (["run", "missing.yaml"], 2),
        (["inspect", "nowhere"], 2),
    ]:
        mine, theirs = _script(clean_env, *args), _binary(*args)
        assert mine.returncode == code, (args, mine.stderr)
        assert (mine.returncode, mine.stdout, mine.stderr) == (
            theirs.returncode, theirs.stdout, theirs.stderr), args
    out = subprocess.run([str(clean_env / "bin" / "python"), "-m", "seqwin", "--version"],
                         capture_output=True, text=True, env=_env())
    assert (out.returncode, out.stdout) == (0, "seqwin 0.1.0\n")


def test_check_matches_the_binary(clean_env):
    mine, theirs = _script(clean_env, "check", str(QUICKSTART)), _binary("check", str(QUICKSTART))
    assert mine.returncode == 0, mine.stderr
    assert (mine.stdout, mine.stderr) == (theirs.stdout, theirs.stderr)
    assert mine.stdout.startswith(f"{QUICKSTART}: ok\n")
    mine = _script(clean_env, "check", str(QUICKSTART), "--json")
    theirs = _binary("check", str(QUICKSTART), "--json")
    assert mine.returncode == 0 and json.loads(mine.stdout) == json.loads(theirs.stdout)


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _comparable_manifest(path):
    m = json.loads(path.read_text())
    del m["elapsed_seconds"]
    del m["config"]["sink"]["path"]
    return m


def test_run_writes_the_same_dataset_as_the_binary(clean_env, tmp_path):
    a, b = tmp_path / "wheel", tmp_path / "cargo"
    mine = _script(clean_env, "run", str(QUICKSTART), "--set", f"sink.path={a}")
    theirs = _binary("run", str(QUICKSTART), "--set", f"sink.path={b}")
    assert mine.returncode == 0, mine.stderr
    assert theirs.returncode == 0, theirs.stderr
    assert mine.stdout == ""
    assert mine.stderr.startswith(f"seqwin: wrote 447 windows (12 padded) to {a} in 2 file(s)")
    files = _files(a)
    assert files == _files(b)
    assert "_SUCCESS" in files and "_seqwin.json" in files
    assert "split=train/part-00000.parquet" in files
    for name in files:
        if name == "_seqwin.json" or name.startswith("_seqwin_log/"):
            assert _comparable_manifest(a / name) == _comparable_manifest(b / name), name
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # Exit code 2 for a non-empty sink under mode: error, nothing touched.
    again = _script(clean_env, "run", str(QUICKSTART), "--set", f"sink.path={a}",
                    "--set", "sink.mode=error")
    assert again.returncode == 2
    assert again.stderr.startswith("seqwin: error: ")
    assert _files(a) == files
    # The console script verifies what it wrote.
    out = _script(clean_env, "inspect", str(a), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verified"]["files"] == 2
