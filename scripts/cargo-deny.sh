#!/usr/bin/env bash
# `cargo deny check` with deny.toml: licenses, bans (duplicates, wildcards) and
# sources. Installs the pinned cargo-deny from crates.io first when
# `cargo-deny --version` is not that version (a release build of a few minutes
# on 2 cores, once per machine: it stays in ~/.cargo/bin).
#
# `advisories` is not checked: the RustSec advisory database is fetched from
# GitHub, which this project's machines cannot reach, and no package registry
# carries it. Where GitHub is reachable: `cargo deny check advisories`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo-deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked)"
  cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION"
fi
# --locked: check exactly Cargo.lock; offline: the registry index is not needed.
cargo deny --locked --offline check licenses bans sources
