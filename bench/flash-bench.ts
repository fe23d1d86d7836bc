/**
 * npm run bench:flash — flashing throughput and memory, image file to image file:
 *
 *  1. raw vs .gz vs .zst (vs .xz, .bz2 for reference, without verification): a 256 MiB image with disk-like content
 *     (a quarter each of zeros, random bytes and two kinds of text), flashed without and with
 *     read-back verification; throughput as image MB/s and as a ratio to raw.
 *  2. bmap with 10 % mapped vs the full image: the same 256 MiB, 10 % of it in scattered
 *     extents, the rest holes; raw and .zst, with and without the bmap. The .zst twice: as the
 *     zstd tool makes it (one frame, decoded whole) and as 4 MiB frames that each declare their
 *     size (zstd --stream-size on each piece, concatenated), whose frames in the holes are skipped.
 *  3. peak RSS of a child process flashing a 4 GiB sparse image (.zst, with bmap) onto a
 *     sparse image file; only the mapped 5 % is written, so disk use stays near 250 MiB.
 *
 * Each row with a target says whether it was met (`goal`, `met`): .gz and .zst >= 0.9x raw,
 * .xz >= 0.25x, .bz2 >= 0.1x, bmap from .zst at 10 % mapped <= 0.2x the time of a full .zst
 * write, peak RSS <= 200 MiB.
 *
 * Sizes for quick runs: CRASHCART_BENCH_MIB (the image, default 256) and CRASHCART_BENCH_BIG_GIB (the sparse
 * image of the RSS row, default 4). Every row also reports the process CPU seconds (all threads) of its best run.
 *
 * The compressed rows also time the format's own command-line decoders where present (`gzip -dc`,
 * `zstd -dc`, `xz -dc -T0`, `bzip2 -dc`, and lbzip2 on every core) decoding the same file to
 * /dev/null: a decoder-only rate, without writing or hashing, as the ceiling of what a flasher built
 * on that library reaches on this machine, with its ratio to our raw flash.
 *
 * Compressed inputs are made with the zstd/gzip/xz/bzip2 command-line tools when present
 * (node:zlib for gzip otherwise); formats whose compressor is missing are skipped and said so.
 * Everything lives in a temp folder that is removed at the end. Prints a table and a JSON line.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync, ftruncateSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { openImageFile } from '../src/blockdev/image-file-device.js';
import { flashImage } from '../src/flash/flash.js';
import { openImageSource } from '../src/flash/source.js';
import { decoderName } from '../src/flash/decompress.js';
import type { ImageFormat } from '../src/flash/detect.js';

const MiB = 1024 * 1024;

/** Targets: formats as a ratio to raw (at least), bmap time as a ratio to a full write and RSS in MiB (at most). */
const GOALS = { gzip: 0.9, zip: 0.9, zstd: 0.9, xz: 0.25, bzip2: 0.1, bmapZstd: 0.2, rssMiB: 200 };
const atLeast = (v: number, goal: number) => ({ goal: `>= ${goal}`, met: v >= goal });
const atMost = (v: number, goal: number) => ({ goal: `<= ${goal}`, met: v <= goal });

function have(tool: string): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
}

function compress(src: string, format: ImageFormat): string | undefined {
  const ext = { gzip: 'gz', xz: 'xz', zstd: 'zst', bzip2: 'bz2', zip: 'zip', raw: '' }[format];
  const out = `${src}.${ext}`;
  const cmd: Record<string, [string, string[]]> = {
    gzip: ['gzip', ['-6', '-n', '-c', src]],
    xz: ['xz', ['-6', '-T0', '-c', src]],
    zstd: ['zstd', ['-3', '-T0', '-q', '-c', src]],
    bzip2: ['bzip2', ['-6', '-c', src]],
    // Info-ZIP's zip, archive to stdout (-j: the bare file name in the archive)
    zip: ['zip', ['-6', '-j', '-q', '-', src]],
  };
  const [tool, args] = cmd[format];
  if (have(tool)) {
    const fd = openSync(out, 'w');
    const r = spawnSync(tool, args, { stdio: ['ignore', fd, 'inherit'], maxBuffer: 0 });
    closeSync(fd);
    if (r.status === 0) return out;
  }
  if (format === 'gzip') {
    writeFileSync(out, gzipSync(readFileSync(src), { level: 6 }));
    return out;
  }
  return undefined;
}

