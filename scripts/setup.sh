#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmark need, skipping what is already there.
# Idempotent: run it as often as you like. Works offline from the package registries alone
# (crates.io, npm, Debian), and takes the same steps on a machine with full internet access.
#
#   1. the wasm32-unknown-unknown target: rustup, else Debian's Rust with a wasm32 std built once
#   2. clang-19 + llvm-19 (SQLite's C code compiled to wasm)
#   3. worker-build and wasm-bindgen-cli at the versions Cargo.lock needs
#   4. the npm tools pinned in package-lock.json (wrangler + workerd, esbuild, binaryen's wasm-opt)
#   5. sqlite3, the program: only the benchmark uses it (`sqlite3 .dump | sqlite3` as its reference)
#   6. ffmpeg and ffprobe (Debian's): the reference processor cuts clips with them; tests check them
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== setup: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_updated=""
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# The version of a package in Cargo.lock.
locked_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# 1. wasm32 target --------------------------------------------------------------------------
wasm_std_ready() {
    local libdir
    libdir=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null) && [ -d "$libdir" ]
}
step "wasm32-unknown-unknown target"
if wasm_std_ready; then
    echo "present"
elif have rustup && rustup target add wasm32-unknown-unknown && wasm_std_ready; then
    echo "added with rustup"
else
    echo "rustup could not add it: building a wasm32 std with Debian's Rust"
    apt_install rustc-web rust-web-src lld-22
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$scratch/src"
    printf '[package]\nname = "wasm-std"\nversion = "0.0.0"\nedition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n' \
        > "$scratch/Cargo.toml"
    : > "$scratch/src/lib.rs"
    (cd "$scratch" && PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
        cargo build --release -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown)
    mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib
    cp "$scratch"/target/wasm32-unknown-unknown/release/deps/*.rlib /usr/lib/rustlib/wasm32-unknown-unknown/lib/
    PATH="/usr/bin:$PATH" wasm_std_ready
fi

# rustfmt and clippy: .ci/run checks formatting and lints.
step "rustfmt and clippy"
if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
    echo "present"
else
    rustup component add rustfmt clippy
fi

# 2. clang for SQLite in wasm -----------------------------------------------------------------
step "clang-19 and llvm-ar-19"
if have clang-19 && have llvm-ar-19; then
    echo "present"
else
    apt_install clang-19 llvm-19
fi

# 3. worker-build and wasm-bindgen-cli ---------------------------------------------------------
# worker-build stays on the version of the `worker` crate; wasm-bindgen-cli must equal the
# `wasm-bindgen` crate exactly, or the generated glue does not match the module.
cargo_tool() {
    local crate=$1 binary=$2 version=$3
    shift 3
    if have "$binary" && "$binary" --version 2>/dev/null | grep -qwF "$version"; then
        echo "$crate $version present"
    else
        cargo install "$crate" --version "$version" "$@"
    fi
}
step "worker-build and wasm-bindgen-cli"
cargo_tool worker-build worker-build "$(locked_version worker)" --locked
# Not --locked: its lock file names a webpki-roots version the registry no longer serves.
cargo_tool wasm-bindgen-cli wasm-bindgen "$(locked_version wasm-bindgen)"

# 4. npm tools ----------------------------------------------------------------------------------
step "npm packages (package-lock.json)"
have node && have npm || { echo "setup: node and npm are required (Node.js 20 or later)" >&2; exit 1; }
stamp=node_modules/.setup-lock-sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/wrangler ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    echo "present"
else
    npm ci --no-audit --no-fund
    echo "$wanted" > "$stamp"
fi

# 5. sqlite3 for the benchmark ---------------------------------------------------------------------
# `cargo run --release -p bench` times a move against `sqlite3 SRC .dump | sqlite3 DST` on the same
# file; the build and the tests do not need it.
step "sqlite3 (the benchmark's reference)"
if have sqlite3; then
    echo "present"
else
    apt_install sqlite3
fi

# 6. ffmpeg for the reference processor ------------------------------------------------------------
# processor/ cuts clips with Debian's ffmpeg; the processing tests generate their video with it and
# measure the cuts with ffprobe.
step "ffmpeg and ffprobe (the reference processor)"
if have ffmpeg && have ffprobe; then
    echo "present"
else
    apt_install ffmpeg
fi

step "done"
