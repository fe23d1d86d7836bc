/** The flash and read command lines, run as child processes with stdin not a terminal. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DISK, fixture, tempDir } from './helpers.js';

const RUN = resolve('dist/test/unit/flash/run-cli.js');

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', input: '', env: { ...process.env, CI: '', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function card(dir: string, name: string, size = 4 * 1024 * 1024): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, new Uint8Array(size).fill(0xa5));
  return p;
}

test('flash --json: NDJSON events and a summary; cards hold the image', async (t) => {
  const dir = tempDir(t);
  const a = await card(dir, 'a.img');
  const b = await card(dir, 'b.img');
  const r = cli(['flash', fixture('disk.img.zst'), a, b, '--yes', '--json', '--no-bmap'], { XDG_STATE_HOME: dir });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines[0].type, 'start');
  assert.ok(lines.some((l) => l.type === 'phase' && l.phase === 'verifying'));
  assert.ok(lines.some((l) => l.type === 'progress' && typeof l.speed === 'number' && 'eta' in l));
  const summary = lines[lines.length - 1] as { type: string; ok: boolean; exitCode: number; targets: { ok: boolean; verified: boolean }[]; image: { sha256: string } };
  assert.equal(summary.type, 'summary');
  assert.equal(summary.ok, true);
  assert.deepEqual(
    summary.targets.map((x) => [x.ok, x.verified]),
    [
      [true, true],
      [true, true],
    ],
  );
  assert.equal(summary.image.sha256, createHash('sha256').update(DISK()).digest('hex'));
  for (const c of [a, b]) assert.ok((await readFile(c)).subarray(0, DISK().length).equals(Buffer.from(DISK())));
});

test('flash without --yes and no terminal: usage error (2), nothing written', async (t) => {
  const dir = tempDir(t);
  const a = await card(dir, 'a.img');
  const r = cli(['flash', fixture('disk.img'), a]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pass --yes/);
  assert.ok((await readFile(a)).every((x) => x === 0xa5));
});

test('flash exit codes: too small 12, corrupt source 10, missing image 2, several failures summed up', async (t) => {
  const dir = tempDir(t);
  const small = await card(dir, 'small.img', 1024 * 1024);
  let r = cli(['flash', fixture('disk.img.xz'), small, '--yes']);
  assert.equal(r.code, 12);
  assert.match(r.stderr, /holds only 1048576 bytes/);

  const bad = join(dir, 'bad.img.xz');
  const bytes = await readFile(fixture('disk.img.xz'));
  await writeFile(bad, bytes.subarray(0, bytes.length - 200));
  r = cli(['flash', bad, await card(dir, 'c.img'), '--yes', '--no-bmap']);
  assert.equal(r.code, 10, r.stderr);
  assert.match(r.stderr, /xz/);

  r = cli(['flash', join(dir, 'nope.img'), small, '--yes']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no such file/);

  const ok = await card(dir, 'ok.img');
  r = cli(['flash', fixture('disk.img'), ok, small, '--yes']);
  assert.equal(r.code, 12);
  assert.match(r.stdout, /ok {6}.*ok\.img/);
  assert.match(r.stdout, /FAILED {2}.*small\.img/);
  assert.match(r.stdout, /1 of 2 destination\(s\) succeeded/);
});

test('flash refuses to write the image onto itself', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'self.img');
  await writeFile(img, DISK());
  const r = cli(['flash', img, img, '--yes', '--no-bmap']);
  assert.equal(r.code, 12);
  assert.match(r.stderr, /image being flashed/);
});

test('read prints "sha256  FILE" and writes the map', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'card.img');
  await writeFile(src, DISK());
  const out = join(dir, 'copy.img');
  const r = cli(['read', src, '-o', out, '--offset', '1M', '--size', '0x40000']);
  assert.equal(r.code, 0, r.stderr);
  const want = DISK().subarray(1048576, 1048576 + 0x40000);
  assert.equal(r.stdout, `${createHash('sha256').update(want).digest('hex')}  ${out}\n`);
  assert.ok((await readFile(out)).equals(Buffer.from(want)));
  assert.match(await readFile(`${out}.map`, 'utf8'), /0x00100000  0x00040000  \+/);
  const bad = cli(['read', src, '-o', out, '--size', '12 parsecs']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /not a byte count/);
});
