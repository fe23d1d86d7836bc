/**
 * The real executable on hostile inputs: 1 GiB decompression bombs and oversize files given as
 * --symbols, --kconfig, --profile and --bmap end with exit 6 and a message naming the file and the
 * limit, with the peak RSS of the process measured (GNU time's %M when /usr/bin/time exists,
 * else process.resourceUsage().maxRSS reported by a wrapper around the same main()); and
 * geometry arguments outside the kernel's ranges end with exit 2 naming the range.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-bombs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(repoRoot, 'bin/crashcart');
const GNU_TIME = '/usr/bin/time';
const RSS_LIMIT_KB = 256 * 1024;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  maxRssKb: number;
}

/** Runs the CLI and measures its peak RSS. */
function runMeasured(...args: string[]): Run {
  let r;
  if (existsSync(GNU_TIME) && spawnSync(GNU_TIME, ['-f', '%M', 'true']).status === 0) {
    r = spawnSync(GNU_TIME, ['-f', 'MAXRSS %M', process.execPath, bin, ...args], { encoding: 'utf8' });
  } else {
    const main = pathToFileURL(join(repoRoot, 'dist/src/cli/main.js')).href;
    const script = `const { main } = await import(${JSON.stringify(main)}); const code = await main(process.argv.slice(1)); process.stderr.write('\\nMAXRSS ' + process.resourceUsage().maxRSS + '\\n'); process.exitCode = code;`;
    r = spawnSync(process.execPath, ['--input-type=module', '-e', script, ...args], { encoding: 'utf8' });
  }
  const m = /MAXRSS (\d+)\s*$/.exec(r.stderr);
  assert.ok(m, `no RSS figure in: ${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.slice(0, m.index), maxRssKb: Number(m[1]) };
}

const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

/** A gzip file of `members` concatenated members of `block`: 64 × 16 MiB = 1 GiB from ~1 MB on disk. */
function bomb(name: string, block: Uint8Array, members: number): string {
  const p = join(tmp, name);
  const one = gzipSync(block, { level: 9 });
  writeFileSync(p, Buffer.concat(Array.from({ length: members }, () => one)));
  return p;
}

function sparse(name: string, size: number): string {
  const p = join(tmp, name);
  writeFileSync(p, '');
  truncateSync(p, size);
  return p;
}

const image = (() => {
  let p: string | undefined;
  return () => {
    if (!p) {
      p = join(tmp, 'c61-none-rr.img');
      writeFileSync(p, gunzipSync(readFileSync(join(kernelFixturesDir, 'c61-none-rr', 'disk.img.gz'))));
    }
    return p;
  };
})();

const SIXTEEN_MIB = 16 << 20;
const rssFigures: string[] = [];
after(() => {
  if (rssFigures.length) process.stdout.write(`# peak RSS: ${rssFigures.join('; ')}\n`);
});

function assertBounded(r: Run, what: string, message: RegExp) {
  assert.equal(r.status, 6, `${what}: exit ${r.status}\n${r.stderr}`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /internal error|    at /);
  rssFigures.push(`${what} ${(r.maxRssKb / 1024).toFixed(0)} MiB`);
  assert.ok(r.maxRssKb < RSS_LIMIT_KB, `${what}: peak RSS ${r.maxRssKb} KiB`);
}

