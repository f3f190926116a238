#!/usr/bin/env bash
# Installs the Rust toolchain that rust-toolchain.toml pins, with its
# components and the wasm32-wasip2 target for the guest components. rustup
# would not install it by itself where RUSTUP_AUTO_INSTALL=0, so every script
# runs this first. Safe to run again: a toolchain already there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null; then
    echo "error: rustup not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
channel=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
if ! rustup run "$channel" rustc --print target-list >/dev/null 2>&1 ||
    ! rustup target list --installed --toolchain "$channel" | grep -qx wasm32-wasip2 ||
    ! rustup component list --installed --toolchain "$channel" | grep -q '^clippy'; then
    rustup toolchain install "$channel" --profile minimal \
        --component rustfmt,clippy --target wasm32-wasip2
fi
