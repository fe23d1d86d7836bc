#!/usr/bin/env node
// Builds the CLI front that bin/crashcart runs (src/cli/front.ts): dist/src/cli/main.js, the
// command definitions (dist/src/cli/args/) and yargs with its dependencies in one script,
// dist/src/cli/front.bundle.cjs, then its V8 code cache (front.bundle.cjs.v8cache) from runs of
// `--help` and a subcommand's `--help`. Part of `npm run build`, after tsc.
//
// The bundle holds nothing of the library: an import from main.js or args/ of any other module of
// dist/src fails the build, except
//   - the modules shared with the command implementations (FRONT_SHARED in src/cli/front.ts),
//     taken from the loader at run time, and
//   - import() of a command's implementation, done by the loader (`__crashcartImport`).
// yargs' help layout (cliui, string-width, wrap-ansi) is loaded when help is first laid out, not
// at start: their set-up builds an Intl.Segmenter and Unicode property regexps (ICU data), and
// `--version` never lays out help. The width of text made of the characters in NARROW_TEXT
// (src/cli/narrow-text.ts: ASCII, Latin-1, General Punctuation) is its length in every copy of
// string-width here, so string-width is only loaded for other text.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'dist/src');
const front = await import(pathToFileURL(join(srcDir, 'cli/front.js')).href);
const { NARROW_TEXT } = await import(pathToFileURL(join(srcDir, 'cli/narrow-text.js')).href);
const yargsDir = dirname(fileURLToPath(import.meta.resolve('yargs/package.json')));
const inFront = (path) => path === join(srcDir, 'cli/main.js') || dirname(path) === join(srcDir, 'cli/args');

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

const frontPlugin = {
  name: 'crashcart-front',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.real || !args.importer) return undefined;
      if (args.importer.startsWith(srcDir) && args.path.startsWith('.')) {
        const target = resolve(args.resolveDir, args.path);
        const path = relative(srcDir, target);
        if (args.kind === 'dynamic-import') return { path: `crashcart-import:${path}`, external: true };
        if (path in front.FRONT_SHARED) return { path: `crashcart-shared:${path}`, external: true };
        if (!inFront(target))
          return { errors: [{ text: `${path}: the CLI front (main.js, args/) may import only args/, yargs and ${Object.keys(front.FRONT_SHARED).join(', ')}` }] };
        return undefined;
      }
      if (!args.importer.includes('/node_modules/') || /^[./]/.test(args.path) || isBuiltin(args.path)) return undefined;
      const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: { real: true } });
      if (resolved.errors.length) return { errors: resolved.errors };
      const real = samePackage(resolved.path);
      // yargs' help layout, loaded when first used (see above).
      const lazy = { cliui: false, 'string-width': true }[args.path];
      if (lazy !== undefined) return { path: real, namespace: 'crashcart-lazy', pluginData: { real, narrowWidth: lazy } };
      return { path: real };
    });
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
const options = {
  stdin: { contents: "export { main } from './cli/main.js';\nexport { hideBin } from 'yargs/helpers';\n", resolveDir: srcDir, sourcefile: 'front-entry.js', loader: 'js' },
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  write: false,
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
let text = result.outputFiles[0].text.replaceAll('import("crashcart-import:', '__crashcartImport("').replaceAll('require("crashcart-shared:', '__crashcartShared("');
const leftover = /\bimport\(|crashcart-(import|shared):|\bimport\.meta\b/.exec(text);
if (leftover) throw new Error(`front bundle: ${leftover[0]} left in the output`);
for (const [, name] of text.matchAll(/\brequire\("([^"]+)"\)/g)) if (!isBuiltin(name)) throw new Error(`front bundle: require("${name}") of a non-builtin module`);
writeFileSync(bundlePath, `(function (${front.FRONT_PARAMETERS.join(', ')}) {${text}\n})`);

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
console.log(`front: ${relative(root, bundlePath)} (${(text.length / 1024).toFixed(0)} KiB) and its code cache`);