/** Decoder-only command lines of each format's own tools (stdout is /dev/null). */
function peerDecoders(format: ImageFormat): [string, string[]][] {
  const cores = String(availableParallelism());
  const peers: Partial<Record<ImageFormat, [string, string[]][]>> = {
    gzip: [['gzip', ['-dc']]],
    zstd: [['zstd', ['-dc', '-q']]],
    xz: [['xz', ['-dc', '-T0']]],
    bzip2: [
      ['bzip2', ['-dc']],
      ['lbzip2', ['-dc', '-n', cores]],
    ],
  };
  return (peers[format] ?? []).filter(([tool]) => have(tool));
}

/** MB/s of image bytes each peer decoder reaches on `path` (best of `runs`), keyed by its command line. */
function timePeers(path: string, format: ImageFormat, imageBytes: number, runs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tool, args] of peerDecoders(format)) {
    let bestSeconds = Infinity;
    for (let i = 0; i < runs; i++) {
      const sink = openSync('/dev/null', 'w');
      const t0 = performance.now();
      const r = spawnSync(tool, [...args, path], { stdio: ['ignore', sink, 'ignore'] });
      const seconds = (performance.now() - t0) / 1000;
      closeSync(sink);
      if (r.status !== 0) break;
      bestSeconds = Math.min(bestSeconds, seconds);
    }
    if (Number.isFinite(bestSeconds)) out[`${tool} ${args.join(' ')}`] = +(imageBytes / 1e6 / bestSeconds).toFixed(1);
  }
  return out;
}

function diskLikeImage(path: string, size: number): void {
  const fd = openSync(path, 'w');
  const words = ['kernel', 'module', 'usr/lib', 'libc.so.6', 'config', 'systemd', '0000', 'eth0', 'mmcblk0p2', '\n'];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % words.length;
  for (let off = 0; off < size; off += MiB) {
    const k = (off / MiB) % 4;
    let chunk: Uint8Array;
    if (k === 0) chunk = new Uint8Array(MiB);
    else if (k === 1) chunk = randomBytes(MiB);
    else {
      const parts: string[] = [];
      let n = 0;
      while (n < MiB) {
        const w = words[rnd()];
        parts.push(w, ' ');
        n += w.length + 1;
      }
      chunk = Buffer.from(parts.join('').slice(0, MiB));
    }
    writeSync(fd, chunk, 0, chunk.length, off);
  }
  closeSync(fd);
}

/** Writes a bmap 2.0 for `ranges` (block ranges, inclusive) of the image at `path`. */
function writeBmap(path: string, imageSize: number, blockSize: number, ranges: [number, number][]): string {
  const fd = openSync(path, 'r');
  let mapped = 0;
  const xmlRanges = ranges.map(([a, b]) => {
    const h = createHash('sha256');
    const start = a * blockSize;
    const end = Math.min((b + 1) * blockSize, imageSize);
    const buf = Buffer.alloc(Math.min(end - start, 8 * MiB));
    for (let p = start; p < end; p += buf.length) {
      const n = Math.min(buf.length, end - p);
      const got = preadFull(fd, buf, n, p);
      h.update(buf.subarray(0, got));
    }
    mapped += b - a + 1;
    return `    <Range chksum="${h.digest('hex')}"> ${a}-${b} </Range>`;
  });
  closeSync(fd);
  const blocks = Math.ceil(imageSize / blockSize);
  const xml = `<?xml version="1.0" ?>\n<bmap version="2.0">\n  <ImageSize> ${imageSize} </ImageSize>\n  <BlockSize> ${blockSize} </BlockSize>\n  <BlocksCount> ${blocks} </BlocksCount>\n  <MappedBlocksCount> ${mapped} </MappedBlocksCount>\n  <ChecksumType> sha256 </ChecksumType>\n  <BlockMap>\n${xmlRanges.join('\n')}\n  </BlockMap>\n</bmap>\n`;
  const out = `${path}.bench.bmap`;
  writeFileSync(out, xml);
  return out;
}

function preadFull(fd: number, buf: Buffer, n: number, pos: number): number {
  let got = 0;
  while (got < n) {
    const r = readSync(fd, buf, got, n - got, pos + got);
    if (r === 0) break;
    got += r;
  }
  return got;
}

/** `src` as zstd frames of `frame` bytes each (every one declaring its content size), one after the other. */
function compressFrames(src: string, frame: number): string | undefined {
  if (!have('zstd')) return undefined;
  const out = `${src}.frames.zst`;
  const fd = openSync(out, 'w');
  const s = openSync(src, 'r');
  const buf = Buffer.alloc(frame);
  try {
    for (let pos = 0; ; pos += frame) {
      const n = preadFull(s, buf, frame, pos);
      if (n === 0) break;
      const r = spawnSync('zstd', ['-3', '-q', '-c', `--stream-size=${n}`], { input: buf.subarray(0, n), maxBuffer: 2 * frame });
      if (r.status !== 0) return undefined;
      writeSync(fd, r.stdout);
    }
  } finally {
    closeSync(s);
    closeSync(fd);
  }
  return out;
}

