#!/usr/bin/env bash
# Local development: the Worker in `wrangler dev` (wrangler.dev.toml: local KV, R2, Queues and
# Durable Objects; X-User-ID trusted) and the reference processor (processor/) beside it, which
# cuts clips with ffmpeg. Both share PROCESSING_TOKEN (a fixed local value unless you set one).
# Ctrl-C stops both. Extra arguments go to `wrangler dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

export PROCESSING_TOKEN="${PROCESSING_TOKEN:-local-processing-token}"
cargo build --locked -p processor
target/debug/processor --listen 127.0.0.1:8790 --worker http://127.0.0.1:8787 &
processor=$!
trap 'kill "$processor" 2>/dev/null || true' EXIT INT TERM

npx wrangler dev -c wrangler.dev.toml --ip 127.0.0.1 --port 8787 \
    --var "PROCESSING_TOKEN:$PROCESSING_TOKEN" "$@"
