/**
 * Progress on a real terminal: `flash` run in a pseudo-terminal (util-linux `script`), once with a
 * size and once with none set (0 columns, as a pty that nobody sized reports). The spinner and bar
 * must show and end, and the command must finish: with 0 columns ora used to write cursor-up
 * sequences without end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BIN = resolve('bin/crashcart');
const haveScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

for (const cols of [100, 0]) {
  test(`flash on a terminal of ${cols} columns shows its progress and finishes`, { skip: !haveScript && 'no script(1) here' }, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'crashcart-tty-test-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const image = join(dir, 'image.img');
    const card = join(dir, 'card.img');
    const log = join(dir, 'typescript');
    writeFileSync(image, randomBytes(4 << 20));
    writeFileSync(card, new Uint8Array(8 << 20));
    const cmd = `stty cols ${cols} rows ${cols ? 30 : 0}; ${sh(process.execPath)} ${sh(BIN)} flash ${sh(image)} ${sh(card)} --yes`;
    const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' };
    delete env.CI;
    const r = spawnSync('script', ['-qec', cmd, log], { env, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'ignore', 'pipe'] });
    assert.equal(r.error, undefined, `script: ${r.error?.message}`);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(statSync(log).size < 256 * 1024, `the terminal got ${statSync(log).size} bytes`);
    const out = readFileSync(log, 'latin1');
    assert.match(out, /verified/);
    assert.match(out, /\u001b\[\?25l/, 'the spinner or bar hid the cursor: progress was shown');
    assert.match(out, /\u001b\[\?25h/, 'and showed it again');
  });
}
