/**
 * Start-up initialises only what the command needs: yargs parses the arguments first, and a
 * command's implementation, the library, the `usb` native module, codecs and progress
 * libraries are initialised or loaded only when that command runs (src/cli/args/load-command.ts).
 *
 * bin/crashcart runs one bundle (src/cli/front.ts) that holds the command line and the library,
 * each module of the library wrapped to be initialised when it is first imported. Checked, not by
 * timing, with
 *   - a module-load trace (./helpers/module-trace.ts) of the real executable: the ES modules,
 *     CommonJS files and native addons the process loads (the runtime packages stay outside the
 *     bundle and load from node_modules), and
 *   - the same bundle with esbuild's module initialiser instrumented: the modules of dist/src
 *     it initialised;
 * and by reading the bundle: what it holds and what it leaves to node_modules.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isBuiltin } from 'node:module';
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
const bundlePath = join(srcDir, 'cli/front.bundle.cjs');
const bundle = readFileSync(bundlePath, 'utf8');

/**
 * The bundle with esbuild's lazy module initialiser (`__esm`) recording each module it initialises,
 * by its path (dist/src/…), in globalThis.__crashcartInits. Kept under the repository (dist/test), so
 * that the bundle's require() of a runtime package resolves to the same node_modules.
 */
const INIT = 'var __esm = (fn, res, err) => function __init() {\n';
assert.ok(bundle.includes(INIT), "esbuild's module initialiser not found in the bundle");
const instrumentedDir = mkdtempSync(join(repoRoot, 'dist/test/lazy-load-'));
after(() => rmSync(instrumentedDir, { recursive: true, force: true }));
const instrumented = join(instrumentedDir, 'front.bundle.cjs');
writeFileSync(instrumented, bundle.replace(INIT, `${INIT}  if (fn) globalThis.__crashcartInits?.push(__getOwnPropNames(fn)[0]);\n`));
/** bin/crashcart with the instrumented bundle: at exit, the modules initialised, one a line as `init:PATH`. */
const instrumentedBin = join(instrumentedDir, 'crashcart-instrumented.mjs');
writeFileSync(
  instrumentedBin,
  `import { appendFileSync } from 'node:fs';
import { loadFront } from ${JSON.stringify(pathToFileURL(join(srcDir, 'cli/front.js')).href)};
globalThis.__crashcartInits = [];
process.on('exit', () => appendFileSync(process.env.CRASHCART_MODULE_TRACE, globalThis.__crashcartInits.map((p) => 'init:' + p + '\\n').join('')));
const { main, hideBin } = loadFront(${JSON.stringify(instrumented)}, undefined);
process.exitCode = await main(hideBin(process.argv));
`,
);

let traces = 0;
interface Trace {
  status: number | null;
  stderr: string;
  /** The files loaded: ES modules and CommonJS files as paths (node: builtins as is), native addons. */
  modules: string[];
  /** Our modules the bundle initialised, by path under dist/src (instrumented runs only). */
  initialised: string[];
}
/** Runs crashcart (or `entry`) under the trace. */
function traced(entry: string, ...args: string[]): Trace {
  const file = join(tmp, `trace-${traces++}.txt`);
  writeFileSync(file, '');
  const r = spawnSync(process.execPath, ['--import', hook, entry, ...args], { encoding: 'utf8', env: { ...process.env, CRASHCART_MODULE_TRACE: file } });
  const lines = [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))];
  const initialised = lines.filter((l) => l.startsWith('init:dist/src/')).map((l) => l.slice('init:dist/src/'.length));
  const modules = lines.filter((l) => !l.startsWith('init:')).map((u) => (u.startsWith('file:') ? fileURLToPath(u) : u));
  return { status: r.status, stderr: r.stderr, modules, initialised };
}

/** Our own ES modules loaded (paths under dist/src), relative. */
const ownModules = (modules: string[]) => modules.filter((m) => m.startsWith(srcDir)).map((m) => m.slice(srcDir.length));
/** The npm packages loaded (by name, scoped names included). */
const packages = (modules: string[]) => new Set(modules.map((m) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m)?.[1]).filter((p): p is string => p !== undefined));

