/**
 * npm run bench: extraction from a full 128 MiB pstore region (2045 kmsg zones, every one
 * holding a compressed dump, plus pmsg/console/ftrace) compared with just reading the region's
 * bytes from the same image file; extraction includes writing the records to a new folder. Prints a
 * table and a JSON line with both ratios (geometry given and auto-detected) from the same run, the
 * CPU time of each (all threads: decoding runs on worker threads too) and the load average, since
 * on a shared machine the wall-clock ratios move with the load.
 *
 * Three more rows split the run with the geometry given into its parts, each as a floor: decoding
 * into memory alone (`extractPstore`, nothing written), writing an extraction already in memory
 * alone (`writeExtraction`: the file system's cost of 2048 files), and inflating the 2045 payloads
 * alone, one after the other on this thread with node:zlib (the decompression no extraction can skip).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { openImageFile } from '../src/blockdev/image-file-device.js';
import { extractPstore } from '../src/pstore/extract.js';
import { writeExtraction } from '../src/pstore/extract-writer.js';
import { computeLayout } from '../src/pstore/layout.js';
import type { PstoreParams } from '../src/pstore/params.js';
import { deviceSource } from '../src/pstore/region-source.js';
import { ftraceRecords, putCircularZone, putKmsgZone } from '../test/helpers/zone-builder.js';

const MiB = 1024 * 1024;
const SIZE = 128 * MiB;
const CPUS = 2;
/** Runs of each contender (the median is reported): CRASHCART_BENCH_RUNS, default 3. */
const RUNS = Math.max(1, Number(process.env.CRASHCART_BENCH_RUNS) || 3);

function buildImage(path: string): { layout: ReturnType<typeof computeLayout>; payload: Uint8Array } {
  const layout = computeLayout(SIZE, { kmsg: 65536, pmsg: 65536, console: 65536, ftrace: 65536 }, CPUS);
  const img = new Uint8Array(SIZE);
  const line = (i: number) => `<6>[ ${String(i).padStart(5)}.000000] kernel: subsystem ${i % 97} reports state ${(i * 2654435761) >>> 0}\n`;
  const text = Buffer.from(Array.from({ length: 1200 }, (_, i) => line(i)).join(''));
  const payload = new Uint8Array(deflateRawSync(text, { windowBits: 15, level: 6 }));
  for (const z of layout.zones) {
    if (z.type === 'dmesg') {
      putKmsgZone(img, z.offset, z.size, { sec: 1700000000n + BigInt(z.index), nsec: 0, compressed: true, counter: z.index + 1, reason: 2, payload }, 'le', 'lp64');
    } else if (z.type === 'ftrace') {
      const recs = Array.from({ length: 4000 }, (_, i) => ({
        ip: 0xffffffff81000000n + BigInt(i * 32),
        parent: 0xffffffff81100000n,
        ts: (BigInt(i * CPUS + z.index) << 8n) | BigInt(z.index),
      }));
      putCircularZone(img, z.offset, z.size, 'ftrace', ftraceRecords(recs, 'le', 64), 'le');
    } else {
      putCircularZone(img, z.offset, z.size, z.type as 'pmsg' | 'console', Buffer.from(text.subarray(0, 100000)), 'le');
    }
  }
  writeFileSync(path, img);
  return { layout, payload };
}

/** Median wall-clock time of `runs` runs, and the CPU time (user + system, every thread) of that run. */
async function time(fn: () => Promise<unknown>, runs = RUNS): Promise<{ ms: number; cpuMs: number }> {
  const t: { ms: number; cpuMs: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const s = performance.now();
    await fn();
    const ms = performance.now() - s;
    const u = process.cpuUsage(c);
    t.push({ ms, cpuMs: (u.user + u.system) / 1000 });
  }
  return t.sort((a, b) => a.ms - b.ms)[Math.floor(runs / 2)];
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-bench-'));
  try {
    const img = join(dir, 'region.img');
    const { layout, payload } = buildImage(img);
    const dev = await openImageFile(img);
    const readAll = () =>
      (async () => {
        for (let off = 0; off < dev.size; off += 8 * MiB) await dev.read(off, Math.min(8 * MiB, dev.size - off));
      })();
    await readAll(); // warm the page cache for every contender alike
    const params: PstoreParams = {};
    for (const k of ['kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size'] as const) params[k] = { value: 64, source: 'flag' };
    params.cpus = { value: CPUS, source: 'flag' };
    let records = 0;
    // A new output folder for every run, as a user would give (a non-empty one is refused).
    let run = 0;
    const extractTo = (p: PstoreParams, prefix: string) => async () => {
      const x = await extractPstore(deviceSource(dev, 0, dev.size), { params: p });
      await writeExtraction(x, join(dir, `${prefix}-${run++}`), { device: img, offset: 0, size: dev.size, description: 'bench' });
      records = x.records.length;
    };
    const load = loadavg()[0];
    const read = await time(readAll);
    const given = await time(extractTo(params, 'given'));
    const auto = await time(extractTo({}, 'auto'));
    let inMemory: Awaited<ReturnType<typeof extractPstore>> | undefined;
    const decodeOnly = await time(async () => {
      inMemory = await extractPstore(deviceSource(dev, 0, dev.size), { params });
    });
    const writeOnly = await time(() => writeExtraction(inMemory!, join(dir, `write-${run++}`), { device: img, offset: 0, size: dev.size, description: 'bench' }));
    const inflateOnly = await time(async () => {
      for (let i = 0; i < layout.kmsgCount; i++) inflateRawSync(payload);
    });
    await dev.close();
    const tRead = read.ms;
    const row = (name: string, t: { ms: number; cpuMs: number }) =>
      console.log(
        `${name.padEnd(44)} ${t.ms.toFixed(0).padStart(7)} ms  ${(SIZE / MiB / (t.ms / 1000)).toFixed(0).padStart(6)} MiB/s  ×${(t.ms / tRead).toFixed(2)} of read  (CPU ${t.cpuMs.toFixed(0)} ms)`,
      );
    console.log(`region 128 MiB: ${layout.kmsgCount} compressed kmsg dumps, ${layout.ftraceCount} ftrace zones, pmsg, console (${records} records out)`);
    console.log(`${availableParallelism()} cores, load average ${load.toFixed(2)} at the start; median of ${RUNS} runs each`);
    row('read the region (8 MiB chunks)', read);
    row('extract, geometry given', given);
    row('extract, geometry auto-detected', auto);
    console.log(`auto-detected / given: ×${(auto.ms / given.ms).toFixed(2)}`);
    console.log('parts of "geometry given", each alone:');
    row('  decode into memory (extractPstore)', decodeOnly);
    row('  write the files (writeExtraction)', writeOnly);
    row(`  inflate the ${layout.kmsgCount} dumps (one thread)`, inflateOnly);
    console.log(
      JSON.stringify({
        bench: 'extract-128MiB',
        readMs: tRead,
        extractGivenMs: given.ms,
        extractAutoMs: auto.ms,
        ratioGiven: given.ms / tRead,
        ratioAuto: auto.ms / tRead,
        autoOverGiven: auto.ms / given.ms,
        parts: { decodeMs: decodeOnly.ms, writeMs: writeOnly.ms, inflateMs: inflateOnly.ms, outputDir: tmpdir() },
        cpuMs: { read: read.cpuMs, given: given.cpuMs, auto: auto.cpuMs, decode: decodeOnly.cpuMs, write: writeOnly.cpuMs, inflate: inflateOnly.cpuMs },
        loadAverage: load,
        records,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