describe('bounded inputs through the real CLI', { timeout: 240_000 }, () => {
  it('--symbols: a 1 GiB gzip bomb of zeros is exit 6 with bounded memory', () => {
    const p = bomb('zeros.gz', new Uint8Array(SIXTEEN_MIB), 64);
    const r = runMeasured('pstore', 'extract', image(), '-o', join(tmp, 'o1'), '--symbols', p);
    assertBounded(r, 'symbols zeros bomb', /--symbols .*zeros\.gz: decompresses to more than the 128 MiB limit/);
  });

  it('--symbols: a 1 GiB gzip bomb of valid symbol lines is exit 6 with bounded memory', () => {
    const line = 'ffffffff81000000 T a\n';
    const p = bomb('lines.gz', Buffer.from(line.repeat(Math.floor(SIXTEEN_MIB / line.length))), 64);
    const r = runMeasured('pstore', 'extract', image(), '-o', join(tmp, 'o2'), '--symbols', p);
    assertBounded(r, 'symbols line bomb', /--symbols .*lines\.gz: decompresses to more than the 128 MiB limit/);
  });

  it('--symbols: a 1 GiB plain file is refused from its size', () => {
    const r = runMeasured('pstore', 'extract', image(), '-o', join(tmp, 'o3'), '--symbols', sparse('huge.map', 1 << 30));
    assertBounded(r, 'symbols 1 GiB file', /--symbols .*huge\.map: 1073741824 bytes is larger than the 128 MiB limit/);
  });

  it('--kconfig: a 1 GiB config.gz bomb', () => {
    const r = runMeasured('pstore', 'layout', '--region-size', '1M', '--kconfig', bomb('config.gz', new Uint8Array(SIXTEEN_MIB), 64));
    assertBounded(r, 'kconfig bomb', /--kconfig .*config\.gz: kernel config: decompresses to more than the 16 MiB limit/);
  });

  it('--profile: a 1 GiB profile file', () => {
    const r = runMeasured('pstore', 'layout', '--region-size', '1M', '--profile', sparse('board.json', 1 << 30));
    assertBounded(r, 'profile 1 GiB file', /profile .*board\.json: 1073741824 bytes is larger than the 1 MiB limit/);
  });

  it('--bmap: a 1 GiB bmap file (provision --dry-run, nothing written)', () => {
    const card = sparse('card.img', 64 << 20);
    const root = sparse('root.img', 1 << 20);
    const r = runMeasured('provision', card, '--profile', 'qemu-x86_64', '--image', `rootfs=${root}`, '--bmap', `rootfs=${sparse('huge.bmap', 1 << 30)}`, '--dry-run');
    assertBounded(r, 'bmap 1 GiB file', /bmap .*huge\.bmap: 1073741824 bytes is larger than the 32 MiB limit/);
  });
});

describe('geometry arguments in the kernel ranges', () => {
  const layout = (...args: string[]) => run('pstore', 'layout', '--region-size', '1M', ...args);
  const usage = (r: ReturnType<typeof run>, re: RegExp) => {
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /internal error/);
  };

  it('sizes and CPU counts from flags', () => {
    usage(layout('--kmsg-size', '-1'), /--kmsg-size must be a whole number of KiB from 0 \(no zone\) to 131072 \(128 MiB/);
    usage(layout('--pmsg-size', '131073'), /--pmsg-size must be .* to 131072/);
    usage(layout('--kmsg-size', '4.5'), /--kmsg-size must be a whole number/);
    usage(layout('--cpus', '99999'), /--cpus must be a whole number of possible CPUs from 1 to 8192/);
    usage(layout('--cpus', '0'), /from 1 to 8192/);
    const ok = layout('--kmsg-size', '64', '--pmsg-size', '0', '--console-size', '0', '--ftrace-size', '0', '--cpus', '8192');
    assert.equal(ok.status, 0, ok.stderr);
  });

  it('the same values through --cmdline and a profile', () => {
    usage(layout('--cmdline', 'pstore_blk.kmsg_size=1000000'), /pstore_blk\.kmsg_size=1000000: .*from 0 to 131072/);
    usage(layout('--cmdline', 'nr_cpus=99999'), /nr_cpus must be .* from 1 to 8192/);
    usage(layout('--cmdline', 'mmcpstore.sector_offset=-1'), /sector_offset=-1: must be a whole number of 512-byte sectors/);
    const prof = join(tmp, 'cpus.json');
    writeFileSync(prof, JSON.stringify({ name: 'cpus', pstore: { cpus: 100000 } }));
    const r = layout('--profile', prof);
    assert.equal(r.status, 6, r.stderr);
    assert.match(r.stderr, /pstore\.cpus: must be a positive integer from 1 to 8192/);
  });

  it('offsets and --kaslr-offset', () => {
    usage(run('pstore', 'extract', image(), '-o', join(tmp, 'k1'), '--offset=-5'), /invalid offset "-5"/);
    usage(run('pstore', 'extract', image(), '-o', join(tmp, 'k2'), '--kaslr-offset', '10000000000000000'), /larger than a 64-bit address/);
    // regression: "0X…" passed the old check and crashed in BigInt() with exit 1
    const r = run('pstore', 'extract', image(), '-o', join(tmp, 'k3'), '--kaslr-offset', '0X1000');
    assert.equal(r.status, 0, r.stderr);
  });
});
