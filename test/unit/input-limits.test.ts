/**
 * Bounded inputs (src/input-limits.ts): every file the CLI reads whole has a size limit checked
 * before reading, gzip is inflated with a hard output cap, and past a limit the error is an
 * InputLimitError (BadInputError, exit 6) naming the input and the limit.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BadInputError, ExitCode, UsageError } from '../../src/errors.js';
import { loadBmap, parseBmap } from '../../src/flash/bmap.js';
import { SourceError } from '../../src/flash/errors.js';
import {
  BMAP_MAX_BYTES,
  CMDLINE_MAX_BYTES,
  gunzipBounded,
  InputLimitError,
  KCONFIG_MAX_BYTES,
  PROFILE_MAX_BYTES,
  readFileBounded,
  readMaybeGzipChunks,
  SYMBOLS_MAX_BYTES,
  SYMBOLS_MAX_LINES,
} from '../../src/input-limits.js';
import { readProfileJson } from '../../src/profile/board-profile.js';
import { parseCmdline } from '../../src/pstore/cmdline.js';
import { parseKconfig } from '../../src/pstore/kconfig.js';
import { loadSymbolFile, loadSymbolTable } from '../../src/symbols/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-limits-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A multi-member gzip that inflates to `members` × `block.length` bytes (gunzip reads all members). */
function bomb(block: Uint8Array, members: number): Buffer {
  const one = gzipSync(block, { level: 9 });
  return Buffer.concat(Array.from({ length: members }, () => one));
}

function sparse(name: string, size: number): string {
  const p = join(tmp, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

const isLimit = (what: RegExp) => (e: unknown) => {
  assert.ok(e instanceof InputLimitError, `expected InputLimitError, got ${(e as Error)?.stack}`);
  assert.ok(e instanceof BadInputError);
  assert.equal(e.exitCode, ExitCode.BAD_INPUT);
  assert.match(e.message, what);
  return true;
};

describe('readFileBounded', () => {
  it('reads a file within the limit', () => {
    const p = join(tmp, 'small');
    writeFileSync(p, 'hello');
    assert.equal(readFileBounded(p, 5, 'x').toString(), 'hello');
  });
  it('refuses a larger file from fstat, before reading it', () => {
    const p = sparse('big', 1 << 30);
    const t0 = performance.now();
    assert.throws(() => readFileBounded(p, 1 << 20, '--thing'), isLimit(/--thing .*big: 1073741824 bytes is larger than the 1 MiB limit/));
    assert.ok(performance.now() - t0 < 500);
  });
  it('a missing file is a usage error naming it', () => {
    assert.throws(
      () => readFileBounded(join(tmp, 'nope'), 10, '--thing'),
      (e) => e instanceof UsageError && /--thing .*nope: ENOENT/.test(e.message),
    );
  });
});

describe('gzip with a hard output cap', () => {
  it('a decompression bomb is an InputLimitError, a corrupt stream a BadInputError', () => {
    const b = bomb(new Uint8Array(1 << 20), 8); // 8 MiB
    assert.throws(() => gunzipBounded(b, 1 << 20, 'x.gz'), isLimit(/x\.gz: decompresses to more than the 1 MiB limit/));
    assert.equal(gunzipBounded(b, 8 << 20, 'x.gz').length, 8 << 20);
    assert.throws(
      () => gunzipBounded(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]), 100, 'x.gz'),
      (e) => e instanceof BadInputError && !(e instanceof InputLimitError),
    );
  });
  it('streamed: stops at the cap and names the file', async () => {
    const p = join(tmp, 'bomb.gz');
    writeFileSync(p, bomb(new Uint8Array(1 << 20), 8));
    await assert.rejects(readMaybeGzipChunks(p, 2 << 20, '--symbols'), isLimit(/--symbols .*bomb\.gz: decompresses to more than the 2 MiB limit/));
    const chunks = await readMaybeGzipChunks(p, 8 << 20, '--symbols');
    assert.equal(
      chunks.reduce((a, c) => a + c.length, 0),
      8 << 20,
    );
  });
});

