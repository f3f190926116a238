#!/usr/bin/env bash
# Builds the example handlers written in Python, JavaScript and C into
# target/wasm32-wasip2/guest/{counter,cart}-{py,js,c}.wasm, and the spinning
# test guest of tests/guests/spin/ into spin-{py,js}.wasm, installing the
# pinned tools they need first:
# - Python: componentize-py (guest/python/requirements.txt) in a venv
#   under target/polyglot/;
# - JavaScript: componentize-js (guest/js/package-lock.json) by npm;
# - C: Debian's clang, lld and wasi-libc (apt, when missing), bindings and
#   componentization by tools/componentize-c (no wit-bindgen or wasm-tools
#   to install).
# A component is rebuilt only when one of its inputs is newer than it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/wit-deps.sh

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
out="$target/wasm32-wasip2/guest"
work="$target/polyglot"
mkdir -p "$out" "$work"
sudo=
if [[ $(id -u) -ne 0 ]]; then
    sudo=sudo
fi

# Whether the file $1 exists and no file under the other arguments is newer
# (bytecode that componentize-py leaves in __pycache__/ is no input).
fresh() {
    local output=$1
    shift
    [[ -f $output && -z $(find "$@" -name __pycache__ -prune -o -type f -newer "$output" -print -quit) ]]
}

# Runs a build step, printing what it builds and how long it took.
step() {
    local name=$1 start=$SECONDS
    shift
    echo "building $name"
    "$@"
    echo "built $name in $((SECONDS - start)) s"
}

# Python -------------------------------------------------------------------
venv="$work/venv"
if ! fresh "$venv/installed" guest/python/requirements.txt; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r guest/python/requirements.txt
    touch "$venv/installed"
fi
# $1: the module; $2: a directory of modules besides guest/python's.
build_python() {
    "$venv/bin/componentize-py" --quiet -d wit -w handler \
        componentize -p guest/python -p "$2" "$1" -o "$out/$1-py.wasm"
}
for app in counter:guest/python cart:guest/python spin:tests/guests/spin; do
    module=${app%%:*} dir=${app#*:}
    if ! fresh "$out/$module-py.wasm" guest/python "$dir" wit "$venv/installed"; then
        step "$module-py.wasm" build_python "$module" "$dir"
    fi
done

# JavaScript ---------------------------------------------------------------
# Installs the versions of package-lock.json as they are (--no-save); npm
# records what it installed in node_modules/.package-lock.json. Not `npm
# ci`: it refuses this lock file, because some optional platform-specific
# packages that the dependencies name were never published.
# package.json pins @bytecodealliance/preview2-shim 0.25.0: componentize-js
# 0.23 imports it without declaring it, and with the 0.26 that npm would
# otherwise pick it fails to read its own files.
if ! fresh guest/js/node_modules/.package-lock.json guest/js/package.json guest/js/package-lock.json; then
    (cd guest/js && npm install --no-save --no-audit --no-fund --loglevel=error)
fi
# $1: the module's file.
build_js() {
    local source
    source=$(realpath "$1")
    # The JavaScript engine speaks wasi:http 0.2.10: see scripts/wit-deps.sh.
    (cd guest/js && node_modules/.bin/componentize-js --wit "$target/wit-0.2.10" \
        --world-name handler -o "$out/$(basename "$1" .js)-js.wasm" "$source")
}
for source in guest/js/counter.js guest/js/cart.js tests/guests/spin/spin.js; do
    name=$(basename "$source" .js)
    if ! fresh "$out/$name-js.wasm" guest/js/*.js "$source" "$target/wit-0.2.10" \
        guest/js/node_modules/.package-lock.json; then
        step "$name-js.wasm" build_js "$source"
    fi
done

# C ------------------------------------------------------------------------
c_toolchain_ready() {
    command -v clang >/dev/null && command -v wasm-ld >/dev/null &&
        [[ -f /usr/lib/wasm32-wasi/libc.a ]] &&
        [[ -f $(clang --target=wasm32-wasi -print-libgcc-file-name) ]]
}
if ! c_toolchain_ready; then
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld wasi-libc
    # The wasm32 builtins library of the clang just installed.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev-wasm32"
fi
cargo build --quiet -p componentize-c
componentize_c="$target/debug/componentize-c"
bindings="$work/c-bindings"
if ! fresh "$bindings/handler.h" wit "$componentize_c"; then
    rm -rf "$bindings"
    "$componentize_c" bindings wit handler "$bindings"
fi
build_c() {
    # Stripped like the Rust guests; the linker keeps the world's type section.
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror -Wl,--strip-all \
        -I "$bindings" -I guest/c -o "$work/$1-c-core.wasm" \
        guest/c/guest.c guest/c/json.c "guest/c/$1.c" \
        "$bindings/handler.c" "$bindings/handler_component_type.o"
    "$componentize_c" component "$work/$1-c-core.wasm" "$out/$1-c.wasm"
}
for app in counter cart; do
    if ! fresh "$out/$app-c.wasm" guest/c "$bindings/handler.h" "$componentize_c"; then
        step "$app-c.wasm" build_c "$app"
    fi
done
