/**
 * Decoding while the region is still being read. The costly part of an extraction is
 * decompressing the dmesg records; which zones the kernel shows, in which order, and how they
 * are named, can only be settled once every zone header is in (byte order and header layout are
 * voted over all of them, a detected geometry needs every signature). So, as each chunk arrives,
 * the kmsg zones it completes are decompressed into the KmsgDecompressor that decodeRegion()
 * then consults — results are keyed by the payload's place in the region, so whatever the final
 * pass decides, it gets exactly what decoding that payload gives — and, when the geometry is to
 * be detected, the chunk is scanned for signatures, which also tell where the kmsg zones are.
 *
 * With a KmsgDecodePool, the payloads of each chunk go to worker threads as one batch (once a
 * first record has settled the codec to try first, so that every result is what decoding them
 * one after the other here would give); the main thread then only reads, scans and hands over.
 * Between zones the work yields to the event loop, so that the reads (USB commands, file reads)
 * keep going while records are decoded.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Endian, KmsgLayoutName } from './abi.js';
import { KMSG_LAYOUTS, PSTORE_KMSG_HEADER_MAGIC, ZONE_HEADER_SIZE, parseKmsgHeader, readS32, scoreKmsgLayout, signatureEndian } from './abi.js';
import type { KmsgDecodePool, KmsgJob } from './kmsg-decode-pool.js';
import type { KmsgDecompressor } from './kmsg-decompressor.js';
import { kmsgMaxOutput } from './kmsg-decompressor.js';
import type { Zone } from './layout.js';
import type { StreamedRegion } from './region-source.js';
import type { SignatureScanner } from './scan.js';

export interface ReadProgress {
  /** Leading bytes of the region read so far, of `bytesTotal`. */
  bytesRead: number;
  bytesTotal: number;
  /** Compressed dmesg records decoded so far. */
  recordsDecoded: number;
}

export interface DecodeAheadOptions {
  decompressor: KmsgDecompressor;
  /** The kmsg zones of a known geometry; without them, the kmsg signatures `scanner` finds. */
  kmsgZones?: Zone[];
  /** Scans every chunk (when the geometry is to be detected). */
  scanner?: SignatureScanner;
  endian?: Endian;
  layout?: KmsgLayoutName;
  maxDecompressed?: number;
  /** Decodes the payloads on worker threads; without it (or when it fails) they are decoded here. */
  pool?: KmsgDecodePool;
  onProgress?: (p: ReadProgress) => void;
}

/** Longest run of decoding between two yields to the event loop. */
const SLICE_MS = 1;

/** Fewest payloads worth a batch for the pool (fewer, at the end of the region, are decoded here unless the pool is already busy). */
const MIN_BATCH = 16;

interface ReadyPayload extends KmsgJob {
  offset: number;
}

/** Reads the whole streamed region, decoding its compressed dmesg records as their zones arrive. */
export async function decodeAhead(stream: StreamedRegion, total: number, opts: DecodeAheadOptions): Promise<void> {
  const { scanner } = opts;
  /** kmsg zones (start, and size when known) in region order, and how many are done. */
  const zones: { offset: number; size?: number }[] = opts.kmsgZones ? [...opts.kmsgZones].sort((a, b) => a.offset - b.offset) : [];
  let next = 0;
  const seen = { aligned: 0, unaligned: 0 };
  let filled = 0;
  let decoded = 0;
  let sliceStart = performance.now();
  const progress = () => opts.onProgress?.({ bytesRead: filled, bytesTotal: total, recordsDecoded: decoded });
  const { decompressor, pool } = opts;
  /** Payloads found and not yet decoded or handed over; batches in the pool. */
  let ready: ReadyPayload[] = [];
  const inPool: Promise<void>[] = [];
  let pooled = false;
  const decodeHere = async (list: ReadyPayload[]) => {
    for (const p of list) {
      decompressor.decompress(p.payload, p.offset, p.maxOutput);
      decoded++;
      progress();
      if (performance.now() - sliceStart >= SLICE_MS) {
        await yieldToLoop();
        sliceStart = performance.now();
      }
    }
  };
  const handOver = async (end: boolean) => {
    // Until a record has decoded, the codec to try first is open: decode here, in region order.
    while (ready.length && decompressor.preferredCodec === undefined) await decodeHere(ready.splice(0, 1));
    if (!ready.length) return;
    if (!pool || (ready.length < MIN_BATCH && !(end && pooled))) {
      if (end || !pool) await decodeHere(ready.splice(0));
      return;
    }
    const batch = ready;
    ready = [];
    pooled = true;
    const preferred = decompressor.preferredCodec;
    inPool.push(
      pool.decode(batch, preferred).then(
        (results) => {
          results.forEach((r, i) => decompressor.remember(batch[i].offset, batch[i].payload.length, batch[i].maxOutput, r));
          decoded += batch.length;
          progress();
        },
        () => decodeHere(batch),
      ),
    );
  };
  const drain = async (end: boolean) => {
    for (; next < zones.length; next++) {
      const z = zones[next];
      const r = await readyZone(stream, z.offset, z.size, filled, end, opts);
      if (r === 'wait') break;
      if (r !== 'skip') ready.push(r);
    }
    await handOver(end);
  };
  for await (const c of stream.chunks()) {
    filled = c.offset + c.bytes.length;
    progress();
    if (scanner) {
      scanner.push(c.offset, c.bytes);
      if (!opts.kmsgZones) zones.push(...newKmsgSignatures(scanner, seen));
    }
    await drain(false);
  }
  await drain(true);
  await Promise.all(inPool);
}

