// Shared pieces of the USB end-to-end tests: the shell prelude the scenarios use inside the
// VM, and host-side accessors for what they saved.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';
import type { VmResult } from './harness.js';

export { repoRoot };

/**
 * Shell helpers (busybox sh), after vm-lib.sh:
 *   cc ARGS…              the repository's crashcart, run with the host's node (chroot)
 *   guest ARGS…           dist/test/vm/usb-guest.js
 *   run NAME CMD…         CMD's stdout/stderr/exit status → outputs NAME.out/.err/.rc (never fails)
 *   bg NAME ARGS…         crashcart ARGS in the background (node's own PID in $BG_PID)
 *   bg_wait NAME          wait for it; exit status → NAME.rc
 *   port_of_serial S      sysfs port path (2-1) of the USB device with serial S
 *   driver_of PORT        kernel driver bound to PORT's interface 0 ("none" if none)
 *   wait_driver PORT      until usb-storage is bound to it again (20 s)
 *   wait_detached PORT    until crashcart has claimed the reader (usb-storage detached, the
 *                         interface bound to usbfs; 180 s)
 *   kernel_disk PORT [L]  /dev/sdX the kernel created for LUN L (default 0), once it exists
 */
export const USB_PRELUDE = `
cc() { host_run node "$REPO/bin/crashcart" "$@"; }
guest() { host_run node "$REPO/dist/test/vm/usb-guest.js" "$@"; }
run() {
  _n=$1; shift; _rc=0
  "$@" > "/out/$_n.out" 2> "/out/$_n.err" || _rc=$?
  echo $_rc > "/out/$_n.rc"
  vm_log "$_n: exit $_rc"
}
bg() {
  _n=$1; shift
  chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 \
    node "$REPO/bin/crashcart" "$@" > "/out/$_n.out" 2> "/out/$_n.err" &
  BG_PID=$!
}
bg_wait() { _rc=0; wait $BG_PID || _rc=$?; echo $_rc > "/out/$1.rc"; vm_log "$1: exit $_rc"; }
port_of_serial() {
  for _d in /sys/bus/usb/devices/*; do
    [ -f "$_d/serial" ] || continue
    if [ "$(cat "$_d/serial")" = "$1" ] && [ -f "$_d/idVendor" ]; then echo "\${_d##*/}"; return 0; fi
  done
  return 1
}
driver_of() {
  if [ -e "/sys/bus/usb/devices/$1:1.0/driver" ]; then _l=$(readlink "/sys/bus/usb/devices/$1:1.0/driver"); echo "\${_l##*/}"; else echo none; fi
}
wait_driver() {
  _i=0
  until [ "$(driver_of "$1")" = usb-storage ]; do _i=$((_i + 1)); [ $_i -le 600 ] || vm_fail "usb-storage not bound to $1 again"; sleep 0.1; done
}
wait_detached() {
  _i=0
  until [ "$(driver_of "$1")" = usbfs ]; do
    _i=$((_i + 1))
    if [ $_i -gt 1800 ] || ! kill -0 $BG_PID 2>/dev/null; then
      cat /out/*.err | tail -n 20
      vm_fail "$1 was not taken from the kernel (crashcart pid $BG_PID $(kill -0 $BG_PID 2>/dev/null && echo running || echo ended))"
    fi
    sleep 0.1
  done
}
kernel_disk() {
  _i=0
  while :; do
    for _b in /sys/bus/usb/devices/$1:1.0/host*/target*/*:*:*:\${2:-0}/block/*; do
      [ -e "$_b" ] && { echo "/dev/\${_b##*/}"; return 0; }
    done
    _i=$((_i + 1)); [ $_i -le 200 ] || vm_fail "no kernel disk for $1 lun \${2:-0}"; sleep 0.1
  done
}
`;

export function fixtureDisk(name: string): Buffer {
  return gunzipSync(readFileSync(join(kernelFixturesDir, name, 'disk.img.gz')));
}

export function fixtureCmdline(name: string): string {
  return readFileSync(join(kernelFixturesDir, name, 'cmdline.txt'), 'utf8').trim();
}

export function fixtureReadout(name: string): Map<string, Buffer> {
  const dir = join(kernelFixturesDir, name, 'kernel-readout');
  const m = new Map<string, Buffer>();
  for (const f of ['console-pstore_blk-0', 'dmesg-pstore_blk-0', 'dmesg-pstore_blk-1', 'dmesg-pstore_blk-2', 'dmesg-pstore_blk-3', 'pmsg-pstore_blk-0', 'ftrace-pstore_blk-0']) {
    try {
      m.set(f, readFileSync(join(dir, f)));
    } catch {
      // not every fixture has every record type
    }
  }
  return m;
}

/** Accessors for `run NAME …` results. */
export function outputs(r: VmResult) {
  const text = (name: string): string => {
    const b = r.outputs.get(name);
    if (!b) throw new Error(`the scenario saved no ${name}\n--- script log ---\n${r.scriptLog.slice(-4000)}`);
    return b.toString('utf8');
  };
  const rc = (name: string): number => Number(text(`${name}.rc`).trim());
  return {
    text,
    rc,
    out: (name: string) => text(`${name}.out`),
    err: (name: string) => text(`${name}.err`),
    /** Asserts exit status `code` and returns stdout. */
    ok(name: string, code = 0): string {
      assert.equal(rc(name), code, `${name}: exit ${rc(name)}, expected ${code}\nstdout: ${text(`${name}.out`).slice(0, 2000)}\nstderr: ${text(`${name}.err`).slice(0, 2000)}`);
      return text(`${name}.out`);
    },
    /** Asserts exit status `code` and returns stdout's JSON: the whole of it, or its last line (NDJSON events, then the summary). */
    json<T = any>(name: string, code = 0): T {
      const out = this.ok(name, code).trim();
      try {
        return JSON.parse(out) as T;
      } catch {
        return JSON.parse(out.slice(out.lastIndexOf('\n') + 1)) as T;
      }
    },
  };
}
