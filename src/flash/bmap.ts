/**
 * bmaptool's block map files (XML, format versions 1.0–1.4 and 2.0): which blocks of an image
 * hold data, and a checksum per block range. Flashing with a bmap writes only the mapped
 * ranges and checks each range's checksum on the data as it streams past.
 *
 * Versions 1.0–1.2 carry no checksums, 1.3 uses SHA-1 (`sha1` attributes, `BmapFileSHA1`),
 * 1.4 and 2.0 name the algorithm in `ChecksumType` (`chksum` attributes, `BmapFileChecksum`).
 * The file's own checksum is computed over the file with the checksum text replaced by zeros.
 */
import { createHash, getHashes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { BMAP_MAX_BYTES, formatLimit, InputLimitError, readFileBounded } from '../input-limits.js';
import { SourceError } from './errors.js';

export interface BmapRange {
  /** First and last block, inclusive. */
  first: number;
  last: number;
  /** Lower-case hex digest of the range's bytes, when the bmap has one. */
  checksum?: string;
}

export interface Bmap {
  /** Path the bmap was read from (for messages). */
  path: string;
  version: string;
  imageSize: number;
  blockSize: number;
  blocksCount: number;
  mappedBlocksCount: number;
  /** Node crypto algorithm name (`sha256`, `sha1`), or undefined for checksum-less bmaps. */
  checksumType?: string;
  ranges: BmapRange[];
  /** Bytes the mapped ranges cover (the last block may be partial). */
  mappedBytes: number;
}

/** Byte extent of a range within the image. */
export function rangeBytes(b: Pick<Bmap, 'blockSize' | 'imageSize'>, r: BmapRange): { start: number; end: number } {
  return { start: r.first * b.blockSize, end: Math.min((r.last + 1) * b.blockSize, b.imageSize) };
}

function nodeHashName(pythonName: string): string | undefined {
  const n = pythonName.trim().toLowerCase();
  const candidates = [n, n.replace('_', '-'), n === 'blake2b' ? 'blake2b512' : n, n === 'blake2s' ? 'blake2s256' : n];
  const have = new Set(getHashes());
  return candidates.find((c) => have.has(c));
}

// The XML is scanned with indexOf rather than lazy regular expressions, so that unclosed tags
// and comments cost linear time even in a file of the maximum size (BMAP_MAX_BYTES).

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11 || (c > 127 && /\s/.test(String.fromCharCode(c)));
}

interface OpenTag {
  start: number;
  /** Index just past the `>`. */
  end: number;
  attrs: string;
}

/** The first `<tag>` or `<tag attrs…>` at or after `from` (the `(?:\s[^>]*)?>` of the old regex). */
function findOpen(xml: string, tag: string, from: number): OpenTag | null {
  const needle = `<${tag}`;
  let i = from;
  while ((i = xml.indexOf(needle, i)) >= 0) {
    const j = i + needle.length;
    const c = xml.charCodeAt(j);
    if (c === 62 /* > */) return { start: i, end: j + 1, attrs: '' };
    if (isWs(c)) {
      const g = xml.indexOf('>', j);
      return g < 0 ? null : { start: i, end: g + 1, attrs: xml.slice(j, g) };
    }
    i = j;
  }
  return null;
}

/** The first `</tag>` (optionally with blanks before `>`) at or after `from`. */
function findClose(xml: string, tag: string, from: number): { start: number; end: number } | null {
  const needle = `</${tag}`;
  let i = from;
  while ((i = xml.indexOf(needle, i)) >= 0) {
    let j = i + needle.length;
    while (j < xml.length && isWs(xml.charCodeAt(j))) j++;
    if (xml.charCodeAt(j) === 62) return { start: i, end: j + 1 };
    i = j;
  }
  return null;
}

function tagText(xml: string, tag: string): string | undefined {
  const open = findOpen(xml, tag, 0);
  if (!open) return undefined;
  const close = findClose(xml, tag, open.end);
  return close ? xml.slice(open.end, close.start).trim() : undefined;
}

/** Blanks out `<!-- … -->` comments (unclosed ones are left as they are). */
function blankComments(raw: string): string {
  let out = '';
  let from = 0;
  for (;;) {
    const a = raw.indexOf('<!--', from);
    if (a < 0) break;
    const b = raw.indexOf('-->', a + 4);
    if (b < 0) break;
    out += raw.slice(from, a) + ' '.repeat(b + 3 - a);
    from = b + 3;
  }
  return from === 0 ? raw : out + raw.slice(from);
}

function intField(xml: string, tag: string, path: string, required = true): number | undefined {
  const t = tagText(xml, tag);
  if (t === undefined) {
    if (required) throw new SourceError(`${path}: bmap lacks <${tag}>`);
    return undefined;
  }
  if (!/^\d+$/.test(t)) throw new SourceError(`${path}: <${tag}> is not a number: "${t}"`);
  const v = Number(t);
  if (!Number.isSafeInteger(v)) throw new SourceError(`${path}: <${tag}> ${t} is too large`);
  return v;
}

