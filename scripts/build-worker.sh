#!/bin/sh
# Builds the Worker (build/index.js + build/index_bg.wasm) with worker-build, using only tools that
# scripts/setup.sh installed: worker-build must not download wasm-bindgen, esbuild or wasm-opt.
# wrangler runs this as the [build] command; the test harness builds once, then sets
# SKIP_WORKER_BUILD=1 so that parallel `wrangler dev` processes do not rebuild concurrently.
set -eu
[ -n "${SKIP_WORKER_BUILD:-}" ] && exit 0

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

# Debian's fallback toolchain (setup.sh, when rustup cannot add the wasm32 target).
libdir=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null || true)
if [ ! -d "$libdir" ] && [ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ]; then
    export PATH="/usr/bin:$PATH"
fi

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
# SQLite's C code (sqlite-wasm-rs) needs a wasm-capable clang.
export CC_wasm32_unknown_unknown="${CC_wasm32_unknown_unknown:-clang-19}"
export AR_wasm32_unknown_unknown="${AR_wasm32_unknown_unknown:-llvm-ar-19}"

exec worker-build --release
