#!/usr/bin/env bash
# Runs every test: Rust unit, property, doc and integration tests, the
# `polars` cargo feature's test, then the Python tests: consumers (pyarrow,
# numpy, Polars, DuckDB, HF datasets, PySpark) of a dataset written by the
# seqwin binary, the seqwin Python package (windows, assign_split, run,
# WindowDataset, seqwin.spark on a local[2] Spark), and object store sources
# and sinks against local emulators on 127.0.0.1: S3 (moto), Azure (Azurite)
# and GCS (fake-gcs-server, reads).
#
# Installs what the tests need: a virtualenv in .venv (git-ignored) with the
# pinned packages of tests/python/requirements.txt, and the seqwin Python
# package built from python/ by maturin into it; Azurite from npm (pinned by
# tests/emulators/package-lock.json) into tests/emulators/node_modules (git-
# ignored). PySpark needs a Java 17+ runtime (`java` on PATH); the script
# installs Debian's headless JRE if none.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "checking toolchains"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "python3 not found"; exit 1; }
if ! command -v java >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    step "installing a Java runtime for PySpark"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "java not found: PySpark tests need a Java 17+ runtime"; exit 1
  fi
fi

# A clean target/ (about 2.5 GB) plus .venv (6.8 GB with PyTorch) need about 10 GB; say so
# up front rather than fail halfway with ENOSPC.
avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail_kb:-0}" -lt $((11 * 1024 * 1024)) ]; then
  echo "warning: only $((avail_kb / 1024)) MB free on $(df -P . | awk 'NR==2 {print $6}'); the build and .venv need about 10 GB" >&2
fi

step "python test environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
REQ=tests/python/requirements.txt
STAMP=.venv/.requirements.sha
if [ ! -f "$STAMP" ] || [ "$(sha256sum "$REQ" | cut -d' ' -f1)" != "$(cat "$STAMP")" ]; then
  .venv/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check -r "$REQ"
  sha256sum "$REQ" | cut -d' ' -f1 > "$STAMP"
fi

step "Azure emulator for the az:// tests (Azurite: npm ci in tests/emulators)"
command -v npm >/dev/null || { echo "npm not found: the az:// tests run Azurite, which needs Node.js and npm"; exit 1; }
LOCK=tests/emulators/package-lock.json
NPM_STAMP=tests/emulators/node_modules/.lock.sha
if [ ! -f "$NPM_STAMP" ] || [ "$(sha256sum "$LOCK" | cut -d' ' -f1)" != "$(cat "$NPM_STAMP")" ]; then
  npm ci --prefix tests/emulators --no-audit --no-fund --loglevel=error
  sha256sum "$LOCK" | cut -d' ' -f1 > "$NPM_STAMP"
fi

step "cargo test"
cargo test --locked

step "python package: maturin develop (python/ -> .venv)"
# Shares target/ and the dependencies cargo test just built.
VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" .venv/bin/maturin develop --locked -q -m python/Cargo.toml

step "cargo test --features polars"
cargo test --locked --features polars --test polars

step "python tests"
# `cargo test` built target/debug/seqwin for the integration tests; a separate
# `cargo build` would recompile the dependencies without dev-dependency features.
test -x target/debug/seqwin
SEQWIN_BIN="$PWD/target/debug/seqwin" .venv/bin/python -m pytest -q -p no:cacheprovider tests/python
