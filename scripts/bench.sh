#!/usr/bin/env bash
# The side-by-side benchmark (issue 6): builds the host, the guests and the
# bench in release, then measures each server on loopback with the same load
# generator and prints the table with ratios, twice. Options go to the bench,
# e.g. `scripts/bench.sh --duration 2s --passes 1 --rows 1,2`, or
# `scripts/bench.sh --passes 0 --rows none --sustained 2000000` for only the
# sustained writes (RSS, disk and restart time, issue 27); see
# `target/release/edge-session-bench run --help`.
# Installs redis-server (apt) for the Redis comparator row when missing.
# Set AEROSPIKE_HOSTS (and AEROSPIKE_NAMESPACE) to run the Aerospike row
# against a real cluster instead of the in-repo test server.
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
# Two builds: together, the bench's dependency features would be unified
# into the host's and rebuild it, unlike the host that scripts/demo.sh builds.
cargo build --release -p edge-session
cargo build --release -p edge-session-bench
exec target/release/edge-session-bench run "$@"
