/**
 * GNU ddrescue mapfiles: a status line and a list of contiguous blocks, each
 * `pos size status` with positions in the input (the card) and status
 *   `?` non-tried, `*` non-trimmed, `/` non-scraped, `-` bad sector(s), `+` finished.
 * crashcart writes the map covering the whole device (areas outside the requested range stay
 * `?`), so ddrescue itself can continue from it, and reads maps written by either tool.
 */
import { BadInputError } from '../errors.js';

export type MapStatus = '?' | '*' | '/' | '-' | '+';

export interface MapBlock {
  pos: number;
  size: number;
  status: MapStatus;
}

export interface RescueMap {
  currentPos: number;
  /** ddrescue's current phase character ('?' copying … '+' finished). */
  currentStatus: string;
  currentPass?: number;
  blocks: MapBlock[];
}

const STATUSES = new Set(['?', '*', '/', '-', '+']);

function num(s: string, what: string, line: number): number {
  const v = s.startsWith('0x') || s.startsWith('0X') ? parseInt(s.slice(2), 16) : /^0[0-7]+$/.test(s) ? parseInt(s, 8) : Number(s);
  if (!Number.isSafeInteger(v) || v < 0) throw new BadInputError(`mapfile line ${line}: bad ${what} "${s}"`);
  return v;
}

export function parseRescueMap(text: string): RescueMap {
  let status: Omit<RescueMap, 'blocks'> | undefined;
  const blocks: MapBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith('#')) continue;
    const f = line.split(/\s+/);
    if (!status) {
      if (f.length < 2) throw new BadInputError(`mapfile line ${i + 1}: bad status line "${line}"`);
      status = { currentPos: num(f[0], 'position', i + 1), currentStatus: f[1], ...(f[2] ? { currentPass: num(f[2], 'pass', i + 1) } : {}) };
      continue;
    }
    if (f.length < 3 || !STATUSES.has(f[2])) throw new BadInputError(`mapfile line ${i + 1}: bad block line "${line}"`);
    const b: MapBlock = { pos: num(f[0], 'position', i + 1), size: num(f[1], 'size', i + 1), status: f[2] as MapStatus };
    const prev = blocks[blocks.length - 1];
    if (prev && prev.pos + prev.size !== b.pos) throw new BadInputError(`mapfile line ${i + 1}: block at ${b.pos} does not follow the previous one`);
    blocks.push(b);
  }
  if (!status) throw new BadInputError('mapfile has no status line');
  return { ...status, blocks };
}

function h(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
}

export function formatRescueMap(map: RescueMap, header: string[] = []): string {
  const out = ['# Mapfile. Created by crashcart', ...header.map((l) => `# ${l}`), '# current_pos  current_status  current_pass'];
  out.push(`${h(map.currentPos)}     ${map.currentStatus}               ${map.currentPass ?? 1}`);
  out.push('#      pos        size  status');
  for (const b of map.blocks) out.push(`${h(b.pos)}  ${h(b.size)}  ${b.status}`);
  return out.join('\n') + '\n';
}

/**
 * A map as a sorted list of non-overlapping, merged blocks, with an operation to set the
 * status of a byte range.
 */
export class StatusMap {
  blocks: MapBlock[];
  constructor(size: number, blocks?: MapBlock[]) {
    this.blocks = blocks && blocks.length ? blocks.map((b) => ({ ...b })) : [{ pos: 0, size, status: '?' }];
    const last = this.blocks[this.blocks.length - 1];
    const end = last.pos + last.size;
    if (end < size) this.blocks.push({ pos: end, size: size - end, status: '?' });
  }

  get size(): number {
    const last = this.blocks[this.blocks.length - 1];
    return last.pos + last.size;
  }

  set(pos: number, size: number, status: MapStatus): void {
    if (size <= 0) return;
    const end = pos + size;
    const out: MapBlock[] = [];
    for (const b of this.blocks) {
      const bEnd = b.pos + b.size;
      if (bEnd <= pos || b.pos >= end) {
        out.push(b);
        continue;
      }
      if (b.pos < pos) out.push({ pos: b.pos, size: pos - b.pos, status: b.status });
      if (bEnd > end) out.push({ pos: end, size: bEnd - end, status: b.status });
    }
    out.push({ pos, size, status });
    out.sort((a, b) => a.pos - b.pos);
    const merged: MapBlock[] = [];
    for (const b of out) {
      const prev = merged[merged.length - 1];
      if (prev && prev.status === b.status && prev.pos + prev.size === b.pos) prev.size += b.size;
      else merged.push({ ...b });
    }
    this.blocks = merged;
  }

  /** Sub-ranges of [pos, pos+size) whose status is not finished. */
  pending(pos: number, size: number): { pos: number; size: number }[] {
    const end = pos + size;
    const out: { pos: number; size: number }[] = [];
    for (const b of this.blocks) {
      if (b.status === '+') continue;
      const s = Math.max(b.pos, pos);
      const e = Math.min(b.pos + b.size, end);
      if (s < e) out.push({ pos: s, size: e - s });
    }
    return out;
  }

  /** Bytes in [pos, pos+size) with status `status`. */
  count(pos: number, size: number, status: MapStatus): number {
    let n = 0;
    for (const b of this.blocks) {
      if (b.status !== status) continue;
      const s = Math.max(b.pos, pos);
      const e = Math.min(b.pos + b.size, pos + size);
      if (s < e) n += e - s;
    }
    return n;
  }

  ranges(status: MapStatus, pos = 0, size = this.size): { start: number; end: number }[] {
    const out: { start: number; end: number }[] = [];
    for (const b of this.blocks) {
      if (b.status !== status) continue;
      const s = Math.max(b.pos, pos);
      const e = Math.min(b.pos + b.size, pos + size);
      if (s < e) out.push({ start: s, end: e });
    }
    return out;
  }
}
