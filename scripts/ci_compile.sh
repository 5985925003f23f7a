#!/bin/sh
# CI step for the release binary: runs `deno task compile` and turns its exit
# code 3 (no denort runtime on this machine) into a "compile skipped: ..."
# line instead of a failure. Any other failure, including a binary that does
# not answer --version as dcm-agent, fails the step.
set -u
cd "$(dirname "$0")/.." || exit 1
deno=${DENO:-deno}
err_file=$(mktemp) || exit 1
trap 'rm -f "$err_file"' EXIT
"$deno" run -A scripts/compile.ts "$@" 2>"$err_file"
code=$?
if [ "$code" -eq 3 ]; then
    echo "compile skipped: $(sed -e 's/^compile: //' "$err_file" | tail -n 1)"
    exit 0
fi
cat "$err_file" >&2
exit "$code"
