// Saving failing inputs: `<target>-<seed>-<iteration>.bin` holds the bytes, `.json` the rest
// (parameters, options), enough for `npm run fuzz -- --replay FILE`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function saveInput(outDir, target, seed, iteration, { bin, meta }) {
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${target}-${seed}-${iteration}`);
  writeFileSync(`${base}.bin`, bin);
  writeFileSync(
    `${base}.json`,
    JSON.stringify({ target, seed, iteration, ...meta }, (k, v) => (typeof v === 'bigint' ? v.toString() : v), 1),
  );
  return resolve(`${base}.bin`);
}

export function describeError(e) {
  if (e instanceof Error) return e.stack?.startsWith(`${e.name}`) ? e.stack : `${e.name}: ${e.message}\n${e.stack ?? ''}`;
  return `non-Error thrown: ${String(e)}`;
}

/** A short printable view of a saved input: text as text, binary as hex (first bytes). */
export function preview({ bin, meta }) {
  const b = Buffer.from(bin);
  const printable = b.subarray(0, 400).every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127));
  const body = printable ? JSON.stringify(b.subarray(0, 400).toString('latin1')) : b.subarray(0, 64).toString('hex').replace(/(..)/g, '$1 ').trim();
  const m = JSON.stringify(meta, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
  return `input: ${b.length} bytes${b.length > (printable ? 400 : 64) ? ' (start)' : ''}: ${body}\noptions: ${m.length > 400 ? m.slice(0, 400) + '…' : m}`;
}
