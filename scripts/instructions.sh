#!/usr/bin/env bash
# Counts the instructions the host process executes per request, with
# valgrind's callgrind: a figure that does not move with the machine's load,
# so two builds compare exactly (docs/performance.md quotes it).
# Usage: scripts/instructions.sh [HOST_BINARY] [REQUESTS]
#   HOST_BINARY  default target/release/edge-session (build it first)
#   REQUESTS     keep-alive requests counted per route, default 300
# Prints instructions per request for `hello` (no sessions) and `counter`
# (one session read and incremented per request), each after a warm-up, and
# per guest→host call: the test guest's `/calls?n=N` reads a session field
# N times, so the difference between N = 200 and N = 0, over 200, is one
# call (the bench's `calls` row, in instructions).
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(realpath "${1:-target/release/edge-session}")
requests=${2:-300}
guests=$(realpath target/wasm32-wasip2/guest)
for tool in valgrind callgrind_control curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found (apt-get install valgrind curl)" >&2
        exit 1
    fi
done
for guest in hello counter faulty; do
    if [[ ! -f $guests/$guest.wasm ]]; then
        echo "error: $guests/$guest.wasm is missing: run scripts/build-guests.sh" >&2
        exit 1
    fi
done

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/edge.toml" <<EOF
[engine]
cache_dir = "$work/cache"
# valgrind cannot reserve the address space of the default pool.
max_instances = 4

[store.embedded]
path = "$work/sessions"

[[routes]]
prefix = "/hello"
component = "$guests/hello.wasm"
max_concurrency = 2

[[routes]]
prefix = "/counter"
component = "$guests/counter.wasm"
namespace = "counter"
max_concurrency = 2

[[routes]]
prefix = "/faulty"
component = "$guests/faulty.wasm"
namespace = "faulty"
max_concurrency = 2

[routes.cookie]
secure = false
EOF

# Instrumentation starts off, so that start-up (compiling the guests) is
# not counted; it is switched on around each route's counted requests.
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$work/callgrind.%p" \
    "$host" serve --listen 127.0.0.1:0 --config "$work/edge.toml" \
    >"$work/stdout" 2>"$work/valgrind.log" &
pid=$!
for _ in $(seq 600); do
    address=$(sed -n 's|^listening on http://||p' "$work/stdout")
    [[ -n $address ]] && break
    sleep 0.5
done
if [[ -z ${address:-} ]]; then
    echo "error: the host did not start; its log:" >&2
    cat "$work/valgrind.log" >&2
    exit 1
fi

# `count ROUTE N`: N requests on one keep-alive connection, cookies kept.
count() {
    local urls=()
    for _ in $(seq "$2"); do
        urls+=(-o /dev/null "http://$address$1")
    done
    curl -sf -c "$work/jar" -b "$work/jar" "${urls[@]}"
}

# `measure ROUTE N`: instructions per request over N requests to ROUTE.
measure() {
    count "$1" 20
    callgrind_control -i on "$pid" >/dev/null 2>&1
    callgrind_control -z "$pid" >/dev/null 2>&1
    count "$1" "$2"
    callgrind_control --dump="$1" "$pid" >/dev/null 2>&1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    local dump
    dump=$(grep -lxF "desc: Trigger: dump $1" "$work"/callgrind.*)
    echo $(($(sed -n 's/^summary: *//p' "$dump") / $2))
}

for route in /hello /counter; do
    echo "$route: $(measure "$route" "$requests") instructions per request"
done
calls=200
without=$(measure "/faulty/calls?n=0" 50)
with=$(measure "/faulty/calls?n=$calls" 50)
echo "one guest→host call: $(((with - without) / calls)) instructions"
