/** Loads the gzip-compressed disk-image fixtures used by the partition and blockdev tests. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { MemoryDevice, type MemoryDeviceOptions } from '../../../src/blockdev/memory-device.js';

/** Repository root, from dist/test/unit/partition/ (compiled) — four levels up. */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

export function fixtureBytes(rel: string): Uint8Array {
  return new Uint8Array(gunzipSync(readFileSync(`${REPO_ROOT}test/fixtures/${rel}`)));
}

export function fixtureDevice(rel: string, opts: MemoryDeviceOptions = {}): MemoryDevice {
  return new MemoryDevice(fixtureBytes(rel), { name: rel, ...opts });
}