/**
 * The files of dist/src a process loads besides the bundle: the loader with its code cache, as
 * bin/crashcart loads it (one CommonJS file) or as ES modules (the instrumented entry).
 */
const LOADER = ['cli/front-loader.cjs', 'cli/front.js', 'util/code-cache.js'];
/** What parsing the arguments initialises of the library: errors, diagnostics and the signal handling. */
const PARSING = /^(cli\/cancellation\.js|cli\/diagnostics\.js|errors\.js)$/;
/** The `usb` package and its native builds (@node-usb/…), progress bars and spinners, codecs. */
const heavy = (loaded: Set<string>) => [...loaded].filter((p) => /^(usb|@node-usb\/.*|cli-progress|ora|fzstd|xz-decompress|zstddec|@foxglove\/wasm-bz2)$/.test(p));

/** esbuild heads each module it builds in with a comment naming its path (from the working directory). */
const built = [...bundle.matchAll(/^\s*\/\/ (?:\S*?\/)??((?:dist\/src|node_modules)\/\S+)$/gm)].map((m) => m[1]);
const builtOwn = [...new Set(built.filter((p) => p.startsWith('dist/src/')).map((p) => p.slice('dist/src/'.length)))];
/** Our modules that run when the bundle loads (not wrapped to be initialised when imported): the command line's definitions. */
const EAGER = /^(front-entry\.js|cli\/main\.js|cli\/args\/[a-z-]+\.js)$/;

