#!/usr/bin/env bash
# Runs every test on a fresh machine: installs the pinned Deno (npm ci) and the
# Debian packages the system tests use, runs the suite from source, then the
# integration tests again against the bundle dist/dcm-agent.js, and tries the
# single-binary build. Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x node_modules/.bin/deno ]; then
  log "installing the pinned Deno (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2 || { echo "npm ci failed"; echo "0 passed, 1 failed"; exit 1; }
fi
export PATH="$PWD/node_modules/.bin:$PATH"
# Plain output: the summary line below is parsed.
export NO_COLOR=1

# Debian packages the system-level tests drive for real.
PACKAGES=(sudo passwd login procps util-linux iproute2 tmux openssl python3 systemd openssh-client
  docker.io busybox-static docker-registry)
# configure_server tests: a real Puppet agent and server, Ansible, git for ansible-pull.
PACKAGES+=(puppet-agent puppetserver ansible-core git)
# clock_jump_test: a wall clock moved under libfaketime.
PACKAGES+=(faketime)
# Disk volumes: real file systems, LUKS and RAID; the last four boot the throw-away test VM.
PACKAGES+=(e2fsprogs xfsprogs cryptsetup mdadm qemu-system-x86 linux-image-amd64 busybox-static xz-utils)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >&2 \
      || log "apt-get failed; tests that need ${missing[*]} will report it"
  else
    log "not root: cannot install ${missing[*]}; tests that need them will report it"
  fi
fi

passed=0
failed=0
count() {
  # Deno's summary line: "ok | 12 passed (3 steps) | 0 failed (1s)"
  local line
  line=$(grep -aE '^(ok|FAILED) \| [0-9]+ passed' "$1" | tail -n 1)
  local p f
  p=$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$line")
  f=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$line")
  if [ -z "$p" ]; then p=0; f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
}

out=$(mktemp)
log "deno test (from source)"
deno test -A --parallel tests/ 2>&1 | tee "$out"
count "$out"

log "bundling dist/dcm-agent.js"
if deno task bundle >"$out" 2>&1; then
  log "integration tests against the bundle"
  DCM_AGENT_TEST_ENTRY=dist/dcm-agent.js deno test -A --parallel tests/agent/agent_protocol_test.ts 2>&1 | tee "$out"
  count "$out"
else
  cat "$out"
  log "bundle FAILED"
  failed=$((failed + 1))
fi

log "single binary (deno task compile)"
if DENO=deno sh scripts/ci_compile.sh >"$out" 2>&1; then
  if grep -q '^compile skipped:' "$out"; then
    grep '^compile skipped:' "$out"
  else
    log "compile ok: dist/dcm-agent"
    passed=$((passed + 1))
  fi
else
  cat "$out"
  log "compile FAILED"
  failed=$((failed + 1))
fi
rm -f "$out"

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
