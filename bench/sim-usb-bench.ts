/**
 * node dist/bench/sim-usb-bench.js [MiB] — where a whole flash or read spends its time on the host,
 * with no USB emulation in the way: crashcart's USB block device over the in-process simulated
 * reader of the tests (test/sim), 1 MiB per command. For the same device and size it times
 *  - the driver loop alone (UsbBlockDevice.write / read in 4 MiB requests),
 *  - flashImage() of a raw image file with verify off (what `flash --no-verify` runs),
 *  - readDevice() to a new file with its map (what `read` runs),
 * with the process's CPU seconds. The simulated reader costs a copy per transfer, so the ratios
 * between the rows show what the pipelines add around the driver. Run under `node --cpu-prof`
 * (CRASHCART_BENCH_ONLY=flash or =read for one pipeline) to see where that goes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsbBlockDevice } from '../src/blockdev/usb-device.js';
import { flashImage } from '../src/flash/flash.js';
import { readDevice } from '../src/flash/read.js';
import { openImageSource } from '../src/flash/source.js';
import { MemoryCard, SimReader } from '../test/sim/sim-reader.js';
import { FAST_BOT, FAST_SCSI } from '../test/sim/helpers.js';

const MiB = 1024 * 1024;

async function timed(f: () => Promise<unknown>): Promise<{ seconds: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const c = process.cpuUsage(c0);
  return { seconds: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 128);
  const only = process.env.CRASHCART_BENCH_ONLY;
  const bytes = mib * MiB;
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-sim-usb-'));
  try {
    const image = join(dir, 'image.raw');
    writeFileSync(image, randomBytes(bytes));
    const sim = new SimReader({ luns: [new MemoryCard(bytes / 512 + 2048)], powerOnUnitAttention: false });
    const dev = await UsbBlockDevice.open(sim, { maxTransferBytes: MiB, bot: FAST_BOT, scsi: FAST_SCSI });
    const rows: [string, { seconds: number; cpu: number }][] = [];
    if (!only || only === 'driver') {
      const req = new Uint8Array(4 * MiB).fill(0x5a);
      rows.push([
        'driver write',
        await timed(async () => {
          for (let off = 0; off < bytes; off += req.length) await dev.write(off, req);
          await dev.flush();
        }),
      ]);
      rows.push([
        'driver read',
        await timed(async () => {
          for (let off = 0; off < bytes; off += req.length) await dev.read(off, req.length);
        }),
      ]);
    }
    if (!only || only === 'flash') {
      const source = await openImageSource(image, { bmap: false });
      try {
        rows.push([
          'flashImage, verify off',
          await timed(async () => {
            const r = await flashImage(source, [{ device: dev }], { verify: false });
            if (!r.ok) throw new Error(JSON.stringify(r.targets[0].error));
          }),
        ]);
      } finally {
        await source.close();
      }
    }
    if (!only || only === 'read') {
      rows.push(['readDevice', await timed(() => readDevice(dev, join(dir, 'copy.img'), { size: bytes }))]);
    }
    await dev.close();
    console.log(`simulated reader, ${mib} MiB, 1 MiB per command`);
    for (const [name, m] of rows) {
      console.log(`${name.padEnd(24)} ${(bytes / 1e6 / m.seconds).toFixed(0).padStart(6)} MB/s  ${m.seconds.toFixed(2).padStart(6)} s  ${m.cpu.toFixed(2).padStart(6)} CPU s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
