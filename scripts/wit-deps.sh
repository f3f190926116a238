#!/usr/bin/env bash
# Fills wit/deps/ with the WASI packages (wasi:http and what it uses) from the
# wasmtime-wasi-http crate the host is built with, so that wit/handler.wit
# resolves with exactly the versions the host provides. wit/deps/ is
# generated, not committed.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
packages = json.load(sys.stdin)["packages"]
print(next(p["manifest_path"] for p in packages if p["name"] == "wasmtime-wasi-http"))
')
source_dir="$(dirname "$manifest")/wit/deps"
rm -rf wit/deps
mkdir -p wit/deps
cp "$source_dir"/*.wit wit/deps/