function attr(attrs: string, name: string): string | undefined {
  // `name = "v"` or `name='v'` preceded by a blank or the start; a candidate whose quote never
  // closes is skipped without rescanning (linear in the length of attrs).
  const re = new RegExp(`(?:^|\\s)${name}\\s*=\\s*(["'])`, 'g');
  const lastQuote = { '"': attrs.lastIndexOf('"'), "'": attrs.lastIndexOf("'") } as Record<string, number>;
  let m: RegExpExecArray | null;
  while ((m = re.exec(attrs)) !== null) {
    const q = m[1];
    const from = m.index + m[0].length;
    if (lastQuote[q] >= from) {
      const end = attrs.indexOf(q, from);
      return attrs.slice(from, end);
    }
    re.lastIndex = from;
  }
  return undefined;
}

/** The root element's version and the image geometry, checked for consistency. */
function parseHeader(
  xml: string,
  path: string,
): { version: string; major: number; minor: number; imageSize: number; blockSize: number; blocksCount: number; mappedBlocksCount: number } {
  const root = findOpen(xml, 'bmap', 0);
  if (!root) throw new SourceError(`${path} is not a bmap file (no <bmap> element)`);
  const version = attr(root.attrs, 'version');
  if (!version || !/^\d+\.\d+$/.test(version)) throw new SourceError(`${path}: bmap has no usable version attribute`);
  const [major, minor] = version.split('.').map(Number);
  if (major > 2) throw new SourceError(`${path}: bmap format version ${version} is not supported (up to 2.x)`);
  const imageSize = intField(xml, 'ImageSize', path) as number;
  const blockSize = intField(xml, 'BlockSize', path) as number;
  const blocksCount = intField(xml, 'BlocksCount', path) as number;
  const mappedBlocksCount = intField(xml, 'MappedBlocksCount', path) as number;
  if (blockSize <= 0) throw new SourceError(`${path}: block size must be positive`);
  if (Math.ceil(imageSize / blockSize) !== blocksCount) {
    throw new SourceError(`${path}: inconsistent bmap: image size ${imageSize} is not ${blocksCount} blocks of ${blockSize} bytes`);
  }
  return { version, major, minor, imageSize, blockSize, blocksCount, mappedBlocksCount };
}

/** How a bmap of this version records checksums: the algorithm, the range attribute and the file checksum's tag. */
interface ChecksumScheme {
  checksumType: string;
  rangeAttr: string;
  fileSumTag: string;
}

function checksumScheme(xml: string, path: string, version: string, major: number, minor: number): ChecksumScheme | undefined {
  if (major === 2 || (major === 1 && minor === 4)) {
    const t = tagText(xml, 'ChecksumType');
    if (!t) throw new SourceError(`${path}: bmap ${version} lacks <ChecksumType>`);
    const checksumType = nodeHashName(t);
    if (!checksumType) throw new SourceError(`${path}: checksum type "${t}" is not available`);
    return { checksumType, rangeAttr: 'chksum', fileSumTag: 'BmapFileChecksum' };
  }
  if (major === 1 && minor === 3) return { checksumType: 'sha1', rangeAttr: 'sha1', fileSumTag: 'BmapFileSHA1' };
  return undefined;
}

/** Checks the bmap file's own checksum (computed with the checksum text replaced by zeros), when it has one. */
function checkFileChecksum(bytes: Uint8Array, raw: string, xml: string, path: string, scheme: ChecksumScheme): void {
  const { checksumType, fileSumTag } = scheme;
  const want = tagText(xml, fileSumTag)?.toLowerCase();
  if (!want) return;
  // Case-insensitive search that keeps string offsets: toLowerCase() changes the length of
  // some non-ASCII text (e.g. U+0130), which used to shift the position past the end.
  const at = raw.indexOf(want) >= 0 ? raw.indexOf(want) : raw.replace(/[A-Z]+/g, (c) => c.toLowerCase()).indexOf(want);
  const zeroed = Buffer.from(bytes);
  const byteAt = at < 0 ? -1 : Buffer.byteLength(raw.slice(0, at));
  if (byteAt < 0 || byteAt + want.length > zeroed.length) {
    throw new SourceError(`${path}: the bmap file is corrupt: its ${fileSumTag} cannot be located in the file`);
  }
  zeroed.fill(0x30, byteAt, byteAt + want.length);
  const got = createHash(checksumType).update(zeroed).digest('hex');
  if (got !== want) {
    throw new SourceError(`${path}: the bmap file is corrupt: its ${checksumType} is ${got}, but it says ${want}`);
  }
}

