/**
 * `crashcart --version` prints crashcart's own version wherever it is installed: in a project that
 * installed it locally (node_modules/crashcart, yargs hoisted beside it), yargs would otherwise read
 * the package.json of the folder holding that node_modules, the project's own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve('.');
const OWN = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

test('--version in a project that installed crashcart locally is crashcart’s version, not the project’s', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-version-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pkg = join(dir, 'node_modules/crashcart');
  mkdirSync(join(pkg, 'dist'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'some-lab-project', version: '9.9.9' }));
  for (const p of ['bin', 'package.json']) cpSync(join(ROOT, p), join(pkg, p), { recursive: true });
  cpSync(join(ROOT, 'dist/src'), join(pkg, 'dist/src'), { recursive: true });
  cpSync(join(ROOT, 'node_modules/yargs'), join(dir, 'node_modules/yargs'), { recursive: true });
  const r = spawnSync(process.execPath, [join(pkg, 'bin/crashcart'), '--version'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), OWN);
  assert.notEqual(OWN, '9.9.9');
});
