/**
 * The machine contract (schemas/v1, README "Machine contract"): the real executable's --json
 * outputs and NDJSON events, its error objects and its `--log-format json` diagnostics, checked
 * against the schemas; the exit code and class of each kind of fault (usage, image, media,
 * infrastructure, result). USB reader outputs (`list`, `wait`) and `mux` are checked on the
 * simulated reader and USB-SD-Mux here (the readers also on the VM's gadget reader in test/vm).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { collectReaders } from '../../src/cli/commands/list.js';
import { waitForCard } from '../../src/reader/card-wait.js';
import { controlMux } from '../../src/mux/mux-control.js';
import { loadReaderProfiles } from '../../src/reader/reader-profiles.js';
import { EXIT_CLASS, ExitCode } from '../../src/errors.js';
import { FAST_BOT, FAST_SCSI } from '../sim/helpers.js';
import { MemoryCard, SimHost, SimReader } from '../sim/sim-reader.js';
import { SimUsbSdMux } from '../sim/sim-usb-sd-mux.js';
import { SimSdWire } from '../sim/sim-sdwire.js';
import { assertContract, assertNdjson, schemaFiles, validatorFor } from '../helpers/contract.js';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-contract-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = join(repoRoot, 'bin/crashcart');
const FAULTY = join(repoRoot, 'dist/test/cli/helpers/faulty-device.js');
const flashFixtures = join(repoRoot, 'test/fixtures/flash');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(args: string[], o: { env?: Record<string, string>; preload?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(o.preload ? ['--import', o.preload] : []), BIN, ...args], {
      cwd: tmp,
      env: { ...process.env, XDG_STATE_HOME: join(tmp, 'state'), ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const file = (name: string, size: number, fill = 0) => {
  const p = join(tmp, name);
  writeFileSync(p, new Uint8Array(size).fill(fill));
  return p;
};
const fixture = (name: string) => {
  const p = join(tmp, `${name}.img`);
  writeFileSync(p, gunzipSync(readFileSync(join(kernelFixturesDir, name, 'disk.img.gz'))));
  return p;
};
const lastLine = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
/** stderr with --log-format json: every line a log object; returns them. */
const logLines = (stderr: string) => assertNdjson('log', stderr, 'stderr');
/** A failed --json run: the error object closes stdout, the log's error line agrees with it. */
function assertFailure(r: Run, code: number, cls: string, schema: string): Record<string, unknown> {
  assert.equal(r.code, code, r.stderr);
  const err = lastLine(r.stdout);
  assertContract(schema, err, 'the closing error object');
  assertContract('error', err);
  assert.deepEqual([err.type, err.exitCode, err.class], ['error', code, cls]);
  const logs = logLines(r.stderr);
  const e = logs.filter((l) => l.level === 'error');
  assert.equal(e.length, 1, r.stderr);
  assert.deepEqual([e[0].code, e[0].class], [code, cls]);
  return err;
}

