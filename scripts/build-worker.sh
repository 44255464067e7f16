#!/bin/sh
# Builds the Worker (build/index.js + build/index_bg.wasm) with worker-build, using only tools that
# scripts/setup.sh installed: worker-build must not download wasm-bindgen, esbuild or wasm-opt.
# wrangler runs this as the [build] command; the test harness builds once, then sets
# SKIP_WORKER_BUILD=1 so that parallel `wrangler dev` processes do not rebuild concurrently.
set -eu
[ -n "${SKIP_WORKER_BUILD:-}" ] && exit 0

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Nothing changed since the last build: worker-build would still re-run wasm-bindgen and wasm-opt
# (most of a minute), so skip it.
if [ -f build/index.js ] && [ -f build/index_bg.wasm ] &&
    [ -z "$(find src core admin-api assertion schema Cargo.toml Cargo.lock scripts/build-worker.sh -newer build/index_bg.wasm -print -quit)" ]; then
    echo "build-worker: build/ is up to date"
    exit 0
fi
. "$root/scripts/env.sh"

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
exec worker-build --release
