/**
 * The CLI front as bin/crashcart runs it: the argument parsing (main.ts, the command definitions
 * in args/ and yargs) built into one script, dist/src/cli/front.bundle.cjs, by
 * scripts/build-front.mjs (part of `npm run build`), and compiled with the V8 code cache that the
 * build made beside it (../util/code-cache.ts). Start-up then resolves and compiles no module of
 * yargs' ~55 and none of the definitions': that is most of what it cost (README, "Start-up").
 *
 * The bundle is a function expression taking FRONT_PARAMETERS. What it does not hold it gets
 * from here: the modules whose state or classes the command implementations share with the
 * front (FRONT_SHARED: one ExitCode table and one set of error classes for `instanceof`, one
 * diagnostics format, one cancellation path), the import() of a command's implementation
 * (`vm` scripts cannot import() without an experimental flag; these are the ES modules in dist/),
 * and yargs' own location (its locales and the package.json `--version` reads).
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as errors from '../errors.js';
import { compileWithCodeCache, writeCodeCache, type CachedScript, type CodeCacheStatus } from '../util/code-cache.js';
import * as cancellation from './cancellation.js';
import * as diagnostics from './diagnostics.js';
import type { main as mainFn } from './main.js';

/** The bundle's modules that stay ES modules of dist/src, by path under dist/src. */
export const FRONT_SHARED: Record<string, object> = { 'errors.js': errors, 'cli/diagnostics.js': diagnostics, 'cli/cancellation.js': cancellation };

/**
 * The bundle's parameters: CommonJS's first three, then the shared modules by path, import() of
 * a module under dist/src by path, and `import.meta` of a yargs file by its path in the package.
 */
export const FRONT_PARAMETERS = ['exports', 'require', 'module', '__crashcartShared', '__crashcartImport', '__crashcartImportMeta'] as const;

export const FRONT_BUNDLE = fileURLToPath(new URL('./front.bundle.cjs', import.meta.url));
export const FRONT_CODE_CACHE = `${FRONT_BUNDLE}.v8cache`;

export interface Front {
  main: typeof mainFn;
  /** process.argv without node and the script (yargs' hideBin). */
  hideBin: (argv: string[]) => string[];
  /** Whether the code cache was used, or why not. */
  cache: CodeCacheStatus;
}

const srcDir = new URL('../', import.meta.url);

function shared(path: string): object {
  const m = FRONT_SHARED[path];
  if (!m) throw new Error(`the CLI front asked for ${path}, which is not one of its shared modules (scripts/build-front.mjs)`);
  return m;
}

function instantiate(compiled: CachedScript, bundle: string): Front {
  const yargsIndex = import.meta.resolve('yargs');
  const importMeta = (path: string) => {
    const url = new URL(path, yargsIndex).href;
    // resolve: only yargs' `extends` of a .config() file asks for it, which crashcart has none of.
    return { url, resolve: (specifier: string) => pathToFileURL(createRequire(url).resolve(specifier)).href };
  };
  const importSrc = (path: string) => import(new URL(path, srcDir).href);
  const module = { exports: {} as Omit<Front, 'cache'> };
  const fn = compiled.script.runInThisContext() as (...args: unknown[]) => void;
  fn(module.exports, createRequire(bundle), module, shared, importSrc, importMeta);
  return { main: module.exports.main, hideBin: module.exports.hideBin, cache: compiled.cache };
}

/** The CLI front, compiled with its code cache where that fits (`bundle` and `cache`: for tests). */
export function loadFront(bundle = FRONT_BUNDLE, cache = FRONT_CODE_CACHE): Front {
  let compiled: CachedScript;
  try {
    compiled = compileWithCodeCache(bundle, cache);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${bundle} is missing: build crashcart with npm run build`);
    throw e;
  }
  return instantiate(compiled, bundle);
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