describe('machine contract: schemas', () => {
  it('every schema compiles under ajv strict mode (draft 2020-12), with its $id and title', () => {
    assert.ok(schemaFiles().length >= 14);
    for (const f of schemaFiles()) {
      const s = JSON.parse(readFileSync(join(repoRoot, 'schemas/v1', f), 'utf8')) as Record<string, string>;
      assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema', f);
      assert.ok(s.title, f);
      validatorFor(f.replace('.schema.json', ''));
    }
  });

  it('every exit code has a class; the schema and the README table list exactly the codes of errors.ts', () => {
    const codes = Object.values(ExitCode).sort((a, b) => a - b);
    assert.deepEqual(
      Object.keys(EXIT_CLASS)
        .map(Number)
        .sort((a, b) => a - b),
      codes,
    );
    const common = JSON.parse(readFileSync(join(repoRoot, 'schemas/v1/common.schema.json'), 'utf8'));
    assert.deepEqual(common.$defs.exitCode.enum, codes);
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Exit codes'), readme.indexOf('\n## ', readme.indexOf('## Exit codes') + 5));
    const rows = [...section.matchAll(/^\| (\d+) \| (\w+) \|/gm)].map((m) => [Number(m[1]), m[2]]);
    assert.deepEqual(
      rows,
      codes.map((c) => [c, EXIT_CLASS[c]]),
    );
    // the labgrid driver's table (contrib/labgrid/crashcart_labgrid/errors.py)
    const py = readFileSync(join(repoRoot, 'contrib/labgrid/crashcart_labgrid/errors.py'), 'utf8');
    const table = py.slice(py.indexOf('EXIT_CLASS = {'), py.indexOf('}', py.indexOf('EXIT_CLASS = {')));
    const pyRows = [...table.matchAll(/(\d+): "(\w+)"/g)].map((m) => [Number(m[1]), m[2]] as [number, string]);
    assert.deepEqual(
      pyRows,
      codes.map((c) => [c, EXIT_CLASS[c]]),
    );
  });

  it('a schema rejects what breaks it (a missing field, a wrong class)', () => {
    assert.equal(validatorFor('error')({ type: 'error', name: 'IoError', message: 'x', exitCode: 3 }), false);
    assert.equal(validatorFor('error')({ type: 'error', name: 'IoError', message: 'x', exitCode: 3, class: 'disk' }), false);
    assert.equal(validatorFor('log')({ level: 'error', message: 'x' }), false);
    assert.equal(validatorFor('flash')({ type: 'progress', target: 0, device: 'x', phase: 'writing', bytes: -1, total: null, speed: 0, eta: null }), false);
  });
});

