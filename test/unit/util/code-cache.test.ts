/**
 * The V8 code cache file (src/util/code-cache.ts): used when it was made for the same source,
 * and every other case — missing, made for another source, damaged bytes, refused by V8 — falls
 * back to compiling the source. Each load runs in a new process: within one process V8 finds a
 * script it compiled before in its own memory and never looks at the cache.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checksum } from '../../../src/util/code-cache.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-code-cache-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const moduleUrl = new URL('../../../src/util/code-cache.js', import.meta.url).href;

/** A script of some size whose result names its variant; the variants have the same length. */
function script(variant: 'A' | 'B'): string {
  const body = Array.from({ length: 200 }, (_, i) => `function f${i}(x) { return x * ${i} + ${i % 7}; }`).join('\n');
  return `(function () {\n${body}\nreturn "variant ${variant}:" + f199(2);\n})`;
}

/** In a new process: compiles `file` with `cache`, runs it, and optionally writes the cache. */
function load(file: string, cache: string, write = false): { status: string; result: string } {
  const code = [
    `import { compileWithCodeCache, writeCodeCache } from ${JSON.stringify(moduleUrl)};`,
    `const c = compileWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(cache)});`,
    `const result = c.script.runInThisContext()();`,
    write ? `writeCodeCache(c, ${JSON.stringify(cache)});` : '',
    `console.log(JSON.stringify({ status: c.cache, result }));`,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const fileA = join(tmp, 'a.js');
const fileB = join(tmp, 'b.js');
writeFileSync(fileA, script('A'));
writeFileSync(fileB, script('B'));
const cacheA = join(tmp, 'a.v8cache');

describe('V8 code cache file', () => {
  it('missing: compiles the source; then written after the run, and used by the next process', () => {
    assert.deepEqual(load(fileA, cacheA, true), { status: 'missing', result: 'variant A:401' });
    assert.deepEqual(load(fileA, cacheA), { status: 'used', result: 'variant A:401' });
  });

  it('made for another source of the same length (which V8 alone would run as is): stale, the source runs', () => {
    assert.equal(readFileSync(fileA).length, readFileSync(fileB).length);
    assert.deepEqual(load(fileB, cacheA), { status: 'stale', result: 'variant B:401' });
  });

  it('damaged V8 data (which crashes V8 given straight to it), a damaged header or half a file: damaged, the source runs', () => {
    const good = readFileSync(cacheA);
    const variants: [string, Buffer][] = [
      ['payload', Buffer.concat([good.subarray(0, 200), Buffer.alloc(64, 0x5a), good.subarray(264)])],
      ['magic', Buffer.concat([Buffer.from('crashv9\n'), good.subarray(8)])],
      ['truncated', good.subarray(0, good.length >> 1)],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [name, bytes] of variants) {
      const file = join(tmp, `damaged-${name}.v8cache`);
      writeFileSync(file, bytes);
      assert.deepEqual(load(fileA, file), { status: 'damaged', result: 'variant A:401' }, name);
    }
  });

  it('V8 data this V8 refuses (another version): rejected (script.cachedDataRejected), the source runs', () => {
    const good = readFileSync(cacheA);
    const data = Buffer.from(good.subarray(24));
    data.writeUInt32LE((data.readUInt32LE(4) ^ 0xffffffff) >>> 0, 4); // V8's version hash
    const file = join(tmp, 'other-v8.v8cache');
    writeFileSync(file, Buffer.concat([good.subarray(0, 16), checksum(data), data]));
    assert.deepEqual(load(fileA, file), { status: 'rejected', result: 'variant A:401' });
  });

  it('the checksum tells apart inputs that differ in one bit, in the length, or in word order', () => {
    const a = Buffer.from('0123456789abcdef0123');
    const flipped = Buffer.from(a);
    flipped[13] ^= 1;
    const swapped = Buffer.concat([a.subarray(4, 8), a.subarray(0, 4), a.subarray(8)]);
    const sums = [a, flipped, swapped, a.subarray(0, 19), Buffer.concat([a, Buffer.alloc(1)])].map((b) => checksum(b).toString('hex'));
    assert.equal(new Set(sums).size, sums.length, sums.join(' '));
    assert.equal(checksum(Buffer.from(a)).toString('hex'), sums[0]);
  });
});
