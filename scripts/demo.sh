#!/usr/bin/env bash
# Builds everything and serves the example guests on the embedded store:
#   http://127.0.0.1:8080/counter   session counter
#   http://127.0.0.1:8080/shop/...  login / cart / logout (see the README)
# Sessions are kept in target/demo/sessions. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-guests.sh
cargo build --release -p edge-session
exec target/release/edge-session serve --config guest/demo.toml "$@"
