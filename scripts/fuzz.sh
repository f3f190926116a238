#!/usr/bin/env bash
# Fuzzes the host's session id and cookie parsing and its JSON field
# operations (the targets in fuzz/) for a bounded time each; fails on the
# first crash, which libFuzzer saves under fuzz/artifacts/<target>/ (cargo
# fuzz prints the command that replays it).
# Usage: scripts/fuzz.sh [SECONDS per target, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"

scripts/setup.sh
# 0.13.2 is the newest cargo-fuzz.
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Stable Rust: the only nightly flag cargo-fuzz passes is -Zsanitizer=address,
# which --sanitizer none drops; its coverage instrumentation (-Cpasses=sancov-module,
# -Cllvm-args) is stable. AddressSanitizer would add little: the fuzzed code is
# safe Rust. --debug-assertions makes integer overflow a crash. cargo-fuzz
# builds optimized by default, and without the host's `runtime` feature
# (fuzz/Cargo.toml), so wasmtime and the server are not compiled.
flags=(--sanitizer none --debug-assertions)

# One build for all targets, so shared dependencies compile once.
cargo fuzz build "${flags[@]}"
for target in $(cargo fuzz list); do
    options=(-max_total_time="$seconds")
    # Tokens random bytes rarely spell, such as the cookie names.
    if [[ -f fuzz/dicts/$target.dict ]]; then
        options+=(-dict="fuzz/dicts/$target.dict")
    fi
    echo "fuzzing $target for ${seconds}s"
    # Drop libFuzzer's line per new input; keep its status lines and any crash.
    cargo fuzz run "${flags[@]}" "$target" -- "${options[@]}" 2>&1 |
        grep --line-buffered -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE) '
done
