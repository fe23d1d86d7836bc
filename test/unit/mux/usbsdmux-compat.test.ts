/**
 * crashcart mux sends the USB-SD-Mux exactly the SCSI commands the usbsdmux tool sends: every CDB,
 * direction, transfer length and data-OUT byte, for every action and for action sequences, and it
 * reads the same mode back. The reference is usbsdmux's own Python code with its SG_IO ioctl
 * captured (scripts/usbsdmux-capture.py); the committed record is checked against a fresh capture
 * whenever the Debian package is installed (`apt-get install usbsdmux`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { controlMux } from '../../../src/mux/mux-control.js';
import type { MuxMode } from '../../../src/mux/usb-sd-mux.js';
import { SimHost } from '../../sim/sim-reader.js';
import { SimUsbSdMux, type MuxCommandRecord } from '../../sim/sim-usb-sd-mux.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';

interface Capture {
  variant: string;
  scenarios: Record<string, { actions: string[]; commands: MuxCommandRecord[]; status: string[] }>;
}

const FIXTURE = new URL('../../../../test/fixtures/usbsdmux/usbsdmux-0.2.1-classic.json', import.meta.url);
const SCRIPT = new URL('../../../../scripts/usbsdmux-capture.py', import.meta.url);
const DEBIAN_PACKAGE = '/usr/lib/python3/dist-packages/usbsdmux/usbsdmux.py';

const recorded = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Capture;

async function runCrashcart(actions: string[]): Promise<{ commands: MuxCommandRecord[]; status: string[] }> {
  const mux = new SimUsbSdMux('classic');
  const host = new SimHost([mux.reader]);
  const status: string[] = [];
  for (const action of actions) {
    const r = await controlMux('usb', action as MuxMode | 'status', { host, profiles: PROFILES, offSettleMs: 0, bot: FAST_BOT, scsi: FAST_SCSI, sysfs: NO_SYSFS });
    if (action === 'status') status.push(r.mode);
  }
  return { commands: mux.log, status };
}

const PROFILES = [{ source: 'test', name: 'USB-SD-Mux', match: { vendorId: 0x0424, productId: 0x4041 }, quirks: {}, mux: 'usb-sd-mux' as const }];
const NO_SYSFS = { sysRoot: '/nonexistent-sysfs' };

test('the committed usbsdmux record covers every action', () => {
  assert.equal(recorded.variant, 'classic');
  const actions = new Set(Object.values(recorded.scenarios).flatMap((s) => s.actions));
  assert.deepEqual([...actions].sort(), ['dut', 'host', 'off', 'status']);
});

for (const [name, scenario] of Object.entries(recorded.scenarios)) {
  test(`mux ${scenario.actions.join(' → ')} (${name}): the same commands as usbsdmux, byte for byte`, async () => {
    const got = await runCrashcart(scenario.actions);
    assert.equal(got.commands.length, scenario.commands.length, `number of CFh commands`);
    scenario.commands.forEach((want, i) => assert.deepEqual(got.commands[i], want, `command ${i + 1} of ${name}`));
    assert.deepEqual(got.status, scenario.status);
  });
}

test('the committed record is what the installed usbsdmux sends today', { skip: !existsSync(DEBIAN_PACKAGE) && 'usbsdmux not installed (apt-get install usbsdmux)' }, () => {
  const r = spawnSync('python3', [SCRIPT.pathname], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const live = JSON.parse(r.stdout) as Capture;
  assert.deepEqual(live.scenarios, recorded.scenarios);
});
