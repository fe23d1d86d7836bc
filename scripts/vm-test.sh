#!/usr/bin/env bash
# End-to-end tests against a real Linux kernel in QEMU (TCG).
# Provisions the VM harness (test/vm/provision.sh: qemu, busybox, kernel, initramfs; cached in
# test/vm/cache/), builds the TypeScript and runs every dist/test/**/*.vmtest.js with node --test.
# Usage: scripts/vm-test.sh [substring-filter...]   (filters select test files by path)
# Environment: CRASHCART_VM_VERBOSE=1 streams the VMs' serial consoles to stderr;
#              CRASHCART_VM_KEEP=1 keeps each run's work directory (initrd, output disk).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

t0=$(date +%s)
bash test/vm/provision.sh >/dev/null
t1=$(date +%s)
echo "vm-test: provisioned in $((t1 - t0)) s" >&2

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent

mapfile -t files < <(find dist/test -name '*.vmtest.js' | LC_ALL=C sort)
if [ "$#" -gt 0 ]; then
  selected=()
  for f in "${files[@]}"; do
    for pat in "$@"; do
      case "$f" in *"$pat"*) selected+=("$f"); break ;; esac
    done
  done
  files=("${selected[@]+"${selected[@]}"}")
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "vm-test: no *.vmtest.js files selected" >&2
  exit 1
fi
# One VM at a time per test file keeps TCG timings predictable on small CI machines.
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
