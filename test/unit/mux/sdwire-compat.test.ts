/**
 * crashcart mux drives an SDWire with the same vendor requests as the reference tools, byte for
 * byte: scripts/sdwire-reference.py runs sdwire-cli's switching logic through the real pyftdi and
 * pyusb (Debian python3-ftdi, python3-usb) against a simulated FT200XD and records every vendor
 * request; crashcart runs against the simulated SDWire of test/sim. pyftdi wraps the switch in its
 * session housekeeping (purge, reset, bit-mode reset, latency timer, before and after); crashcart
 * sends only the request that changes the pins (as sd-mux-ctrl does, over libftdi) and, for
 * status, only SIO_READ_PINS: those must equal pyftdi's, and the mode read back must agree.
 * The same comparison runs on the real wire in the VM (test/vm/usb-ffs.vmtest.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { controlMux } from '../../../src/mux/mux-control.js';
import { loadReaderProfiles } from '../../../src/reader/reader-profiles.js';
import { SimHost } from '../../sim/sim-reader.js';
import { pinRequests, SimSdWire, type ControlRecord } from '../../sim/sim-sdwire.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';

const SCRIPT = new URL('../../../../scripts/sdwire-reference.py', import.meta.url).pathname;
const PYFTDI = '/usr/lib/python3/dist-packages/pyftdi/ftdi.py';
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const skip = !existsSync(PYFTDI) && 'pyftdi not installed (apt-get install python3-ftdi python3-usb)';

interface Reference {
  actions: Record<string, ControlRecord[][]>;
  status: string[];
}

test('the same CBUS requests as sdwire-cli over pyftdi, byte for byte, and the same mode read back', { skip }, async () => {
  const actions = ['ts', 'status', 'dut', 'status', 'ts', 'ts', 'status'];
  const r = spawnSync(PYTHON, [SCRIPT, '--capture', ...actions], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ref = JSON.parse(r.stdout) as Reference;
  const w = new SimSdWire();
  const host = new SimHost([w.reader], [], [w]);
  const profiles = loadReaderProfiles();
  const seen = new Map<string, number>();
  const status: string[] = [];
  for (const action of actions) {
    const before = w.ftdi.log.length;
    const mode = action === 'ts' ? 'host' : action;
    const rep = await controlMux('usb', mode as 'host' | 'dut' | 'status', { host, profiles, bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' } });
    if (action === 'status') status.push(rep.mode === 'host' ? 'ts' : rep.mode);
    const n = seen.get(action) ?? 0;
    seen.set(action, n + 1);
    const session = ref.actions[action][n];
    // pyftdi's whole session holds exactly one pin request, and crashcart sends exactly that one
    assert.deepEqual(w.ftdi.log.slice(before), pinRequests(session), `${action} #${n + 1}: crashcart's requests against pyftdi's`);
    assert.equal(pinRequests(session).length, 1);
  }
  assert.deepEqual(status, ref.status);
  assert.deepEqual(status, ['ts', 'dut', 'ts']);
});
