/**
 * The CLI front that bin/crashcart runs (src/cli/front.ts: main.js, the command definitions, the
 * command implementations, the library and yargs built into one script by scripts/build-front.mjs,
 * with a V8 code cache) behaves as the ES modules it is built from: the same output, streams and exit codes for help texts, the
 * version, usage errors and a command that runs, in other languages and widths too. The cache
 * the build wrote is used, and a damaged, stale or missing one only costs the compile.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { NARROW_TEXT } from '../../src/cli/narrow-text.js';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-front-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(repoRoot, 'bin/crashcart');
const mainUrl = pathToFileURL(join(repoRoot, 'dist/src/cli/main.js')).href;
const frontUrl = pathToFileURL(join(repoRoot, 'dist/src/cli/front.js')).href;
const bundle = join(repoRoot, 'dist/src/cli/front.bundle.cjs');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
const run = (args: string[], env: NodeJS.ProcessEnv = {}): Run => {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
/** crashcart through bin/crashcart (the bundle). */
const viaBin = (argv: string[], env?: NodeJS.ProcessEnv) => run([bin, ...argv], env);
/** crashcart through the ES modules of dist/src, no bundle. */
const modulesEntry = join(tmp, 'crashcart-modules.mjs');
writeFileSync(modulesEntry, `import { main } from ${JSON.stringify(mainUrl)};\nprocess.exitCode = await main(process.argv.slice(2));\n`);
const viaModules = (argv: string[], env?: NodeJS.ProcessEnv) => run([modulesEntry, ...argv], env);

