#!/usr/bin/env bash
# Checks the declared MSRV (`rust-version` in Cargo.toml) against the lock
# file: fails when the two workspace crates disagree, or when any locked
# package (every feature, every platform) declares a `rust-version` newer than
# ours. Only one toolchain is installed here, so this and clippy's
# `incompatible_msrv` lint (std APIs newer than rust-version, in .ci/run) are
# the MSRV checks; a build with the MSRV toolchain itself is not run.
set -euo pipefail
cd "$(dirname "$0")/.."
meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
cargo metadata --format-version 1 --locked --all-features > "$meta"
python3 - "$meta" <<'EOF'
import json
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


with open(sys.argv[1]) as f:
    meta = json.load(f)
members = set(meta["workspace_members"])
ours = {p["name"]: p.get("rust_version") for p in meta["packages"] if p["id"] in members}
declared = set(ours.values())
if len(declared) != 1 or None in declared:
    sys.exit(f"check-msrv: the workspace crates must declare one rust-version, found {ours}")
msrv = declared.pop()
deps = [p for p in meta["packages"] if p["id"] not in members and p.get("rust_version")]
newer = sorted(
    "{} {} needs Rust {}".format(p["name"], p["version"], p["rust_version"])
    for p in deps
    if version(p["rust_version"]) > version(msrv)
)
if newer:
    sys.exit(
        f"check-msrv: locked dependencies need a newer Rust than rust-version = {msrv}:\n  "
        + "\n  ".join(newer)
    )
need, name = max((version(p["rust_version"]), p["name"]) for p in deps)
print(
    f"check-msrv: rust-version {msrv} is allowed by all {len(meta['packages']) - len(members)} "
    f"locked packages ({len(deps)} declare one; the highest, {name}, needs {need[0]}.{need[1]})"
)
EOF
