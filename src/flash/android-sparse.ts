/**
 * Android sparse images (libsparse's format, what `img2simg` writes and fastboot flashes): a
 * 28-byte file header, then chunks of whole blocks — RAW (the blocks' bytes follow), FILL (a
 * 4-byte value repeated), DONT_CARE (nothing: the blocks are not written, like a bmap hole) and
 * CRC32 (the CRC-32 of every block so far, DONT_CARE blocks counting as zeros).
 *
 * `readSparseMap` walks the chunk headers (seeking over the data) and checks that they add up;
 * the image is then flashed as a sparse read: `sparseMapAsBmap` describes the RAW and FILL blocks
 * as mapped ranges, and `sparseExtents` yields their bytes, verifying every CRC32 chunk (and a
 * non-zero image checksum in the header) as it goes.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { Bmap, BmapRange } from './bmap.js';
import { readAt } from '../util/file-read.js';
import { SourceError } from './errors.js';
import type { Extent, ExtentOptions } from './source.js';

export const SPARSE_MAGIC = 0xed26ff3a;
const CHUNK_RAW = 0xcac1;
const CHUNK_FILL = 0xcac2;
const CHUNK_DONT_CARE = 0xcac3;
const CHUNK_CRC32 = 0xcac4;
/** Most chunks a map may hold (a 4 GiB image of alternating 4 KiB blocks has 2^20). */
const MAX_CHUNKS = 1 << 22;

export interface SparseChunk {
  type: 'raw' | 'fill' | 'dont-care' | 'crc32';
  /** First output block and number of blocks (0 for crc32). */
  block: number;
  blocks: number;
  /** File offset of the chunk's data (raw bytes, fill value or CRC). */
  dataOffset: number;
  /** fill: the 4 fill bytes; crc32: the expected CRC. */
  value?: number;
}

export interface SparseMap {
  blockSize: number;
  totalBlocks: number;
  /** The header's image checksum (libsparse writes 0: none). */
  imageChecksum: number;
  chunks: SparseChunk[];
  /** Output size in bytes. */
  imageSize: number;
}