describe('start-up initialises only what the command needs', () => {
  for (const args of [['--help'], ['--version'], ['pstore', 'extract', '--help'], ['flash', '--help'], ['pstore', '--help'], ['flash'], ['frobnicate']]) {
    it(`crashcart ${args.join(' ')}: yargs and the command definitions only`, () => {
      const status = args.includes('--help') || args.includes('--version') ? 0 : 2;
      for (const t of [traced(bin, ...args), traced(instrumentedBin, ...args)]) {
        assert.equal(t.status, status, t.stderr);
        assert.deepEqual(
          ownModules(t.modules).filter((m) => !LOADER.includes(m)),
          [],
          'ES modules of dist/src loaded besides the loader',
        );
        assert.deepEqual(heavy(packages(t.modules)), []);
        assert.ok(!t.modules.some((m) => m.endsWith('.node')), `a native addon was loaded: ${t.modules.filter((m) => m.endsWith('.node'))}`);
        assert.ok(ownModules(t.modules).length > 0, 'the trace sees the modules that are loaded');
      }
      const t = traced(instrumentedBin, ...args);
      assert.ok(t.initialised.includes('errors.js'), `the instrumented bundle reports what it initialises: ${t.initialised}`);
      assert.deepEqual(
        t.initialised.filter((m) => !PARSING.test(m)),
        [],
        'library modules initialised before a command runs',
      );
    });
  }

  it('bin/crashcart loads of dist/src only the CommonJS loader (and the bundle it compiles), no ES module', () => {
    const t = traced(bin, '--version');
    assert.deepEqual(ownModules(t.modules), ['cli/front-loader.cjs']);
    assert.deepEqual(
      t.modules.filter((m) => m.startsWith('file:') || /\.m?js$/.test(m)),
      [],
      'ES modules or other scripts loaded (yargs is in the bundle)',
    );
  });

  it('the bundle holds the command line, yargs and the library, each library module initialised when first imported; the runtime packages and worker entries stay outside', () => {
    for (const m of ['cli/main.js', 'cli/args/flash.js', 'cli/commands/info.js', 'cli/commands/flash.js', 'pstore/extract.js', 'errors.js', 'index.js'])
      assert.ok(builtOwn.includes(m), `${m} not in the bundle: ${builtOwn}`);
    for (const worker of ['pstore/kmsg-decode-worker.js', 'flash/decode-worker.js', 'flash/bzip2-block-worker.js'])
      assert.ok(!builtOwn.includes(worker), `${worker} is in the bundle`);
    const wrapped = new Set([...bundle.matchAll(/^\s*"dist\/src\/([^"]+)"\(\) \{$/gm)].map((m) => m[1]));
    assert.ok(wrapped.has('cli/commands/info.js'), 'no wrapped modules found');
    assert.deepEqual(
      builtOwn.filter((m) => !wrapped.has(m) && !EAGER.test(m)),
      [],
      'library modules that run when the bundle loads',
    );
    const bundledPackages = packages(built.map((p) => `/${p}`));
    assert.ok(bundledPackages.has('yargs') && bundledPackages.has('yargs-parser'), `${[...bundledPackages]}`);
    assert.deepEqual(heavy(bundledPackages), []);
    // The runtime packages: require() of a CommonJS package, import() through the loader of an ES module one.
    const imported = new Set([...bundle.matchAll(/__crashcartImport\("([^"]+)"\)/g)].map((m) => m[1]));
    assert.deepEqual([...imported].sort(), ['ora']);
    const required = new Set([...bundle.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]).filter((n) => !isBuiltin(n)));
    assert.deepEqual([...required].sort(), ['cli-progress', 'fzstd', 'usb', 'xz-decompress']);
  });

  it('a command that runs initialises its implementation and the library it uses, without codecs, progress libraries or usb it does not use', () => {
    const image = join(tmp, 'stock61-gpt.img');
    writeFileSync(image, gunzipSync(readFileSync(join(kernelFixturesDir, 'stock61-gpt/disk.img.gz'))));
    const t = traced(instrumentedBin, 'pstore', 'layout', image);
    assert.equal(t.status, 0, t.stderr);
    for (const m of ['cli/commands/pstore-layout.js', 'pstore/plan-geometry.js', 'cli/usb-support.js']) assert.ok(t.initialised.includes(m), `${m} not initialised`);
    assert.deepEqual(
      t.initialised.filter((m) => m.startsWith('flash/') || m.startsWith('provision/')),
      [],
      'pstore layout initialised the flash or provisioning pipeline',
    );
    assert.deepEqual(heavy(packages(t.modules)), []);
    assert.ok(!t.modules.some((m) => m.endsWith('.node')));
    for (const args of [
      ['pstore', 'layout', image],
      ['info', image],
    ]) {
      const viaBin = traced(bin, ...args);
      assert.equal(viaBin.status, 0, viaBin.stderr);
      assert.deepEqual(heavy(packages(viaBin.modules)), [], args.join(' '));
      assert.ok(!viaBin.modules.some((m) => m.endsWith('.node')), `${args.join(' ')} loaded a native addon`);
    }
    const info = traced(instrumentedBin, 'info', image);
    assert.equal(info.status, 0, info.stderr);
    assert.ok(info.initialised.includes('cli/commands/info.js'));
    assert.deepEqual(
      info.initialised.filter((m) => /^(reader\/open-usb|blockdev\/usb-device|usb\/bot)\.js$/.test(m)),
      [],
      'info on an image initialised the USB stack',
    );
  });

  it('profile list and show initialise the profiles, not the flash pipeline or its codecs', () => {
    for (const args of [
      ['profile', 'list'],
      ['profile', 'show', 'qemu-x86_64'],
    ]) {
      const t = traced(instrumentedBin, ...args);
      assert.equal(t.status, 0, t.stderr);
      assert.ok(t.initialised.includes('profile/board-profile.js'), 'profile/board-profile.js not initialised');
      assert.deepEqual(
        t.initialised.filter((m) => m.startsWith('flash/')),
        [],
        `${args.join(' ')} initialised the flash pipeline`,
      );
      assert.deepEqual(heavy(packages(t.modules)), []);
    }
  });

  it('a codec loads from node_modules when a command uses it: flash of an xz image', () => {
    const card = join(tmp, 'card.img');
    writeFileSync(card, Buffer.alloc(16 * 1024 * 1024));
    const t = traced(instrumentedBin, 'flash', join(repoRoot, 'test/fixtures/flash/disk.img.xz'), card, '--yes');
    assert.equal(t.status, 0, t.stderr);
    assert.ok(t.initialised.includes('flash/decompress.js'), `${t.initialised}`);
    assert.ok(packages(t.modules).has('xz-decompress'), `${[...packages(t.modules)]}`);
  });
});
