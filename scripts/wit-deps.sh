#!/usr/bin/env bash
# Fills wit/deps/ with the WASI packages (wasi:http and what it uses) from the
# wasmtime-wasi-http crate the host is built with, so that wit/handler.wit
# resolves with exactly the versions the host provides. wit/deps/ is
# generated, not committed.
#
# It also writes target/wit-0.2.10/: the same WIT (handler world included)
# with every wasi package renumbered to 0.2.10, the wasi:http version that
# the JavaScript engine of componentize-js implements. The host still runs
# such a component, since the component model matches 0.2.x imports and
# exports semver-compatibly. It is derived here from the one source so that
# no second WIT tree is ever copied by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
packages = json.load(sys.stdin)["packages"]
print(next(p["manifest_path"] for p in packages if p["name"] == "wasmtime-wasi-http"))
')
source_dir="$(dirname "$manifest")/wit/deps"
# Copies keep their timestamps, so that the guest builds that depend on
# them (scripts/build-polyglot-guests.sh) stay up to date.
rm -rf wit/deps
mkdir -p wit/deps
cp -p "$source_dir"/*.wit wit/deps/

# The version the host provides, from `package wasi:http@X;`.
host_version=$(sed -n 's/^package wasi:http@\(.*\);$/\1/p' wit/deps/http.wit)
js_dir="${CARGO_TARGET_DIR:-target}/wit-0.2.10"
rm -rf "$js_dir"
mkdir -p "$js_dir/deps"
cp -p wit/sessions.wit "$js_dir/"
for file in wit/handler.wit wit/deps/*.wit; do
    # Renumber the packages and references; items added after 0.2.10 become
    # an unstable feature that is never enabled, so they are left out.
    sed -e "s/\(wasi:[a-z-]*\(\/[a-z-]*\)\?\)@${host_version//./\\.}/\1@0.2.10/g" \
        -e 's/@since(version = 0\.2\.\(1[1-9]\|[2-9][0-9]\))/@unstable(feature = newer-than-js-engine)/' \
        "$file" >"$js_dir/${file#wit/}"
    touch -r "$file" "$js_dir/${file#wit/}"
done