describe('machine contract: real outputs', () => {
  it('flash: NDJSON events of a compressed image with its bmap, and a plain one to two cards', async () => {
    const card1 = file('f1.img', 4 << 20);
    const card2 = file('f2.img', 4 << 20);
    const gz = await run(['flash', join(flashFixtures, 'disk.img.gz'), card1, '--yes', '--json', '--log-format', 'json']);
    assert.equal(gz.code, 0, gz.stderr);
    const events = assertNdjson('flash', gz.stdout);
    assert.deepEqual([events[0].type, events.at(-1)!.type, events.at(-1)!.class], ['start', 'summary', 'ok']);
    assert.ok(events.some((e) => e.type === 'progress'));
    logLines(gz.stderr);
    const raw = await run(['flash', join(flashFixtures, 'disk.img'), card1, card2, '--yes', '--json', '--no-bmap']);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal((assertNdjson('flash', raw.stdout).at(-1)!.targets as unknown[]).length, 2);
  });

  it('flash: a truncated image is an image fault (10), a bad block a media fault (8), a reader gone an infrastructure fault (3), bad arguments a usage error (2)', async () => {
    const gz = readFileSync(join(flashFixtures, 'disk.img.gz'));
    const cut = join(tmp, 'cut.img.gz');
    writeFileSync(cut, gz.subarray(0, gz.length >> 1));
    const card = file('fx.img', 4 << 20);
    const image = await run(['flash', cut, card, '--yes', '--json', '--no-bmap', '--log-format', 'json']);
    assertFailure(image, ExitCode.SOURCE, 'image', 'flash');
    assert.equal(assertNdjson('flash', image.stdout).at(-2)!.type, 'summary');

    const env = { CRASHCART_TEST_FAULT_OFFSET: String(1 << 20) };
    const medium = await run(['flash', join(flashFixtures, 'disk.img'), `faulty:${card}`, '--yes', '--json', '--no-bmap', '--retries', '0', '--log-format=json'], {
      preload: FAULTY,
      env: { ...env, CRASHCART_TEST_FAULT: 'medium' },
    });
    assertFailure(medium, ExitCode.MEDIUM, 'media', 'flash');
    const summary = assertNdjson('flash', medium.stdout).at(-2)!;
    assert.deepEqual((summary.targets as { error: { class: string; failure: string } }[])[0].error.class, 'media');
    assert.equal((summary.targets as { error: { failure: string } }[])[0].error.failure, 'medium');

    const gone = await run(['flash', join(flashFixtures, 'disk.img'), `faulty:${card}`, '--yes', '--json', '--no-bmap', '--log-format', 'json'], {
      preload: FAULTY,
      env: { ...env, CRASHCART_TEST_FAULT: 'gone' },
    });
    assertFailure(gone, ExitCode.IO, 'infrastructure', 'flash');
    const goneSummary = assertNdjson('flash', gone.stdout).at(-2)!;
    assert.deepEqual((goneSummary.targets as { error: { class: string; failure: string } }[])[0].error, {
      ...(goneSummary.targets as { error: object }[])[0].error,
      class: 'infrastructure',
      failure: 'gone',
    });

    const usage = await run(['flash', join(flashFixtures, 'disk.img'), card, '--retries', '-1', '--json', '--log-format', 'json']);
    assertFailure(usage, ExitCode.USAGE, 'usage', 'flash');
  });

  it('read: NDJSON events and summary; blocks that stay unreadable are a media fault (8)', async () => {
    const ok = await run(['read', join(flashFixtures, 'disk.img'), '-o', join(tmp, 'r.img'), '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(assertNdjson('read', ok.stdout).at(-1)!.status, 'ok');
    const bad = await run(
      ['read', `faulty:${join(flashFixtures, 'disk.img')}`, '-o', join(tmp, 'rb.img'), '--size', String(2 << 20), '--retries', '0', '--json', '--log-format', 'json'],
      {
        preload: FAULTY,
        env: { CRASHCART_TEST_FAULT: 'medium', CRASHCART_TEST_FAULT_OFFSET: String((2 << 20) - 4096) },
      },
    );
    assertFailure(bad, ExitCode.MEDIUM, 'media', 'read');
    const summary = assertNdjson('read', bad.stdout).at(-2)!;
    assert.deepEqual([summary.status, summary.badBytes], ['failed', 4096]);
  });

  it('info, pstore extract, layout, format and clear: their objects; no pstore region is a result (4)', async () => {
    const gpt = fixture('stock61-gpt');
    const info = await run(['info', gpt, '--json']);
    assert.equal(info.code, 0, info.stderr);
    assertContract('info', JSON.parse(info.stdout));

    const full = fixture('c61-full-deflate');
    const cmdline = readFileSync(join(kernelFixturesDir, 'c61-full-deflate/cmdline.txt'), 'utf8').trim();
    const x = await run(['pstore', 'extract', full, '--cmdline', cmdline, '-o', join(tmp, 'x'), '--json']);
    assert.equal(x.code, 0, x.stderr);
    const index = JSON.parse(x.stdout);
    assertContract('pstore-extract', index);
    assert.deepEqual([...new Set(index.records.map((r: { type: string }) => r.type))].sort(), ['console', 'dmesg', 'ftrace', 'pmsg']);
    const blank = file('blank.img', 2 << 20);
    assertFailure(await run(['pstore', 'extract', blank, '-o', join(tmp, 'none'), '--json', '--log-format', 'json']), ExitCode.NO_PSTORE, 'result', 'error');

    const layout = await run(['pstore', 'layout', '--region-size', '1M', '--kmsg-size', '64', '--pmsg-size', '16', '--json']);
    assert.equal(layout.code, 0, layout.stderr);
    assertContract('pstore-layout', JSON.parse(layout.stdout));

    const geometry = ['--kmsg-size', '64', '--pmsg-size', '0', '--console-size', '0', '--ftrace-size', '0'];
    for (const extra of [['--dry-run'], ['--yes', '--headers']]) {
      const f = await run(['pstore', 'format', blank, ...geometry, ...extra, '--json']);
      assert.equal(f.code, 0, f.stderr);
      assertContract('pstore-format', JSON.parse(f.stdout));
    }
    const clear = await run(['pstore', 'clear', full, '--cmdline', cmdline, '--dry-run', '--json']);
    assert.equal(clear.code, 0, clear.stderr);
    assertContract('pstore-clear', JSON.parse(clear.stdout));
  });

  it('provision (plan and result) and profile list, show and validate', async () => {
    const card = join(tmp, 'prov.img');
    writeFileSync(card, '');
    truncateSync(card, 64 << 20);
    for (const extra of [['--dry-run'], ['--yes']]) {
      const p = await run(['provision', card, '--profile', 'qemu-x86_64', '--guid-seed', 'contract', ...extra, '--json']);
      assert.equal(p.code, 0, p.stderr);
      const out = JSON.parse(p.stdout);
      assertContract('provision', out);
      assert.equal(out.result === null, extra[0] === '--dry-run');
    }
    const list = await run(['profile', 'list', '--json']);
    assertContract('profile#/$defs/list', JSON.parse(list.stdout));
    const show = await run(['profile', 'show', 'rpi-sd', '--json']);
    assertContract('profile#/$defs/show', JSON.parse(show.stdout));
    const valid = await run(['profile', 'validate', join(repoRoot, 'hw-profiles/boards/rpi-sd.json'), '--json']);
    assert.equal(valid.code, 0, valid.stderr);
    assertContract('profile#/$defs/validate', JSON.parse(valid.stdout));
    const broken = join(tmp, 'broken.json');
    copyFileSync(join(repoRoot, 'hw-profiles/boards/rpi-sd.json'), broken);
    writeFileSync(broken, readFileSync(broken, 'utf8').replace('"name"', '"nmae"'));
    const invalid = await run(['profile', 'validate', broken, '--json', '--log-format', 'json']);
    const lines = invalid.stdout.trim().split('\n');
    assertContract('profile#/$defs/validate', JSON.parse(lines.slice(0, -1).join('\n')));
    assertFailure(invalid, ExitCode.BAD_INPUT, 'image', 'error');
  });

  it('list and wait: the objects the commands print, from the simulated reader', async () => {
    const fast = { bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' } };
    const sim = new SimReader({ ports: [1, 4], serial: 'SER1', luns: [new MemoryCard(2048), null] });
    const gone = new SimReader({ ports: [2] });
    gone.vanish();
    const host = new SimHost([sim, gone]);
    assertContract('list', { readers: await collectReaders({ ...fast, host }) });
    assertContract('wait', await waitForCard({ ...fast, host: new SimHost([sim]), event: 'insert', timeoutMs: 0, profiles: [] }));
  });

  it('mux: the report `mux --json` prints after a switch and for status, both USB-SD-Mux generations and the SDWire', async () => {
    const opts = (host: SimHost) => ({ host, profiles: loadReaderProfiles(), offSettleMs: 0, bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' } });
    for (const variant of ['classic', 'fast'] as const) {
      const host = new SimHost([new SimUsbSdMux(variant, { serial: 'MUX42' }).reader]);
      for (const action of ['host', 'dut', 'off', 'status'] as const) {
        const r = await controlMux('usb:serial=MUX42', action, opts(host));
        // what the command prints: the report through JSON
        assertContract('mux', JSON.parse(JSON.stringify(r)), `${variant} ${action}`);
        if (action === 'status') assert.equal(typeof r.pins, 'number');
      }
    }
    const w = new SimSdWire({ serial: 'SDW42' });
    for (const action of ['host', 'dut', 'status'] as const) {
      const r = await controlMux('usb:serial=SDW42', action, opts(new SimHost([w.reader], [], [w])));
      assertContract('mux', JSON.parse(JSON.stringify(r)), `sdwire ${action}`);
      assert.equal(r.reader, 'usb:1-1.3.2');
    }
    const v = validatorFor('mux');
    assert.equal(v({ selector: 'usb:1-1.4', id: '0424:4041', variant: 'classic', expander: { name: 'PCA9536', address: 65 }, mode: 'up' }), false, 'an unknown mode');
    assert.equal(v({ selector: 'usb:1-1.4', id: '0424:4041', variant: 'classic', mode: 'host' }), false, 'a USB-SD-Mux report names its expander');
  });
});
