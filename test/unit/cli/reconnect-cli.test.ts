/**
 * The command line's side of reconnecting: `flash` and `read` with --reconnect-timeout run as the
 * real executable's main() in a child process over a simulated bench (sim-bench-cli.ts): the
 * reader-gone / reader-back events as NDJSON lines (schemas/v1 flash and read) and as
 * `--log-format json` diagnostics (log schema), the exit codes of a card that came back as another
 * one (13) and of a reader that never came back (3), and the option's checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reconnectTimeoutMs } from '../../../src/cli/reconnect-events.js';
import { UsageError } from '../../../src/errors.js';
import { assertContract, assertNdjson } from '../../helpers/contract.js';
import { fixture } from '../flash/helpers.js';

const WRITE10 = 0x2a;
const READ10 = 0x28;
const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'sim-bench-cli.js');

function work(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'crashcart-reconnect-cli-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function crashcart(dir: string, bench: object, args: string[]) {
  const r = spawnSync(process.execPath, [RUNNER, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, XDG_STATE_HOME: dir, CRASHCART_TEST_BENCH: JSON.stringify(bench), CRASHCART_TEST_CARD_OUT: join(dir, 'card-after.bin') },
  });
  return { code: r.status, out: r.stdout, err: r.stderr, card: () => readFileSync(join(dir, 'card-after.bin')) };
}

test('flash --json: the reader is unplugged mid-write and comes back → reader-gone and reader-back lines match the schema, the card equals the image', (t) => {
  const dir = work(t);
  const r = crashcart(dir, { blocks: 8192, unplugAt: { opcode: WRITE10, n: 8 }, back: 'same' }, [
    'flash',
    fixture('disk.img'),
    'usb:1-5',
    '--no-bmap',
    '--yes',
    '--json',
    '--reconnect-timeout',
    '5',
  ]);
  assert.equal(r.code, 0, r.err);
  const lines = assertNdjson('flash', r.out);
  assert.deepEqual(
    lines.filter((l) => String(l.type).startsWith('reader-')).map((l) => [l.type, l.target, l.port, l.address]),
    [
      ['reader-gone', 0, '1-5', 3],
      ['reader-back', 0, '1-5', 8],
    ],
  );
  const summary = lines.find((l) => l.type === 'summary') as { ok: boolean; targets: { verified: boolean }[] };
  assert.deepEqual([summary.ok, summary.targets[0].verified], [true, true]);
  const img = readFileSync(fixture('disk.img'));
  assert.ok(r.card().subarray(0, img.length).equals(img));
});

test('flash: another card comes back → exit 13, class infrastructure, CardChangedError in the summary and the error object', (t) => {
  const dir = work(t);
  const r = crashcart(dir, { blocks: 8192, unplugAt: { opcode: WRITE10, n: 8 }, back: 'other' }, [
    'flash',
    fixture('disk.img'),
    'usb:1-5',
    '--no-bmap',
    '--yes',
    '--json',
    '--reconnect-timeout',
    '5',
  ]);
  assert.equal(r.code, 13, r.err);
  const lines = assertNdjson('flash', r.out);
  const summary = lines.find((l) => l.type === 'summary') as { exitCode: number; class: string; targets: { error?: { name: string } }[] };
  assert.deepEqual([summary.exitCode, summary.class, summary.targets[0].error?.name], [13, 'infrastructure', 'CardChangedError']);
  const error = lines.at(-1) as { type: string; exitCode: number };
  assert.deepEqual([error.type, error.exitCode], ['error', 13]);
});

test('flash: the reader never comes back (while the held-back first MiB is written) → exit 3 once the timeout is over; the resume point is in the journal', (t) => {
  const dir = work(t);
  const r = crashcart(dir, { blocks: 8192, unplugAt: { opcode: WRITE10, n: 20 }, back: 'none' }, [
    'flash',
    fixture('disk.img'),
    'usb:1-5',
    '--no-bmap',
    '--yes',
    '--reconnect-timeout',
    '0.2',
  ]);
  assert.equal(r.code, 3, r.err);
  assert.match(r.err, /usb:1-5@lun=0: the reader went away \(port 1-5, address 3: .*\); waiting up to 0\.2 s for it to come back/);
  // Write 20 is in the held-back head: the rest of the image is flushed by then.
  assert.match(r.out, /FAILED {2}usb:1-5@lun=0: .*did not come back within 0\.2 s .*data up to offset 3146728 \(3 MiB\) is written and flushed; .*--resume/);
  const journal = JSON.parse(readFileSync(join(dir, 'crashcart', 'resume.json'), 'utf8')) as { offset: number }[];
  assert.equal(journal[0].offset, 3146728, 'the resume point was kept');
});

test('read --log-format json: the events are JSON diagnostics (log schema) with event, port and address; the output equals the card', (t) => {
  const dir = work(t);
  const out = join(dir, 'out.img');
  const r = crashcart(dir, { blocks: 4096, unplugAt: { opcode: READ10, n: 6 }, back: 'same' }, ['read', 'usb:1-5', '-o', out, '--log-format', 'json', '--reconnect-timeout', '5']);
  assert.equal(r.code, 0, r.err);
  const logs = r.err
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const l of logs) assertContract('log', l);
  const ev = logs.filter((l) => l.event);
  assert.deepEqual(
    ev.map((l) => [l.level, l.event, l.port, l.address]),
    [
      ['warning', 'reader-gone', '1-5', 3],
      ['info', 'reader-back', '1-5', 8],
    ],
  );
  assert.match(String(ev[1].message), /the reader is back on the same port 1-5 at address 8 \(was 3\)/);
  assert.ok(readFileSync(out).equals(r.card()));
});

test('read --json: events match the read schema; with --reconnect-timeout 0 the first unplug ends the read (exit 3) without waiting', (t) => {
  const dir = work(t);
  const r = crashcart(dir, { blocks: 4096, unplugAt: { opcode: READ10, n: 6 }, back: 'same' }, ['read', 'usb:1-5', '-o', join(dir, 'a.img'), '--json']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(
    assertNdjson('read', r.out)
      .filter((l) => String(l.type).startsWith('reader-'))
      .map((l) => l.type),
    ['reader-gone', 'reader-back'],
  );
  const off = crashcart(dir, { blocks: 4096, unplugAt: { opcode: READ10, n: 3 }, back: 'same' }, [
    'read',
    'usb:1-5',
    '-o',
    join(dir, 'b.img'),
    '--json',
    '--reconnect-timeout',
    '0',
  ]);
  assert.equal(off.code, 3, off.err);
  assert.ok(!off.out.includes('reader-gone'));
  assertNdjson('read', off.out);
});

test('--reconnect-timeout: seconds from 0 to 3600, default 15', () => {
  assert.equal(reconnectTimeoutMs(undefined), 15_000);
  assert.equal(reconnectTimeoutMs(0), 0);
  assert.equal(reconnectTimeoutMs(2.5), 2500);
  for (const bad of [-1, Number.NaN, 3601]) assert.throws(() => reconnectTimeoutMs(bad), UsageError);
});
