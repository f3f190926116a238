#!/usr/bin/env bash
# Builds the guest components (example handlers and test guests) into
# target/wasm32-wasip2/guest/*.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --profile guest --target wasm32-wasip2 \
    -p counter -p cart -p faulty -p hello