/** Scattered extents covering `fraction` of the image, 64 KiB to 2 MiB each. */
function scatteredRanges(imageSize: number, blockSize: number, fraction: number): [number, number][] {
  const blocks = Math.ceil(imageSize / blockSize);
  const out: [number, number][] = [];
  let seed = 99;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const target = Math.floor(blocks * fraction);
  const step = Math.floor(blocks / 40);
  let mapped = 0;
  out.push([0, Math.floor(MiB / blockSize) - 1]); // the boot area
  mapped += out[0][1] + 1;
  for (let base = step; base < blocks && mapped < target; base += step) {
    const len = Math.min(Math.max(16, Math.floor(rnd() * (target / 20))), target - mapped, step - 1);
    const start = base + Math.floor(rnd() * (step - len));
    out.push([start, start + len - 1]);
    mapped += len;
  }
  return out;
}

function sparseCopy(src: string, dst: string, ranges: [number, number][], blockSize: number, size: number): void {
  const s = openSync(src, 'r');
  const d = openSync(dst, 'w');
  ftruncateSync(d, size);
  const buf = Buffer.alloc(4 * MiB);
  for (const [a, b] of ranges) {
    for (let p = a * blockSize; p < Math.min((b + 1) * blockSize, size); p += buf.length) {
      const n = preadFull(s, buf, Math.min(buf.length, Math.min((b + 1) * blockSize, size) - p), p);
      writeSync(d, buf, 0, n, p);
    }
  }
  closeSync(s);
  closeSync(d);
}

async function flashOnce(image: string, dest: string, size: number, bmap: string | false, verify: boolean) {
  const fd = openSync(dest, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  const source = await openImageSource(image, { bmap });
  const dev = await openImageFile(dest, { write: true });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = await flashImage(source, [{ device: dev }], { verify });
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  await dev.close();
  await source.close();
  if (!r.ok) throw new Error(`bench flash of ${image} failed: ${r.targets[0].error?.message}`);
  return { seconds, cpu, imageBytes: r.image.size, written: r.targets[0].bytesWritten };
}

type Run = Awaited<ReturnType<typeof flashOnce>>;

async function best(n: number, fn: () => Promise<Run>) {
  let b: Run | undefined;
  for (let i = 0; i < n; i++) {
    const r = await fn();
    if (!b || r.seconds < b.seconds) b = r;
  }
  return b as Run;
}

/** Child mode: flash argv[3] (bmap argv[4]) onto argv[5] and print peak RSS. */
async function child(image: string, bmap: string, dest: string, size: number) {
  const r = await flashOnce(image, dest, size, bmap, true);
  const maxRss = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ ...r, maxRss }) + '\n');
}