describe('symbol files', () => {
  it('a gzip bomb given as bytes is refused at 128 MiB', () => {
    const b = bomb(new Uint8Array(16 << 20), 9); // 144 MiB of zeros
    assert.throws(() => loadSymbolTable(b), isLimit(/symbol file: decompresses to more than the 128 MiB limit/));
    assert.equal(SYMBOLS_MAX_BYTES, 128 << 20);
  });
  it('a file of more lines than any real table is refused before parsing', async () => {
    const p = join(tmp, 'many-lines');
    writeFileSync(p, Buffer.alloc((SYMBOLS_MAX_LINES + 1) * 2, '\n'));
    await assert.rejects(loadSymbolFile(p), isLimit(/--symbols .*many-lines: more than 2000000 lines/));
  });
  it('an oversize plain file is refused from its size', async () => {
    await assert.rejects(loadSymbolFile(sparse('huge.map', SYMBOLS_MAX_BYTES + 1)), isLimit(/huge\.map: 134217729 bytes is larger than the 128 MiB limit/));
  });
  it('overlong lines are malformed, not accumulated; lines split across chunks still parse', async () => {
    const p = join(tmp, 'long-line');
    const text = 'ffffffff81000000 T _stext\n' + 'x'.repeat(3 << 20) + '\nffffffff81000010 T foo\n';
    writeFileSync(p, gzipSync(text));
    const t = await loadSymbolFile(p);
    assert.equal(t.stats.malformed, 1);
    assert.equal(t.stats.coreSymbols, 2);
    assert.equal(t.ps(0xffffffff81000004n), '_stext');
  });
  it('a missing file is a usage error', async () => {
    await assert.rejects(loadSymbolFile(join(tmp, 'nope.gz')), (e) => e instanceof UsageError && /--symbols .*nope\.gz: ENOENT/.test(e.message));
  });
});

describe('other inputs', () => {
  it('kconfig: a config.gz bomb and an oversize .config', () => {
    assert.throws(() => parseKconfig(bomb(new Uint8Array(4 << 20), 5)), isLimit(/kernel config: decompresses to more than the 16 MiB limit/));
    assert.throws(() => parseKconfig(new Uint8Array(KCONFIG_MAX_BYTES + 1)), isLimit(/kernel config: 16777217 bytes is larger than the 16 MiB limit/));
  });
  it('profile: an oversize JSON file', () => {
    assert.throws(() => readProfileJson(sparse('huge.json', PROFILE_MAX_BYTES + 1)), isLimit(/profile .*huge\.json: 1048577 bytes is larger than the 1 MiB limit/));
  });
  it('bmap: an oversize file, from disk and in memory', async () => {
    await assert.rejects(loadBmap(sparse('huge.bmap', BMAP_MAX_BYTES + 1)), isLimit(/bmap .*huge\.bmap: 33554433 bytes is larger than the 32 MiB limit/));
    assert.throws(() => parseBmap(new Uint8Array(BMAP_MAX_BYTES + 1), 'm.bmap'), isLimit(/m\.bmap: .* larger than the 32 MiB limit/));
  });
  it('bmap: unclosed tags, comments and quotes cost linear time', () => {
    const head =
      '<bmap version="2.0"><ImageSize>4096</ImageSize><BlockSize>4096</BlockSize><BlocksCount>1</BlocksCount><MappedBlocksCount>1</MappedBlocksCount><ChecksumType>sha256</ChecksumType><BlockMap>';
    for (const filler of ['<Range>', '<!--', '<Range chksum="', '</Range ', '<ImageSize ']) {
      const xml = Buffer.from(head + filler.repeat(Math.floor((4 << 20) / filler.length)));
      const t0 = performance.now();
      assert.throws(
        () => parseBmap(xml, 'slow.bmap'),
        (e) => e instanceof SourceError,
      );
      assert.ok(performance.now() - t0 < 3000, `${filler}: ${performance.now() - t0} ms`);
    }
  });
  it('kernel command line: longer than 1 MiB', () => {
    assert.equal(CMDLINE_MAX_BYTES, 1 << 20);
    assert.throws(() => parseCmdline('x'.repeat(CMDLINE_MAX_BYTES + 1)), isLimit(/kernel command line: 1048577 characters is longer than the 1 MiB limit/));
  });
});

describe('bmap file checksum', () => {
  it('an upper-case checksum after non-ASCII comment text is found where it is (regression: toLowerCase() shifted it, RangeError)', async () => {
    const { createHash } = await import('node:crypto');
    const head =
      '<?xml version="1.0" ?>\n<!-- ' +
      '\u0130'.repeat(200) +
      ' -->\n<bmap version="1.3">\n<ImageSize>4096</ImageSize>\n<BlockSize>4096</BlockSize>\n<BlocksCount>1</BlocksCount>\n<MappedBlocksCount>1</MappedBlocksCount>\n<BlockMap>\n<Range>0</Range>\n</BlockMap>\n<BmapFileSHA1>';
    const tail = '</BmapFileSHA1>\n</bmap>\n';
    const zero = Buffer.from(head + '0'.repeat(40) + tail, 'utf8');
    const sum = createHash('sha1').update(zero).digest('hex').toUpperCase();
    const b = parseBmap(Buffer.from(head + sum + tail, 'utf8'), 'upper.bmap');
    assert.equal(b.mappedBlocksCount, 1);
    // a checksum text that is nowhere in the file as such is a SourceError, not a RangeError
    const bad = Buffer.from(head + 'ABC' + tail, 'utf8');
    assert.throws(
      () => parseBmap(bad, 'bad.bmap'),
      (e) => e instanceof SourceError,
    );
  });
});
