/**
 * GUIDs as stored on disk (mixed-endian: the first three fields little-endian) and as
 * printed by sfdisk/sgdisk (uppercase, 8-4-4-4-12). Compare with `guidEquals`, which ignores case.
 */

const HEX = (b: number) => b.toString(16).padStart(2, '0');

export function formatGuid(bytes: Uint8Array, offset = 0): string {
  const b = bytes.subarray(offset, offset + 16);
  const p1 = [3, 2, 1, 0].map((i) => HEX(b[i])).join('');
  const p2 = [5, 4].map((i) => HEX(b[i])).join('');
  const p3 = [7, 6].map((i) => HEX(b[i])).join('');
  const p4 = [8, 9].map((i) => HEX(b[i])).join('');
  const p5 = [10, 11, 12, 13, 14, 15].map((i) => HEX(b[i])).join('');
  return `${p1}-${p2}-${p3}-${p4}-${p5}`.toUpperCase();
}

export const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(s: string): boolean {
  return GUID_RE.test(s);
}

export function guidEquals(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** True for the all-zero GUID (an unused GPT entry). */
export function isZeroGuid(bytes: Uint8Array, offset = 0): boolean {
  for (let i = 0; i < 16; i++) if (bytes[offset + i] !== 0) return false;
  return true;
}