async function readExactly(fh: FileHandle, path: string, n: number, pos: number): Promise<Buffer> {
  const b = await readAt(fh, pos, n);
  if (b.length < n) throw new SourceError(`${path}: Android sparse image is truncated at byte ${pos + b.length} (expected ${n - b.length} more bytes)`);
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

/** Reads and checks the header and every chunk header of an Android sparse image. */
export async function readSparseMap(fh: FileHandle, path: string, fileSize: number): Promise<SparseMap> {
  const h = await readExactly(fh, path, 28, 0);
  if (h.readUInt32LE(0) !== SPARSE_MAGIC) throw new SourceError(`${path}: not an Android sparse image`);
  const major = h.readUInt16LE(4);
  const fileHdr = h.readUInt16LE(8);
  const chunkHdr = h.readUInt16LE(10);
  const blockSize = h.readUInt32LE(12);
  const totalBlocks = h.readUInt32LE(16);
  const totalChunks = h.readUInt32LE(20);
  const imageChecksum = h.readUInt32LE(24);
  const bad = (what: string) => new SourceError(`${path}: damaged Android sparse image: ${what}`);
  if (major !== 1) throw new SourceError(`${path}: Android sparse image version ${major}.x is not supported (only 1.x)`);
  if (fileHdr < 28 || chunkHdr < 12) throw bad(`header sizes ${fileHdr}/${chunkHdr} are smaller than 28/12`);
  if (blockSize === 0 || blockSize % 4 !== 0) throw bad(`block size ${blockSize} is not a positive multiple of 4`);
  if (totalChunks > MAX_CHUNKS) throw bad(`${totalChunks} chunks (at most ${MAX_CHUNKS} are read)`);
  const imageSize = totalBlocks * blockSize;
  if (!Number.isSafeInteger(imageSize)) throw bad(`${totalBlocks} blocks of ${blockSize} bytes`);
  const chunks: SparseChunk[] = [];
  let pos = fileHdr;
  let block = 0;
  for (let i = 0; i < totalChunks; i++) {
    const c = await readExactly(fh, path, 12, pos);
    const type = c.readUInt16LE(0);
    const blocks = c.readUInt32LE(4);
    const totalSz = c.readUInt32LE(8);
    const dataOffset = pos + chunkHdr;
    const dataBytes = totalSz - chunkHdr;
    const at = `chunk ${i + 1} at byte ${pos}`;
    const expect = (n: number, what: string) => {
      if (dataBytes !== n) throw bad(`${at} (${what}) holds ${dataBytes} data bytes, expected ${n}`);
    };
    let chunk: SparseChunk;
    if (type === CHUNK_RAW) {
      expect(blocks * blockSize, `${blocks} raw blocks`);
      chunk = { type: 'raw', block, blocks, dataOffset };
    } else if (type === CHUNK_FILL) {
      expect(4, 'fill');
      chunk = { type: 'fill', block, blocks, dataOffset, value: (await readExactly(fh, path, 4, dataOffset)).readUInt32LE(0) };
    } else if (type === CHUNK_DONT_CARE) {
      expect(0, "don't care");
      chunk = { type: 'dont-care', block, blocks, dataOffset };
    } else if (type === CHUNK_CRC32) {
      expect(4, 'crc32');
      chunk = { type: 'crc32', block, blocks: 0, dataOffset, value: (await readExactly(fh, path, 4, dataOffset)).readUInt32LE(0) };
    } else {
      throw bad(`${at} has unknown type 0x${type.toString(16)}`);
    }
    chunks.push(chunk);
    block += chunk.blocks;
    if (block > totalBlocks) throw bad(`the chunks describe more than the ${totalBlocks} blocks of the header`);
    pos += totalSz;
    if (pos > fileSize) throw new SourceError(`${path}: Android sparse image is truncated: ${at} ends at byte ${pos}, the file at ${fileSize}`);
  }
  if (block !== totalBlocks) throw bad(`the chunks describe ${block} blocks, the header ${totalBlocks}`);
  if (pos !== fileSize) throw bad(`${fileSize - pos} bytes follow the last chunk`);
  return { blockSize, totalBlocks, imageChecksum, chunks, imageSize };
}

/** The RAW and FILL blocks as the mapped ranges of a bmap (adjacent chunks merged), DONT_CARE ones as holes. */
export function sparseMapAsBmap(map: SparseMap, path: string): Bmap {
  const ranges: BmapRange[] = [];
  for (const c of map.chunks) {
    if ((c.type !== 'raw' && c.type !== 'fill') || c.blocks === 0) continue;
    const last = ranges[ranges.length - 1];
    if (last && last.last + 1 === c.block) last.last = c.block + c.blocks - 1;
    else ranges.push({ first: c.block, last: c.block + c.blocks - 1 });
  }
  const mappedBlocks = ranges.reduce((a, r) => a + r.last - r.first + 1, 0);
  return {
    path: `${path} (Android sparse chunk map)`,
    version: 'android-sparse-1',
    imageSize: map.imageSize,
    blockSize: map.blockSize,
    blocksCount: map.totalBlocks,
    mappedBlocksCount: mappedBlocks,
    ranges,
    mappedBytes: mappedBlocks * map.blockSize,
  };
}

/**
 * The bytes of the RAW and FILL chunks in pieces of at most `chunkSize` bytes, DONT_CARE chunks
 * skipped; CRC32 chunks (and a non-zero header checksum) are checked against everything before them.
 */
export async function* sparseExtents(fh: FileHandle, path: string, map: SparseMap, eo: ExtentOptions): AsyncGenerator<Extent> {
  const chunkSize = Math.max(map.blockSize, Math.floor((eo.chunkSize ?? 1 << 20) / map.blockSize) * map.blockSize);
  let crc = 0;
  const zeros = new Uint8Array(Math.min(chunkSize, 1 << 20));
  const crcZeros = (n: number) => {
    for (let left = n; left > 0; left -= zeros.length) crc = crc32(zeros.subarray(0, Math.min(left, zeros.length)), crc);
  };
  let hasCrc = map.imageChecksum !== 0;
  for (const c of map.chunks) if (c.type === 'crc32') hasCrc = true;
  for (const c of map.chunks) {
    eo.signal?.throwIfAborted();
    const start = c.block * map.blockSize;
    const bytes = c.blocks * map.blockSize;
    if (c.type === 'crc32') {
      if (crc >>> 0 !== c.value) {
        throw new SourceError(
          `${path}: CRC32 chunk at block ${c.block} says 0x${c.value!.toString(16).padStart(8, '0')}, the data before it gives 0x${(crc >>> 0).toString(16).padStart(8, '0')}: the image is corrupt`,
        );
      }
      continue;
    }
    if (c.type === 'dont-care') {
      if (hasCrc) crcZeros(bytes);
      continue;
    }
    let fill: Uint8Array | undefined;
    if (c.type === 'fill') {
      fill = new Uint8Array(Math.min(chunkSize, bytes));
      new DataView(fill.buffer).setUint32(0, c.value!, true);
      for (let i = 4; i < fill.length; i *= 2) fill.copyWithin(i, 0, Math.min(i, fill.length - i));
    }
    for (let off = 0; off < bytes;) {
      const n = Math.min(chunkSize, bytes - off);
      const data = fill ? fill.slice(0, n) : new Uint8Array(await readExactly(fh, path, n, c.dataOffset + off));
      if (hasCrc) crc = crc32(data, crc);
      eo.onInput?.(c.dataOffset + off + (fill ? 4 : n));
      yield { offset: start + off, data };
      off += n;
    }
  }
  if (map.imageChecksum !== 0 && crc >>> 0 !== map.imageChecksum) {
    throw new SourceError(`${path}: the image checksum in the header is 0x${map.imageChecksum.toString(16)}, the data gives 0x${(crc >>> 0).toString(16)}: the image is corrupt`);
  }
}
