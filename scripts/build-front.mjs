#!/usr/bin/env node
// Builds the CLI front that bin/crashcart runs (src/cli/front.ts): dist/src/cli/main.js, the
// command definitions and implementations, the library they import (dist/src) and yargs with its
// dependencies in one script, dist/src/cli/front.bundle.cjs, then its V8 code cache
// (front.bundle.cjs.v8cache) from runs of `--help` and a subcommand's `--help`, and the loader
// bin/crashcart requires (front-loader.cjs). Part of `npm run build`, after tsc.
//
// Each module of dist/src but main.js and args/ is wrapped by esbuild to be initialised when first
// imported (a command's implementation by the import() in its definition). Left outside:
//   - the runtime packages the library imports (usb, codecs, progress): require() of a CommonJS
//     package, import() of an ES module one through the loader (`__crashcartImport`);
//   - the worker entries, which nothing imports: each bundled module's import.meta.url becomes the
//     URL of its file in dist/src (`__crashcartSrcUrl`), so `new URL('./x-worker.js',
//     import.meta.url)`, hw-profiles/ and createRequire(import.meta.url) find what they found before.
// yargs' help layout (cliui, string-width, wrap-ansi) is loaded when help is first laid out, not
// at start: their set-up builds an Intl.Segmenter and Unicode property regexps (ICU data), and
// `--version` never lays out help. The width of text made of the characters in NARROW_TEXT
// (src/cli/narrow-text.ts: ASCII, Latin-1, General Punctuation) is its length in every copy of
// string-width here, so string-width is only loaded for other text.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'dist/src');
const front = await import(pathToFileURL(join(srcDir, 'cli/front.js')).href);
const { NARROW_TEXT } = await import(pathToFileURL(join(srcDir, 'cli/narrow-text.js')).href);
const yargsDir = dirname(fileURLToPath(import.meta.resolve('yargs/package.json')));

/** Loads `module`'s default export when it is first called; NARROW_TEXT measured without it (string-width). */
function lazyDefault(module, narrowWidth) {
  const load = `(loaded ??= require(${JSON.stringify(module)}).default)`;
  return [
    'let loaded;',
    narrowWidth
      ? `export default (s, ...rest) => (typeof s === 'string' && rest.length === 0 && ${NARROW_TEXT}.test(s) ? s.length : ${load}(s, ...rest));`
      : `export default (...args) => ${load}(...args);`,
  ].join('\n');
}

/**
 * node:assert's strictEqual and notStrictEqual for yargs (its shim imports them; it checks its own
 * state with them on every run): loading node:assert costs ~9 ms, most of it creating
 * process.stderr for its colours. Both compare with Object.is; node:assert is loaded, and its
 * function throws its AssertionError, only when a check fails (or is called with too few arguments).
 */
const LAZY_ASSERT = `let assert;
const load = () => (assert ??= require('assert'));
export function strictEqual(actual, expected) {
  if (arguments.length < 2 || !Object.is(actual, expected)) load().strictEqual(...arguments);
}
export function notStrictEqual(actual, expected) {
  if (arguments.length < 2 || Object.is(actual, expected)) load().notStrictEqual(...arguments);
}
`;

/** The package folder, its name@version and the path inside it, of a file in node_modules. */
function packageOf(path) {
  const m = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
  if (!m) return undefined;
  const { name, version } = JSON.parse(readFileSync(join(m[1], 'package.json'), 'utf8'));
  return { root: m[1], key: `${name}@${version}`, inner: m[2] };
}

/**
 * One copy of each package version: npm nests a package where versions differ along the way (three
 * copies of strip-ansi 7.2.0 under yargs, cliui and wrap-ansi); the same name and version is the
 * same published code, so the bundle keeps, of the copies a first build took in, the first path.
 */
const oneCopy = new Map();
function samePackage(path) {
  const p = packageOf(path);
  const root = p && oneCopy.get(p.key);
  return root ? join(root, p.inner) : path;
}

/** Whether `path` (a file of a package) loads as CommonJS: not .mjs, nor .js of a "type": "module" package. */
function isCommonJs(path) {
  if (path.endsWith('.cjs')) return true;
  if (path.endsWith('.mjs')) return false;
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    let pkg;
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    return pkg.type !== 'module';
  }
  return true;
}

