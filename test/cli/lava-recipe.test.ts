/**
 * The LAVA recipe (contrib/lava): the device dictionary's flasher_deploy_commands run as LAVA's
 * flasher deploy action runs them — `{IMAGE}` replaced by the image's file name in the download
 * folder, the line split into words (shlex), run without a shell in that folder — with the reader
 * named in the dictionary replaced by a card image file. The wrapper's verdict names the LAVA error
 * for each fault class, and the exit status stays crashcart's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { repoRoot } from '../helpers/kernel-fixtures.js';

const PYTHON = '/usr/bin/python3';
const havePython = spawnSync(PYTHON, ['-c', 'import json'], { stdio: 'ignore' }).status === 0;
const lavaDir = join(repoRoot, 'contrib/lava');
const READER = 'usb:1-1.2';
const tmp = mkdtempSync(join(tmpdir(), 'crashcart-lava-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The commands of the dictionary's (uncommented) flasher_deploy_commands. */
function flasherCommands(): string[] {
  const text = readFileSync(join(lavaDir, 'device-dictionary.jinja2'), 'utf8').replace(/\{#[\s\S]*?#\}/g, '');
  const m = /\{%\s*set\s+flasher_deploy_commands\s*=\s*\[([\s\S]*?)\]\s*%\}/.exec(text);
  assert.ok(m, 'flasher_deploy_commands in the device dictionary');
  return [...m[1].matchAll(/'([^']*)'|"([^"]*)"/g)].map((x) => x[1] ?? x[2]);
}

/** Python's shlex.split for the quoting a command line in a dictionary uses (quotes, backslashes, blanks). */
function shlexSplit(s: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (/\s/.test(c)) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else if (c === "'" || c === '"') {
      const end = s.indexOf(c, i + 1);
      assert.ok(end > i, `unterminated quote in ${s}`);
      cur = (cur ?? '') + s.slice(i + 1, end);
      i = end;
    } else if (c === '\\') cur = (cur ?? '') + s[++i];
    else cur = (cur ?? '') + c;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

/** Runs the flasher commands as LAVA would for one downloaded image, against `device` instead of the reader. */
function deploy(imageFile: string, device: string, env: Record<string, string> = {}) {
  const download = mkdtempSync(join(tmp, 'download-'));
  const name = imageFile.split('/').at(-1)!;
  copyFileSync(imageFile, join(download, name));
  const results = [];
  for (const line of flasherCommands()) {
    const substituted = line.replaceAll('{IMAGE}', name).replaceAll(READER, device);
    const [cmd, ...args] = shlexSplit(substituted);
    const r = spawnSync(cmd, args, {
      cwd: download,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${lavaDir}${delimiter}${process.env.PATH}`, CRASHCART: join(repoRoot, 'bin/crashcart'), ...env },
    });
    results.push(r);
    if (r.status !== 0) break;
  }
  return results.at(-1)!;
}

describe('LAVA flasher recipe', { skip: havePython ? false : 'python3 is not installed' }, () => {
  const gz = join(repoRoot, 'test/fixtures/flash/disk.img.gz');
  const disk = gunzipSync(readFileSync(gz));

  it('the dictionary calls the wrapper with {IMAGE} and the reader port path', () => {
    assert.deepEqual(flasherCommands(), [`crashcart-lava flash --yes {IMAGE} ${READER}`]);
  });

  it('flashes and verifies the downloaded image', () => {
    const card = join(tmp, 'card.img');
    writeFileSync(card, new Uint8Array(4 << 20).fill(0xa5));
    const r = deploy(gz, card);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /crashcart-lava: .*card\.img: \d+ bytes, verified/);
    assert.ok(readFileSync(card).subarray(0, disk.length).equals(disk));
  });

  it('a truncated image is a JobError; a card that fails or a reader that goes away an InfrastructureError', () => {
    mkdirSync(join(tmp, 'cut'), { recursive: true });
    const cut = join(tmp, 'cut/disk.img.gz');
    const bytes = readFileSync(gz);
    writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    const card = join(tmp, 'card2.img');
    writeFileSync(card, new Uint8Array(4 << 20));
    const image = deploy(cut, card);
    assert.equal(image.status, 10);
    assert.match(image.stderr, /^crashcart-lava: JobError \(image fault, exit 10\): /m);

    const preload = { NODE_OPTIONS: `--import=${join(repoRoot, 'dist/test/cli/helpers/faulty-device.js')}`, CRASHCART_TEST_FAULT_OFFSET: String(1 << 20) };
    const medium = deploy(join(repoRoot, 'test/fixtures/flash/disk.img'), `faulty:${card}`, { ...preload, CRASHCART_TEST_FAULT: 'medium' });
    assert.equal(medium.status, 8, medium.stderr);
    assert.match(medium.stderr, /^crashcart-lava: InfrastructureError \(media fault, exit 8\): /m);
    const gone = deploy(join(repoRoot, 'test/fixtures/flash/disk.img'), `faulty:${card}`, { ...preload, CRASHCART_TEST_FAULT: 'gone' });
    assert.equal(gone.status, 3, gone.stderr);
    assert.match(gone.stderr, /^crashcart-lava: InfrastructureError \(infrastructure fault, exit 3\): /m);
  });
});