describe('the CLI front bundle', () => {
  const image = join(tmp, 'stock61-gpt.img');
  writeFileSync(image, gunzipSync(readFileSync(join(kernelFixturesDir, 'stock61-gpt/disk.img.gz'))));
  const cases: string[][] = [
    ['--help'],
    ['--version'],
    ['pstore', '--help'],
    ['pstore', 'extract', '--help'],
    ['flash', '--help'],
    ['provision', '--help'],
    ['read', '--help'],
    ['info', '--help'],
    [],
    ['frobnicate'],
    ['flsh'],
    ['flash'],
    ['pstore', 'layout', '--bogus', 'x'],
    ['info', '--json', join(tmp, 'missing.img')],
    ['--log-format', 'json', 'frobnicate'],
    ['pstore', 'layout', image],
    ['info', image],
  ];
  for (const argv of cases) {
    it(`crashcart ${argv.join(' ').replace(tmp, 'TMP')}: as the modules it is built from`, () => {
      const a = viaBin(argv);
      assert.deepEqual(a, viaModules(argv));
      assert.ok(a.stdout.length + a.stderr.length > 0);
    });
  }

  it('files the bundle finds by path: the bzip2 and decode workers, the zstd WebAssembly, xz-decompress, the pstore decode pool', () => {
    const flashFixtures = join(repoRoot, 'test/fixtures/flash');
    const raw = readFileSync(join(flashFixtures, 'disk.img'));
    for (const ext of ['bz2', 'zst', 'xz']) {
      const card = join(tmp, `card-${ext}.img`);
      writeFileSync(card, Buffer.alloc(raw.length + 1024 * 1024));
      const r = viaBin(['flash', join(flashFixtures, `disk.img.${ext}`), card, '--yes', '--json']);
      assert.equal(r.status, 0, `${ext}: ${r.stderr}`);
      assert.ok(readFileSync(card).subarray(0, raw.length).equals(raw), `${ext}: the card does not hold the image`);
    }
    // Compressed kmsg dumps: decoded on the worker threads of the decode pool.
    const image = join(tmp, 'c61-full-deflate.img');
    writeFileSync(image, gunzipSync(readFileSync(join(kernelFixturesDir, 'c61-full-deflate/disk.img.gz'))));
    const outputs = [viaBin, viaModules].map((via, i) => {
      const out = join(tmp, `extract-${i}`);
      const r = via(['pstore', 'extract', image, '--output', out]);
      assert.equal(r.status, 0, r.stderr);
      const files = readdirSync(out, { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => join(d.parentPath ?? d.path, d.name).slice(out.length))
        .sort();
      return files.map((f) => [f, readFileSync(join(out, f)).toString('base64')]);
    });
    assert.ok(outputs[0].length > 1);
    assert.deepEqual(outputs[0], outputs[1]);
  });

  it('in another language and terminal width: yargs finds its locales and wraps the same', () => {
    for (const env of [{ LC_ALL: 'de_DE.UTF-8' }, { LANG: 'fr_FR.UTF-8', COLUMNS: '60' }]) {
      for (const argv of [['--help'], ['pstore', 'extract', '--help'], ['frobnicate']]) {
        const a = viaBin(argv, env);
        assert.deepEqual(a, viaModules(argv, env), `${JSON.stringify(env)} ${argv.join(' ')}`);
      }
    }
    assert.match(viaBin(['--help'], { LC_ALL: 'de_DE.UTF-8' }).stdout, /Kommandos:/);
  });
});

describe('the CLI front code cache', () => {
  /** In a new process: loads the front (with `cache`, or the built one), reports the cache's state and runs `--version`. */
  const load = (cache?: string) =>
    run([
      '--input-type=module',
      '-e',
      `import { loadFront, FRONT_BUNDLE } from ${JSON.stringify(frontUrl)};
       const front = ${cache === undefined ? 'loadFront()' : `loadFront(FRONT_BUNDLE, ${JSON.stringify(cache)})`};
       console.log(front.cache);
       process.exitCode = await front.main(['--version']);`,
    ]);
  const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version;

  it('the cache the build wrote is used', () => {
    assert.deepEqual(load(), { status: 0, stdout: `used\n${version}\n`, stderr: '' });
  });

  it('a damaged, stale or missing cache: the front compiles without it and works', () => {
    const built = readFileSync(`${bundle}.v8cache`);
    const damaged = join(tmp, 'damaged.v8cache');
    writeFileSync(damaged, Buffer.concat([built.subarray(0, 4096), Buffer.alloc(4096, 0xa5), built.subarray(8192)]));
    assert.deepEqual(load(damaged), { status: 0, stdout: `damaged\n${version}\n`, stderr: '' });
    const stale = join(tmp, 'stale.v8cache');
    copyFileSync(`${bundle}.v8cache`, stale);
    const s = readFileSync(stale);
    s[8] ^= 0xff; // the checksum of the source it was made for
    writeFileSync(stale, s);
    assert.deepEqual(load(stale), { status: 0, stdout: `stale\n${version}\n`, stderr: '' });
    assert.deepEqual(load(join(tmp, 'none.v8cache')), { status: 0, stdout: `missing\n${version}\n`, stderr: '' });
  });
});

describe("the front's width shortcut (scripts/build-front.mjs, src/cli/narrow-text.ts)", () => {
  /** Every character NARROW_TEXT accepts. */
  const narrow = Array.from({ length: 0x10000 }, (_, c) => String.fromCharCode(c)).filter((c) => NARROW_TEXT.test(c));
  /** The copies of string-width yargs' help layout uses: its own, cliui's and wrap-ansi's. */
  const copies = async () =>
    Promise.all(
      ['yargs', 'cliui', 'wrap-ansi'].map(async (user) => {
        const path = createRequire(join(repoRoot, 'node_modules', user, 'package.json')).resolve('string-width');
        return { path, stringWidth: ((await import(pathToFileURL(path).href)) as { default: (s: string) => number }).default };
      }),
    );

  it('accepts printable ASCII, Latin-1 and General Punctuation, not what string-width measures otherwise', () => {
    assert.ok(narrow.length > 380, `${narrow.length}`);
    for (const c of ' ~AZaz09äöüßéÿŁœ…—–‘’“”•‰') assert.ok(NARROW_TEXT.test(c), c);
    for (const c of [
      '\t',
      '\n',
      '\x1b',
      '\x7f',
      '\x9b',
      '\u00ad',
      '©',
      '®',
      '\u0301',
      '\u200b',
      '\u200d',
      '\u2028',
      '\u202e',
      '‼',
      '⁉',
      '\u2060',
      '\ufeff',
      '中',
      '한',
      '😀',
      '\ud83d',
    ])
      assert.ok(!NARROW_TEXT.test(c), JSON.stringify(c));
    assert.ok(NARROW_TEXT.test('') && NARROW_TEXT.test('  --log-format  … — «Optionen»') && !NARROW_TEXT.test('a\u0301'));
  });

  it('every copy of string-width measures such text as its length: each character next to every other one', async () => {
    const segmenter = new Intl.Segmenter();
    for (const { path, stringWidth } of await copies()) {
      for (const a of narrow) {
        // a before and after every character: each pair, and each character alone
        const s = narrow.map((b) => a + b).join('');
        assert.equal(stringWidth(a), 1, `${path}: ${JSON.stringify(a)}`);
        assert.equal(stringWidth(s), s.length, `${path}: ${JSON.stringify(a)} with the others`);
      }
      assert.equal(stringWidth('…—'), 2);
      assert.equal(stringWidth('a\u0301中'), 3, 'and other text is measured by it');
    }
    for (const a of narrow) {
      const s = narrow.map((b) => a + b).join('');
      assert.equal([...segmenter.segment(s)].length, s.length, `a grapheme of more than one character with ${JSON.stringify(a)}`);
    }
  });
});