const frontPlugin = {
  name: 'crashcart-front',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.real || !args.importer) return undefined;
      if (args.namespace === 'crashcart-cjs-package') return { path: args.path, external: true };
      if (args.importer.startsWith(srcDir) && !/^[./]/.test(args.path) && !isBuiltin(args.path) && !/^yargs(\/|$)/.test(args.path)) {
        // A runtime package of the library (usb, codecs, progress): loaded from node_modules, where
        // it finds its own files, when the code importing it runs. A CommonJS package by require()
        // (import() of one would set up node's ES module loader, ~5 ms, for the same module.exports),
        // an ES module package by import() through the loader (`__crashcartImport`); a static
        // import must be of a CommonJS package.
        const file = createRequire(args.importer).resolve(args.path);
        if (args.kind === 'dynamic-import')
          return isCommonJs(file) ? { path: args.path, namespace: 'crashcart-cjs-package' } : { path: `crashcart-package:${args.path}`, external: true };
        if (!isCommonJs(file))
          return { errors: [{ text: `${relative(srcDir, args.importer)}: ${args.path} is an ES module package: import() it where it is used (the bundle is CommonJS)` }] };
        return { path: args.path, external: true };
      }
      if (args.importer.includes('/node_modules/') && /^(node:)?assert$/.test(args.path)) return { path: 'assert', namespace: 'crashcart-lazy-assert' };
      if (!args.importer.includes('/node_modules/') || /^[./]/.test(args.path) || isBuiltin(args.path)) return undefined;
      const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: { real: true } });
      if (resolved.errors.length) return { errors: resolved.errors };
      const real = samePackage(resolved.path);
      // yargs' help layout, loaded when first used (see above).
      const lazy = { cliui: false, 'string-width': true }[args.path];
      if (lazy !== undefined) return { path: real, namespace: 'crashcart-lazy', pluginData: { real, narrowWidth: lazy } };
      return { path: real };
    });
    // import.meta.url of our own modules: the URL of the file in dist/src (worker entries, hw-profiles/, wasm).
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(srcDir)) return undefined;
      const path = relative(srcDir, args.path);
      const text = readFileSync(args.path, 'utf8').replaceAll('import.meta.url', `__crashcartSrcUrl(${JSON.stringify(path)})`);
      if (/\bimport\.meta\b/.test(text)) return { errors: [{ text: `${path}: import.meta other than import.meta.url` }] };
      return { contents: text, loader: 'js' };
    });
    b.onLoad({ filter: /.*/, namespace: 'crashcart-cjs-package' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'crashcart-lazy-assert' }, () => ({ contents: LAZY_ASSERT, loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'crashcart-lazy' }, (args) => ({
      contents: lazyDefault(args.pluginData.real, args.pluginData.narrowWidth),
      resolveDir: dirname(args.pluginData.real),
      loader: 'js',
    }));
    // import.meta of yargs' files (their own location: locales, package.json) from the loader.
    b.onLoad({ filter: /\/node_modules\/.*\.m?js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      return { contents: text.replaceAll('import.meta', `__crashcartImportMeta(${JSON.stringify(relative(yargsDir, args.path))})`), loader: 'js' };
    });
  },
};

const bundlePath = join(srcDir, 'cli/front.bundle.cjs');
/** What both bundles (the front and its loader) are: one CommonJS script for node 20, ASCII. */
const common = { absWorkingDir: root, bundle: true, platform: 'node', format: 'cjs', target: 'node20', write: false, charset: 'ascii' };
const options = {
  ...common,
  stdin: {
    contents: "export { main } from './cli/main.js';\nexport { hideBin } from 'yargs/helpers';\nexport const library = () => import('./index.js');\n",
    resolveDir: srcDir,
    sourcefile: 'front-entry.js',
    loader: 'js',
  },
  plugins: [frontPlugin],
  logLevel: 'warning',
};
const first = await build({ ...options, metafile: true });
const roots = new Map();
for (const input of Object.keys(first.metafile.inputs)) {
  const p = packageOf(resolve(root, input.replace(/^[a-z-]+:/, '')));
  if (p) roots.set(p.key, [...(roots.get(p.key) ?? []), p.root]);
}
for (const [key, paths] of roots) oneCopy.set(key, paths.sort()[0]);
const result = await build(options);
// esbuild writes code in ASCII (charset: 'ascii' escapes strings, regexps, templates and names);
// what non-ASCII is left is in the comments it keeps, escaped alike here so that the bundle is
// ASCII, which the loader decodes several times faster (src/util/code-cache.ts).
for (const line of result.outputFiles[0].text.split('\n'))
  if (/[^\0-\x7f]/.test(line) && !/^\s*(\/\*\*?|\*|\/\/)\s/.test(line)) throw new Error(`front bundle: non-ASCII outside a comment: ${line}`);
const text = result.outputFiles[0].text
  .replaceAll('import("crashcart-package:', '__crashcartImport("')
  .replace(/[^\0-\x7f]/gu, (c) => [...c].map((u) => `\\u{${u.codePointAt(0).toString(16)}}`).join(''));
const leftover = /\bimport\(|crashcart-package:|\bimport\.meta\b/.exec(text);
if (leftover) throw new Error(`front bundle: ${leftover[0]} left in the output`);
writeFileSync(bundlePath, `(function (${front.FRONT_PARAMETERS.join(', ')}) {${text}\n})`);

// The loader as bin/crashcart runs it: front.js and util/code-cache.js as one CommonJS file, so
// that node starts the command line without its ES module loader (~12 ms of CPU).
const loaderPath = join(srcDir, 'cli/front-loader.cjs');
const loader = await build({
  ...common,
  entryPoints: [join(srcDir, 'cli/front.js')],
  define: { 'import.meta.url': '__crashcartLoaderUrl' },
  banner: { js: 'const __crashcartLoaderUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
});
const loaderText = loader.outputFiles[0].text;
if (/\bimport\.meta\b/.test(loaderText)) throw new Error('front loader: import.meta left in the output');
for (const [, name] of loaderText.matchAll(/\brequire\("([^"]+)"\)/g)) if (!isBuiltin(name)) throw new Error(`front loader: require("${name}") of a non-builtin module`);
writeFileSync(loaderPath, loaderText);

rmSync(front.FRONT_CODE_CACHE, { force: true });
const runs = [['--help'], ['pstore', 'extract', '--help']];
const warm = spawnSync(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { writeFrontCodeCache } from ${JSON.stringify(pathToFileURL(join(srcDir, 'cli/front.js')).href)}; await writeFrontCodeCache(${JSON.stringify(runs)});`,
  ],
  {
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
if (warm.status !== 0) throw new Error(`front code cache: exit status ${warm.status}`);
console.log(`front: ${relative(root, bundlePath)} (${(text.length / 1024).toFixed(0)} KiB), its code cache and ${relative(root, loaderPath)}`);