async function main() {
  if (process.argv[2] === '--child') return child(process.argv[3], process.argv[4], process.argv[5], Number(process.argv[6]));
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-flash-bench-'));
  const rows: Record<string, unknown>[] = [];
  try {
    const SIZE = Number(process.env.CRASHCART_BENCH_MIB ?? 256) * MiB;
    const img = join(dir, 'disk.img');
    const dest = join(dir, 'card.img');
    diskLikeImage(img, SIZE);

    // 1. formats
    const formats: ImageFormat[] = ['raw', 'gzip', 'zip', 'zstd', 'xz', 'bzip2'];
    let rawNoVerify = 0;
    let rawVerify = 0;
    for (const f of formats) {
      const path = f === 'raw' ? img : compress(img, f);
      if (!path) {
        rows.push({ test: `format ${f}`, skipped: 'no compressor on this machine' });
        continue;
      }
      const slow = f === 'bzip2' || f === 'xz';
      const nv = await best(slow ? 1 : 3, () => flashOnce(path, dest, SIZE, false, false));
      const v = slow ? nv : await best(3, () => flashOnce(path, dest, SIZE, false, true));
      const mbps = nv.imageBytes / 1e6 / nv.seconds;
      const mbpsV = v.imageBytes / 1e6 / v.seconds;
      const peers = f === 'raw' ? {} : timePeers(path, f, nv.imageBytes, slow ? 1 : 3);
      if (f === 'raw') {
        rawNoVerify = mbps;
        rawVerify = mbpsV;
      }
      rows.push({
        test: `format ${f}`,
        decoder: decoderName(f),
        fileMiB: +(statSync(path).size / MiB).toFixed(1),
        flashMBps: +mbps.toFixed(1),
        cpuSeconds: +nv.cpu.toFixed(2),
        ratioToRaw: +(mbps / rawNoVerify).toFixed(3),
        ...(f !== 'raw' ? atLeast(mbps / rawNoVerify, GOALS[f]) : {}),
        ...(slow ? {} : { flashVerifyMBps: +mbpsV.toFixed(1), verifyRatioToRaw: +(mbpsV / rawVerify).toFixed(3) }),
        ...(Object.keys(peers).length
          ? {
              peerDecodeMBps: peers,
              peerRatioToRaw: Object.fromEntries(Object.entries(peers).map(([k, m]) => [k, +(m / rawNoVerify).toFixed(3)])),
            }
          : {}),
      });
      if (f !== 'raw') rmSync(path);
    }

    // 2. bmap, 10 % mapped
    const BS = 4096;
    const ranges = scatteredRanges(SIZE, BS, 0.1);
    const sparse = join(dir, 'sparse.img');
    sparseCopy(img, sparse, ranges, BS, SIZE);
    const bmapPath = writeBmap(sparse, SIZE, BS, ranges);
    const zst = compress(sparse, 'zstd');
    const zstFrames = compressFrames(sparse, 4 * MiB);
    for (const [label, path] of [
      ['raw', sparse],
      ['zstd', zst],
      ['zstd, 4 MiB frames', zstFrames],
    ] as const) {
      if (!path) {
        rows.push({ test: `bmap 10% ${label}`, skipped: 'no zstd compressor' });
        continue;
      }
      const full = await best(3, () => flashOnce(path, dest, SIZE, false, true));
      const mapped = await best(3, () => flashOnce(path, dest, SIZE, bmapPath, true));
      rows.push({
        test: `bmap 10% ${label}`,
        mappedMiB: +(mapped.written / MiB).toFixed(1),
        fullSeconds: +full.seconds.toFixed(3),
        bmapSeconds: +mapped.seconds.toFixed(3),
        fullCpuSeconds: +full.cpu.toFixed(2),
        bmapCpuSeconds: +mapped.cpu.toFixed(2),
        timeRatioToFull: +(mapped.seconds / full.seconds).toFixed(3),
        speedup: +(full.seconds / mapped.seconds).toFixed(2),
        ...(label !== 'raw' ? atMost(mapped.seconds / full.seconds, GOALS.bmapZstd) : {}),
      });
    }
    rmSync(img);
    rmSync(sparse);
    if (zst) rmSync(zst);
    if (zstFrames) rmSync(zstFrames);

    // 3. peak RSS on a 4 GiB sparse image
    const BIG = Number(process.env.CRASHCART_BENCH_BIG_GIB ?? 4) * 1024 * MiB;
    const big = join(dir, 'big.img');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, BIG);
    const bigRanges: [number, number][] = [];
    for (let i = 0; i < 16; i++) {
      const off = i * (BIG / 16);
      const data = randomBytes(12 * MiB);
      writeSync(fd, data, 0, data.length, off);
      bigRanges.push([off / BS, (off + data.length) / BS - 1]);
    }
    closeSync(fd);
    const bigBmap = writeBmap(big, BIG, BS, bigRanges);
    const bigZst = compress(big, 'zstd') ?? compress(big, 'gzip');
    rmSync(big);
    if (bigZst) {
      const self = fileURLToPath(import.meta.url);
      const r = spawnSync(process.execPath, [self, '--child', bigZst, bigBmap, join(dir, 'bigcard.img'), String(BIG)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`RSS child failed: ${r.stderr}`);
      const c = JSON.parse(r.stdout.trim()) as Run & { maxRss: number };
      rows.push({
        test: 'peak RSS, 4 GiB sparse .zst + bmap',
        input: bigZst.endsWith('.zst') ? 'zstd' : 'gzip',
        imageGiB: BIG / 1024 / MiB,
        writtenMiB: +(c.written / MiB).toFixed(0),
        seconds: +c.seconds.toFixed(2),
        cpuSeconds: +c.cpu.toFixed(2),
        decompressMBps: +(c.imageBytes / 1e6 / c.seconds).toFixed(0),
        peakRssMiB: +(c.maxRss / MiB).toFixed(0),
        ...atMost(c.maxRss / MiB, GOALS.rssMiB),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const r of rows)
    console.log(
      Object.entries(r)
        .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
        .join('  '),
    );
  console.log(JSON.stringify({ bench: 'flash', node: process.version, rows }));
}

await main();