/** kmsg signatures the scanner found since the last call, in offset order (all beyond the earlier ones). */
function newKmsgSignatures(scanner: SignatureScanner, seen: { aligned: number; unaligned: number }): { offset: number }[] {
  const fresh = [...scanner.aligned.slice(seen.aligned), ...scanner.unaligned.slice(seen.unaligned)];
  seen.aligned = scanner.aligned.length;
  seen.unaligned = scanner.unaligned.length;
  return fresh
    .filter((f) => f.type === 'dmesg')
    .map((f) => ({ offset: f.offset }))
    .sort((a, b) => a.offset - b.offset);
}

/**
 * The compressed payload of the kmsg zone at `offset` once its bytes are in: 'wait' when they
 * are not yet, 'skip' when the zone holds no compressed record (or not a whole one). `size`: the
 * zone size when the geometry is known (a detected one may still differ: then the final pass
 * decodes what it needs itself).
 */
async function readyZone(
  stream: StreamedRegion,
  offset: number,
  size: number | undefined,
  filled: number,
  end: boolean,
  opts: DecodeAheadOptions,
): Promise<'wait' | 'skip' | ReadyPayload> {
  const headLen = ZONE_HEADER_SIZE + KMSG_LAYOUTS.lp64.size;
  if (offset + headLen > filled) return end ? 'skip' : 'wait';
  const head = await stream.source.read(offset, headLen);
  const endian = opts.endian ?? signatureEndian(head, 0, 'dmesg');
  if (!endian || signatureEndian(head, 0, 'dmesg') !== endian) return 'skip';
  const datalen = readS32(head, 4, endian);
  const layout = opts.layout ?? bestLayout(head, endian);
  const L = KMSG_LAYOUTS[layout];
  const hdr = parseKmsgHeader(head, { endian, layout });
  if (hdr.magic !== PSTORE_KMSG_HEADER_MAGIC || !hdr.compressed || datalen <= L.size) return 'skip';
  if (size !== undefined && datalen > size - ZONE_HEADER_SIZE) return 'skip';
  const payloadAt = offset + ZONE_HEADER_SIZE + L.size;
  const payloadEnd = offset + ZONE_HEADER_SIZE + datalen;
  if (payloadEnd > filled) return end ? 'skip' : 'wait';
  const payload = await stream.source.read(payloadAt, payloadEnd - payloadAt);
  return { payload, offset: payloadAt, maxOutput: kmsgMaxOutput(size ?? 0, opts.maxDecompressed) };
}

/** The kmsg header layout that fits this zone's header best (lp64 and ilp32 place the payload alike). */
function bestLayout(head: Uint8Array, endian: Endian): KmsgLayoutName {
  return scoreKmsgLayout(head, { endian, layout: 'i386' }) > scoreKmsgLayout(head, { endian, layout: 'lp64' }) ? 'i386' : 'lp64';
}
