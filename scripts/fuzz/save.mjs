// Saving failing inputs: `<target>-<seed>-<iteration>.bin` holds the bytes, `.json` the rest
// (parameters, options), enough for `npm run fuzz -- --replay FILE`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function saveInput(outDir, target, seed, iteration, { bin, meta }) {
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${target}-${seed}-${iteration}`);
  writeFileSync(`${base}.bin`, bin);
  writeFileSync(`${base}.json`, JSON.stringify({ target, seed, iteration, ...meta }, (k, v) => (typeof v === 'bigint' ? v.toString() : v), 1));
  return resolve(`${base}.bin`);
}

export function describeError(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${e.stack ?? ''}`;
  return `non-Error thrown: ${String(e)}`;
}
