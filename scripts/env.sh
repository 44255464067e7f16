# Sourced by the build script and .ci/run: the toolchain environment setup.sh prepared.
# - cargo-installed tools (worker-build, wasm-bindgen) live in ~/.cargo/bin;
# - when rustup could not add the wasm32 target, setup.sh installed Debian's Rust with a wasm32 std,
#   which must then come first on PATH;
# - SQLite's C code (sqlite-wasm-rs) needs a wasm-capable clang.
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    && [ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ]; then
    export PATH="/usr/bin:$PATH"
fi
export CC_wasm32_unknown_unknown="${CC_wasm32_unknown_unknown:-clang-19}"
export AR_wasm32_unknown_unknown="${AR_wasm32_unknown_unknown:-llvm-ar-19}"
export WRANGLER_SEND_METRICS=false
