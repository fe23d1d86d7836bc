/**
 * Reader quirks from `hw-profiles/readers/*.json`, matched by VID:PID and optionally a bcdDevice
 * range. Profiles are validated by the hand-written validator below (no schema library: the
 * format is small and a dependency would not pay for itself); every problem is reported with
 * the file and the JSON path.
 *
 * Profile format:
 * {
 *   "name": "Alcor Micro AU6387",                 // required, non-empty
 *   "match": { "vendorId": "058f", "productId": "6387",
 *              "revisionMin": "0141", "revisionMax": "0141" },   // revisions optional
 *   "quirks": { "maxSectors": 64, ... },           // keys of ReaderQuirks, nothing else
 *   "notes": "why",                               // optional
 *   "mux": "usb-sd-mux" | "sdwire"                // optional: the device is an SD mux `crashcart mux` drives
 * }
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError } from '../errors.js';
import { PROFILE_MAX_BYTES, readFileBounded } from '../input-limits.js';
import type { ReaderQuirks } from '../usb/quirk-types.js';

export type { ReaderQuirks } from '../usb/quirk-types.js';

export interface ReaderMatch {
  vendorId: number;
  productId: number;
  revisionMin?: number;
  revisionMax?: number;
}

export interface ReaderProfile {
  /** File the profile came from (for messages). */
  source: string;
  name: string;
  match: ReaderMatch;
  quirks: ReaderQuirks;
  notes?: string;
  /** The device is an SD multiplexer of this kind (`crashcart mux`). */
  mux?: ReaderMuxKind;
}

export const READER_MUX_KINDS = ['usb-sd-mux', 'sdwire'] as const;
export type ReaderMuxKind = (typeof READER_MUX_KINDS)[number];

const BOOLEAN_QUIRKS = [
  'noReadCapacity16',
  'capacityOffByOne',
  'ignoreResidue',
  'ignoreTag',
  'singleLun',
  'noWriteProtectDetect',
  'lastSectorBug',
  'senseAfterSync',
  'noSynchronizeCache',
] as const;
const ALL_QUIRKS = new Set<string>([...BOOLEAN_QUIRKS, 'maxSectors']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hex16(v: unknown, path: string, problems: string[]): number | undefined {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{4}$/.test(v)) {
    problems.push(`${path}: expected 4 hex digits as a string (e.g. "058f"), got ${JSON.stringify(v)}`);
    return undefined;
  }
  return parseInt(v, 16);
}

/** Validates one parsed profile; throws BadInputError listing every problem. */
export function validateReaderProfile(json: unknown, source: string): ReaderProfile {
  const problems: string[] = [];
  if (!isObject(json)) throw new BadInputError(`${source}: reader profile must be a JSON object`);
  for (const k of Object.keys(json)) {
    if (!['name', 'match', 'quirks', 'notes', 'mux', '$comment'].includes(k)) problems.push(`${k}: unknown property`);
  }
  if (typeof json.name !== 'string' || json.name.trim() === '') problems.push('name: required non-empty string');
  if (json.notes !== undefined && typeof json.notes !== 'string') problems.push('notes: must be a string');
  if (json.mux !== undefined && !READER_MUX_KINDS.includes(json.mux as ReaderMuxKind))
    problems.push(`mux: one of ${READER_MUX_KINDS.join(', ')} expected, got ${JSON.stringify(json.mux)}`);
  const match: ReaderMatch = { vendorId: 0, productId: 0 };
  if (!isObject(json.match)) {
    problems.push('match: required object with vendorId and productId');
  } else {
    for (const k of Object.keys(json.match)) {
      if (!['vendorId', 'productId', 'revisionMin', 'revisionMax'].includes(k)) problems.push(`match.${k}: unknown property`);
    }
    match.vendorId = hex16(json.match.vendorId, 'match.vendorId', problems) ?? 0;
    match.productId = hex16(json.match.productId, 'match.productId', problems) ?? 0;
    if (json.match.revisionMin !== undefined) match.revisionMin = hex16(json.match.revisionMin, 'match.revisionMin', problems);
    if (json.match.revisionMax !== undefined) match.revisionMax = hex16(json.match.revisionMax, 'match.revisionMax', problems);
    if (match.revisionMin !== undefined && match.revisionMax !== undefined && match.revisionMin > match.revisionMax) {
      problems.push('match: revisionMin is greater than revisionMax');
    }
  }
  const quirks: ReaderQuirks = {};
  if (!isObject(json.quirks)) {
    problems.push('quirks: required object');
  } else {
    for (const [k, v] of Object.entries(json.quirks)) {
      if (!ALL_QUIRKS.has(k)) {
        problems.push(`quirks.${k}: unknown quirk (known: ${[...ALL_QUIRKS].join(', ')})`);
      } else if (k === 'maxSectors') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) problems.push(`quirks.maxSectors: integer 1..65535 expected, got ${JSON.stringify(v)}`);
        else quirks.maxSectors = v;
      } else if (typeof v !== 'boolean') {
        problems.push(`quirks.${k}: boolean expected, got ${JSON.stringify(v)}`);
      } else {
        quirks[k as (typeof BOOLEAN_QUIRKS)[number]] = v;
      }
    }
  }
  if (problems.length) throw new BadInputError(`${source}: invalid reader profile:\n  ${problems.join('\n  ')}`);
  return {
    source,
    name: (json.name as string).trim(),
    match,
    quirks,
    ...(typeof json.notes === 'string' ? { notes: json.notes } : {}),
    ...(json.mux !== undefined ? { mux: json.mux as ReaderMuxKind } : {}),
  };
}

/** The shipped profile directory (`hw-profiles/readers` at the package root). */
export function defaultReaderProfileDir(): string {
  return fileURLToPath(new URL('../../../hw-profiles/readers/', import.meta.url));
}

/** Loads and validates every `*.json` in `dir`. Malformed files are errors, not skipped. */
export function loadReaderProfiles(dir = defaultReaderProfileDir()): ReaderProfile[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names.map((n) => {
    const p = join(dir, n);
    const text = readFileBounded(p, PROFILE_MAX_BYTES, 'reader profile').toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new BadInputError(`${p}: not valid JSON: ${(e as Error).message}`);
    }
    return validateReaderProfile(json, p);
  });
}

export function profileMatches(m: ReaderMatch, vendorId: number, productId: number, revision: number): boolean {
  return (
    m.vendorId === vendorId && m.productId === productId && (m.revisionMin === undefined || revision >= m.revisionMin) && (m.revisionMax === undefined || revision <= m.revisionMax)
  );
}

/**
 * Merged quirks of every matching profile; profiles with a revision range override the
 * VID:PID-only ones.
 */
export function quirksFor(profiles: readonly ReaderProfile[], vendorId: number, productId: number, revision: number): { quirks: ReaderQuirks; matched: ReaderProfile[] } {
  const matched = profiles
    .filter((p) => profileMatches(p.match, vendorId, productId, revision))
    .sort(
      (a, b) => Number(a.match.revisionMin !== undefined || a.match.revisionMax !== undefined) - Number(b.match.revisionMin !== undefined || b.match.revisionMax !== undefined),
    );
  const quirks: ReaderQuirks = {};
  for (const p of matched) Object.assign(quirks, p.quirks);
  return { quirks, matched };
}
