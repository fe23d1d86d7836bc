// Runs inside the test VM (host_run node dist/test/vm/usb-guest.js …): library-level checks
// of the USB driver against real USB devices that the CLI does not expose. Prints one JSON
// object on stdout; exits non-zero (after printing {"error": …}) when a check fails.
//
//   rw SPEC SEED            write patterns at the start, across many commands and over the
//                           last blocks, flush, close; reopen read-only and compare
//   reset SPEC              read, USB port reset (re-enumeration), read again and compare
//   stall SPEC              an unknown class request on the control pipe: how usb@3 reports
//                           the STALL and what the transport maps it to
//   write-nowp SPEC         open for writing with write-protect detection off (as for readers
//                           with NO_WP_DETECT) and write: the card itself must refuse (07/27)
import { createHash } from 'node:crypto';
import { CrashcartError } from '../../src/errors.js';
import { UsbTransferError } from '../../src/usb/errors.js';
import { NodeUsbHost, closeAllUsbTransports } from '../../src/usb/node-usb-transport.js';
import { openUsbDevice } from '../../src/reader/open-usb.js';
import { loadReaderProfiles } from '../../src/reader/reader-profiles.js';
import { parseUsbSelector, resolveUsbSelector } from '../../src/reader/selector.js';

/** Deterministic bytes for region `index` of a run with `seed` (the host test recomputes them). */
export function rwPattern(length: number, seed: number, index: number): Uint8Array {
  const b = new Uint8Array(length);
  let x = (seed * 2654435761 + index * 40503 + 1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Regions `rw` writes on a card of `size` bytes (block size 512). */
export function rwRegions(size: number): { offset: number; length: number }[] {
  return [
    { offset: 0, length: 64 * 1024 },
    // several commands: more than 2 × 120 KiB, not a multiple of the transfer size
    { offset: 1024 * 1024 + 512, length: 300 * 1024 + 3 * 512 },
    // the last 16 blocks: 8 through the normal path, 8 one block per command
    { offset: size - 16 * 512, length: 16 * 512 },
  ];
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function rw(spec: string, seed: number) {
  const started = Date.now();
  const dev = await openUsbDevice(spec, { write: true });
  const regions = rwRegions(dev.size);
  try {
    for (const [i, r] of regions.entries()) await dev.write(r.offset, rwPattern(r.length, seed, i));
    await dev.flush();
  } finally {
    await dev.close();
  }
  const again = await openUsbDevice(spec, { write: false });
  const out = [];
  try {
    for (const [i, r] of regions.entries()) {
      const got = await again.read(r.offset, r.length);
      const want = rwPattern(r.length, seed, i);
      const same = Buffer.from(got).equals(Buffer.from(want));
      if (!same) throw new Error(`region ${i} (offset ${r.offset}, ${r.length} bytes) read back differs`);
      out.push({ ...r, sha256: sha(got) });
    }
    return { ok: true, device: again.info.name, size: again.size, blockSize: again.blockSize, regions: out, ms: Date.now() - started };
  } finally {
    await again.close();
  }
}

async function reset(spec: string) {
  const dev = await openUsbDevice(spec, { write: false });
  try {
    const n = Math.min(dev.size, 256 * 1024);
    const before = await dev.read(0, n);
    const t = dev.scsi.bot.transport;
    const addrBefore = t.device.address;
    await t.resetPort({ timeoutMs: 15_000 });
    // the device answers the first command after a reset with 06/29 (absorbed by the SCSI layer)
    const after = await dev.read(0, n);
    if (!Buffer.from(after).equals(Buffer.from(before))) throw new Error('data read after the port reset differs');
    return { ok: true, addressBefore: addrBefore, addressAfter: t.device.address, port: t.device.portPath, bytes: n };
  } finally {
    await dev.close();
  }
}

async function stall(spec: string) {
  const host = new NodeUsbHost();
  const d = resolveUsbSelector(parseUsbSelector(spec), await host.list());
  const t = await host.open(d);
  try {
    await t.controlIn({ requestType: 'class', recipient: 'interface', request: 0xfc, value: 0, index: t.iface.interfaceNumber }, 1, { timeoutMs: 5000 });
    return { ok: false, answered: true };
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause;
    return {
      ok: e instanceof UsbTransferError && e.kind === 'stall',
      kind: e instanceof UsbTransferError ? e.kind : (e as Error).name,
      message: (e as Error).message,
      rawMessage: cause instanceof Error ? cause.message : null,
    };
  } finally {
    await t.close();
  }
}

async function writeNoWp(spec: string) {
  const profiles = loadReaderProfiles();
  const host = new NodeUsbHost();
  const d = resolveUsbSelector(parseUsbSelector(spec), await host.list());
  const noWp = [...profiles, { source: 'test', name: 'no WP detect', match: { vendorId: d.vendorId, productId: d.productId }, quirks: { noWriteProtectDetect: true } }];
  const dev = await openUsbDevice(spec, { write: true, host, profiles: noWp });
  try {
    await dev.write(0, new Uint8Array(dev.blockSize).fill(0x5a));
    await dev.flush();
    return { ok: false, wrote: true };
  } catch (e) {
    return { ok: e instanceof CrashcartError && e.exitCode === 5, name: (e as Error).name, exitCode: (e as CrashcartError).exitCode, message: (e as Error).message };
  } finally {
    await dev.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, spec, arg] = argv;
  let r: { ok: boolean };
  if (cmd === 'rw') r = await rw(spec, Number(arg ?? 1));
  else if (cmd === 'reset') r = await reset(spec);
  else if (cmd === 'stall') r = await stall(spec);
  else if (cmd === 'write-nowp') r = await writeNoWp(spec);
  else throw new Error(`unknown command ${cmd}`);
  process.stdout.write(JSON.stringify(r) + '\n');
  return r.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    async (e: unknown) => {
      await closeAllUsbTransports();
      process.stdout.write(JSON.stringify({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }) + '\n');
      process.exitCode = 1;
    },
  );
}