/** One `<Range>`: its text `first-last` (or one block) must follow the range before it (ending at `prevLast`). */
function parseRange(text: string, attrs: string, path: string, blocksCount: number, prevLast: number, rangeAttr: string | undefined): BmapRange {
  const rm = /^(\d+)\s*(?:-\s*(\d+))?$/.exec(text);
  if (!rm) throw new SourceError(`${path}: bad block range "${text}"`);
  const first = Number(rm[1]);
  const last = rm[2] !== undefined ? Number(rm[2]) : first;
  if (first > last) throw new SourceError(`${path}: bad block range "${text}" (first > last)`);
  if (last >= blocksCount) throw new SourceError(`${path}: block range "${text}" runs past the image's ${blocksCount} blocks`);
  if (first <= prevLast) throw new SourceError(`${path}: block range "${text}" overlaps or precedes the one before it`);
  const r: BmapRange = { first, last };
  if (rangeAttr) {
    const c = attr(attrs, rangeAttr);
    if (c !== undefined) {
      if (!/^[0-9a-fA-F]+$/.test(c)) throw new SourceError(`${path}: range "${text}" has a malformed checksum`);
      r.checksum = c.toLowerCase();
    }
  }
  return r;
}

/** The `<BlockMap>` ranges, with the blocks and bytes they cover. */
function parseBlockMap(
  xml: string,
  path: string,
  geometry: { blockSize: number; imageSize: number; blocksCount: number },
  rangeAttr: string | undefined,
): { ranges: BmapRange[]; mapped: number; mappedBytes: number } {
  const mapXml = tagText(xml, 'BlockMap');
  if (mapXml === undefined) throw new SourceError(`${path}: bmap lacks <BlockMap>`);
  const ranges: BmapRange[] = [];
  let mapped = 0;
  let mappedBytes = 0;
  let prevLast = -1;
  for (let from = 0; ;) {
    const open = findOpen(mapXml, 'Range', from);
    const close = open && findClose(mapXml, 'Range', open.end);
    if (!open || !close) break;
    from = close.end;
    const r = parseRange(mapXml.slice(open.end, close.start).trim(), open.attrs, path, geometry.blocksCount, prevLast, rangeAttr);
    prevLast = r.last;
    ranges.push(r);
    mapped += r.last - r.first + 1;
    const { start, end } = rangeBytes(geometry, r);
    mappedBytes += end - start;
  }
  return { ranges, mapped, mappedBytes };
}

/** Parses and checks a bmap held in memory. `path` names it in messages. */
export function parseBmap(bytes: Uint8Array, path = 'bmap'): Bmap {
  if (bytes.length > BMAP_MAX_BYTES) throw new InputLimitError(`${path}: ${bytes.length} bytes is larger than the ${formatLimit(BMAP_MAX_BYTES)} limit for a bmap file`);
  const raw = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const xml = blankComments(raw);
  const { version, major, minor, imageSize, blockSize, blocksCount, mappedBlocksCount } = parseHeader(xml, path);
  const scheme = checksumScheme(xml, path, version, major, minor);
  if (scheme) checkFileChecksum(bytes, raw, xml, path, scheme);
  const { ranges, mapped, mappedBytes } = parseBlockMap(xml, path, { blockSize, imageSize, blocksCount }, scheme?.rangeAttr);
  if (mapped !== mappedBlocksCount) {
    throw new SourceError(`${path}: inconsistent bmap: ranges cover ${mapped} blocks but MappedBlocksCount says ${mappedBlocksCount}`);
  }
  return { path, version, imageSize, blockSize, blocksCount, mappedBlocksCount, checksumType: scheme?.checksumType, ranges, mappedBytes };
}

export async function loadBmap(path: string): Promise<Bmap> {
  let bytes: Uint8Array;
  try {
    // fstat-checked and capped: an oversize file is an InputLimitError (exit 6), not an OOM.
    bytes = readFileBounded(path, BMAP_MAX_BYTES, 'bmap');
  } catch (e) {
    if (e instanceof InputLimitError) throw e;
    throw new SourceError(`cannot read bmap ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseBmap(bytes, path);
}

/**
 * The bmap bmaptool would pick for an image: IMAGE.bmap, then the name with each compression
 * suffix removed (`disk.img.xz` → `disk.img.bmap`, `disk.bmap`).
 */
export async function findBmapFor(imagePath: string): Promise<string | undefined> {
  const candidates = [`${imagePath}.bmap`];
  let base = imagePath;
  for (;;) {
    const m = /^(.*)\.[^./]+$/.exec(base);
    if (!m || m[1].endsWith('/') || m[1] === '') break;
    base = m[1];
    candidates.push(`${base}.bmap`);
  }
  for (const c of candidates) {
    try {
      if ((await stat(c)).isFile()) return c;
    } catch {
      /* not there */
    }
  }
  return undefined;
}
