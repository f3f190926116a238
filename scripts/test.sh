#!/usr/bin/env bash
# The test suite, as CI runs it: formatting, lints, then every test
# (unit, store conformance, end-to-end over HTTP against the real binary).
# The Aerospike tests use the in-repo test server, or the real cluster named
# by AEROSPIKE_HOSTS (see docs/aerospike.md). The Redis tests start
# redis-server (installed here from apt when missing), or use the server
# named by REDIS_URL (see docs/redis.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null; then
    sudo=
    if [[ $(id -u) -ne 0 ]]; then
        sudo=sudo
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi

scripts/build-guests.sh
scripts/build-polyglot-guests.sh
scripts/wit-deps.sh

cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --all-targets -- -D warnings
# The host without the Aerospike and Redis backends (cargo features, on by
# default), and with Redis alone.
cargo clippy -p edge-session --no-default-features --features runtime --all-targets -- -D warnings
cargo clippy -p edge-session --no-default-features --features runtime,redis --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 -p edge-session-guest -p counter -p cart -p hello -p faulty -- -D warnings
cargo clippy -p componentize-c -- -D warnings
cargo clippy -p edge-session-bench --all-targets -- -D warnings
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

# The end-to-end tests run the binary, so build it first, together with
# the tests: one feature resolution for both, so nothing builds twice.
cargo build --all-targets
cargo test
cargo test -p edge-session --no-default-features --features runtime --lib

# Bounded fuzzing of the cookie/id parser and the JSON field operations.
scripts/fuzz.sh 30
