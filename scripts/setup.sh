#!/usr/bin/env bash
# Installs what building edge-session needs beyond a Rust toolchain:
# the wasm32-wasip2 target for the guest components. Safe to run again.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "error: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
