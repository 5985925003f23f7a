#!/usr/bin/env bash
# The README's first command: installs the pinned Deno if needed and runs the
# demo (a local development manager driving a real agent).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/deno ] || npm ci --no-audit --no-fund --loglevel=error
exec node_modules/.bin/deno task demo
