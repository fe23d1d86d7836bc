/**
 * The CLI front as bin/crashcart runs it: the command line (main.ts, the command definitions in
 * args/, the command implementations in commands/ and the library they use) and yargs built into
 * one script, dist/src/cli/front.bundle.cjs, by scripts/build-front.mjs (part of `npm run build`),
 * and compiled with the V8 code cache that the build made beside it (../util/code-cache.ts).
 * Start-up then resolves and compiles none of the ES modules of dist/src or yargs: that is most
 * of what it cost (README, "Start-up"). A command's implementation and the library modules it
 * imports are initialised when it runs (esbuild's lazy module wrappers), not at start.
 *
 * The bundle is a function expression taking FRONT_PARAMETERS. What it does not hold it gets
 * from here: import() of the runtime packages the library loads when it needs them (usb, codecs,
 * progress; `vm` scripts cannot import() without an experimental flag), the URL of each of our
 * modules' file in dist/src (their `import.meta.url`: worker entries, hw-profiles/, wasm), and
 * yargs' own location (its locales and the package.json `--version` reads).
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compileWithCodeCache, writeCodeCache, type CachedScript, type CodeCacheStatus } from '../util/code-cache.js';
import type { main as mainFn } from './main.js';

/**
 * The bundle's parameters: CommonJS's first three, then import() of a package by name, the URL of
 * a module of dist/src by its path there, and `import.meta` of a yargs file by its path in the package.
 */
export const FRONT_PARAMETERS = ['exports', 'require', 'module', '__crashcartImport', '__crashcartSrcUrl', '__crashcartImportMeta'] as const;

export const FRONT_BUNDLE = fileURLToPath(new URL('./front.bundle.cjs', import.meta.url));
export const FRONT_CODE_CACHE = `${FRONT_BUNDLE}.v8cache`;

export interface Front {
  main: typeof mainFn;
  /** process.argv without node and the script (yargs' hideBin). */
  hideBin: (argv: string[]) => string[];
  /**
   * The library (../index.ts) as the bundle holds it, initialised on the first call. Code in the
   * process of the command line (a module preloaded with `node --import` before bin/crashcart)
   * registers device openers and throws error classes through this copy, the one the commands use.
   */
  library: () => Promise<typeof import('../index.js')>;
  /** Whether the code cache was used, or why not. */
  cache: CodeCacheStatus;
}

const srcDir = new URL('../', import.meta.url);
const FRONTS = Symbol.for('crashcart.cli.fronts');

/**
 * The package.json of package `name` as `require` finds it: in the first node_modules up the
 * folders that has it, its real path. The same file as require.resolve(`${name}/package.json`)
 * without reading the package's exports (~1 ms at every start).
 */
function packageJson(require: NodeJS.Require, name: string): string {
  const { existsSync, realpathSync } = require('node:fs') as typeof import('node:fs');
  for (const dir of require.resolve.paths(name) ?? []) {
    const path = `${dir}/${name}/package.json`;
    if (existsSync(path)) return realpathSync(path);
  }
  return require.resolve(`${name}/package.json`);
}

function instantiate(compiled: CachedScript, bundle: string): Front {
  const require = createRequire(bundle);
  const yargsRoot = pathToFileURL(packageJson(require, 'yargs'));
  const importMeta = (path: string) => {
    const url = new URL(path, yargsRoot).href;
    // resolve: only yargs' `extends` of a .config() file asks for it, which crashcart has none of.
    return { url, resolve: (specifier: string) => pathToFileURL(createRequire(url).resolve(specifier)).href };
  };
  // A package resolves from here as from any module of dist/src (the same node_modules).
  const importPackage = (name: string) => import(name);
  const srcUrl = (path: string) => new URL(path, srcDir).href;
  const module = { exports: {} as Omit<Front, 'cache'> };
  const fn = compiled.script.runInThisContext() as (...args: unknown[]) => void;
  fn(module.exports, require, module, importPackage, srcUrl, importMeta);
  const { main, hideBin, library } = module.exports;
  return { main, hideBin, library, cache: compiled.cache };
}

/**
 * The fronts loaded in this process, by bundle and cache file: one copy of the library each. Kept
 * on globalThis: bin/crashcart loads this module as CommonJS (front-loader.cjs, built from it),
 * a preloaded ES module imports front.js; both get the same front.
 */
const loaded: Map<string, Front> = ((globalThis as { [FRONTS]?: Map<string, Front> })[FRONTS] ??= new Map());

/**
 * The CLI front, compiled with its code cache where that fits (`bundle` and `cache`: for tests),
 * once per process: a second call returns the first one's front.
 */
export function loadFront(bundle = FRONT_BUNDLE, cache = FRONT_CODE_CACHE): Front {
  const key = `${bundle}\0${cache}`;
  const known = loaded.get(key);
  if (known) return known;
  let compiled: CachedScript;
  try {
    compiled = compileWithCodeCache(bundle, cache);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${bundle} is missing: build crashcart with npm run build`);
    throw e;
  }
  const front = instantiate(compiled, bundle);
  loaded.set(key, front);
  return front;
}

/**
 * For the build: compiles the front without a cache, runs it on each argument list (their output
 * is the caller's to discard), then writes the code cache, which so holds the functions those
 * runs compiled (help layout included), not only the top level.
 */
export async function writeFrontCodeCache(runs: string[][], bundle = FRONT_BUNDLE, cache = FRONT_CODE_CACHE): Promise<void> {
  const compiled = compileWithCodeCache(bundle, undefined);
  const front = instantiate(compiled, bundle);
  for (const argv of runs) await front.main(argv);
  writeCodeCache(compiled, cache);
}
