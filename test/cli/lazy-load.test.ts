/**
 * Start-up loads only what the command needs: yargs parses the arguments first, and a
 * command's implementation, the library, the `usb` native module, codecs and progress
 * libraries are imported only when that command runs (src/cli/args/load-command.ts). Checked
 * on the real executable with a module-load trace (./helpers/module-trace.ts), not by timing,
 * and in the CLI front bundle that bin/crashcart runs (src/cli/front.ts): the modules built into it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-lazy-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(repoRoot, 'bin/crashcart');
const hook = pathToFileURL(fileURLToPath(new URL('./helpers/module-trace.js', import.meta.url))).href;
const srcDir = join(repoRoot, 'dist/src') + '/';

let traces = 0;
/** Runs crashcart under the trace; its exit status and the loaded modules as paths (node: builtins as is). */
function traced(...args: string[]): { status: number | null; stderr: string; modules: string[] } {
  const file = join(tmp, `trace-${traces++}.txt`);
  writeFileSync(file, '');
  const r = spawnSync(process.execPath, ['--import', hook, bin, ...args], { encoding: 'utf8', env: { ...process.env, CRASHCART_MODULE_TRACE: file } });
  const modules = [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))].map((u) => (u.startsWith('file:') ? fileURLToPath(u) : u));
  return { status: r.status, stderr: r.stderr, modules };
}

/** Our own modules loaded (paths under dist/src), relative. */
const ownModules = (modules: string[]) => modules.filter((m) => m.startsWith(srcDir)).map((m) => m.slice(srcDir.length));
/** The npm packages loaded (by name, scoped names included). */
const packages = (modules: string[]) => new Set(modules.map((m) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m)?.[1]).filter((p): p is string => p !== undefined));

/**
 * What parsing the arguments may load of our own: the CLI front's loader and its code cache
 * (the entry and the command definitions are in its bundle), errors, diagnostics and the signal handling.
 */
const PARSING = /^(cli\/front\.js|util\/code-cache\.js|cli\/cancellation\.js|cli\/diagnostics\.js|errors\.js)$/;
/** The `usb` package and its native builds (@node-usb/…), progress bars and spinners, codecs. */
const heavy = (loaded: Set<string>) => [...loaded].filter((p) => /^(usb|@node-usb\/.*|cli-progress|ora|fzstd|xz-decompress|@foxglove\/wasm-bz2)$/.test(p));

describe('start-up loads only what the command needs', () => {
  for (const args of [['--help'], ['--version'], ['pstore', 'extract', '--help'], ['flash', '--help'], ['pstore', '--help'], ['flash'], ['frobnicate']]) {
    it(`crashcart ${args.join(' ')}: yargs and the command definitions only`, () => {
      const t = traced(...args);
      assert.equal(t.status, args.includes('--help') || args.includes('--version') ? 0 : 2, t.stderr);
      assert.deepEqual(
        ownModules(t.modules).filter((m) => !PARSING.test(m)),
        [],
        'library modules loaded before a command runs',
      );
      const loaded = packages(t.modules);
      assert.deepEqual(heavy(loaded), []);
      assert.ok(!t.modules.some((m) => m.endsWith('.node')), `a native addon was loaded: ${t.modules.filter((m) => m.endsWith('.node'))}`);
      assert.ok(ownModules(t.modules).includes('cli/front.js'), 'the trace sees the modules that are loaded');
    });
  }

  it('the CLI front bundle holds the entry, the command definitions and yargs with its dependencies, nothing of the library', () => {
    // esbuild heads each module it builds in with a comment naming its path (from the working directory).
    const built = [...readFileSync(join(repoRoot, 'dist/src/cli/front.bundle.cjs'), 'utf8').matchAll(/^\s*\/\/ (?:\S*?\/)??((?:dist\/src|node_modules)\/\S+)$/gm)].map((m) => m[1]);
    const own = [...new Set(built.filter((p) => p.startsWith('dist/src/')).map((p) => p.slice('dist/src/'.length)))];
    assert.ok(own.includes('cli/main.js') && own.includes('cli/args/flash.js'), `the bundle's modules were not found: ${own}`);
    assert.deepEqual(
      own.filter((m) => !/^(front-entry\.js|cli\/main\.js|cli\/args\/[a-z-]+\.js)$/.test(m)),
      [],
      'library modules in the front bundle',
    );
    const bundledPackages = packages(built.map((p) => `/${p}`));
    assert.ok(bundledPackages.has('yargs') && bundledPackages.has('yargs-parser'), `${[...bundledPackages]}`);
    assert.deepEqual(heavy(bundledPackages), []);
  });

  it('a command that runs loads its implementation and the library (the trace sees dynamic imports), without codecs, progress libraries or usb it does not use', () => {
    const image = join(tmp, 'stock61-gpt.img');
    writeFileSync(image, gunzipSync(readFileSync(join(kernelFixturesDir, 'stock61-gpt/disk.img.gz'))));
    const t = traced('pstore', 'layout', image);
    assert.equal(t.status, 0, t.stderr);
    const own = ownModules(t.modules);
    for (const m of ['cli/commands/pstore-layout.js', 'pstore/plan-geometry.js', 'cli/usb-support.js']) assert.ok(own.includes(m), `${m} not loaded`);
    assert.deepEqual(heavy(packages(t.modules)), []);
    assert.ok(!t.modules.some((m) => m.endsWith('.node')));
  });

  it('profile list and show load the profiles, not the flash pipeline or its codecs', () => {
    for (const args of [
      ['profile', 'list'],
      ['profile', 'show', 'qemu-x86_64'],
    ]) {
      const t = traced(...args);
      assert.equal(t.status, 0, t.stderr);
      const own = ownModules(t.modules);
      assert.ok(own.includes('profile/board-profile.js'), 'profile/board-profile.js not loaded');
      assert.deepEqual(
        own.filter((m) => m.startsWith('flash/')),
        [],
        `${args.join(' ')} loaded the flash pipeline`,
      );
      assert.deepEqual(heavy(packages(t.modules)), []);
    }
  });
});
