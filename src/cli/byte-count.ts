/** Byte counts on the command line: `--offset`, `--size`, `--max-transfer`. */
import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  s: 512,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1e6,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1e9,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1e12,
};

/** "4096", "0x1000", "4K", "4KiB", "8s" (512-byte sectors), "1.5G". */
export function parseByteCount(s: string, what: string): number {
  const t = s.trim();
  const hex = /^0x([0-9a-f]+)$/i.exec(t);
  let v: number;
  if (hex) v = parseInt(hex[1], 16);
  else {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(t);
    if (!m || !(m[2].toLowerCase() in UNITS)) throw new UsageError(`${what}: "${s}" is not a byte count (use e.g. 4096, 0x1000, 512K, 2MiB, 8s)`);
    v = Number(m[1]) * UNITS[m[2].toLowerCase()];
  }
  if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`${what}: "${s}" is not a whole number of bytes`);
  return v;
}

/** Limits of `--max-transfer`: one block, and what usbfs lends a single transfer by default (16 MiB). */
const MAX_TRANSFER_RANGE = [512, 16 * 1024 ** 2] as const;

/** `--max-transfer` → bytes, or undefined when not given. */
export function parseMaxTransfer(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const v = parseByteCount(s, '--max-transfer');
  if (v < MAX_TRANSFER_RANGE[0] || v > MAX_TRANSFER_RANGE[1]) throw new UsageError(`--max-transfer: ${s} is outside 512 bytes to 16 MiB`);
  return v;
}
