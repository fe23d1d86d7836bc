/**
 * Debian's image tools for checking what crashcart reads and writes: libsparse's simg2img and
 * img2simg (package android-sdk-libsparse-utils). Tests skip with a message when they are missing.
 */
import { spawnSync } from 'node:child_process';
import { findTool } from './disk-tools.js';

export const SIMG2IMG = findTool('simg2img');
export const IMG2SIMG = findTool('img2simg');
export const SKIP_LIBSPARSE = SIMG2IMG && IMG2SIMG ? false : 'simg2img/img2simg not installed (Debian package android-sdk-libsparse-utils); skipping the independent check';

/** Runs a tool; throws with its output when it fails. */
export function runTool(tool: string, args: string[]): string {
  const r = spawnSync(tool, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

/** `simg2img SPARSE RAW`. */
export const simg2img = (sparse: string, raw: string) => runTool(SIMG2IMG!, [sparse, raw]);
/** `img2simg RAW SPARSE [BLOCK_SIZE]`. */
export const img2simg = (raw: string, sparse: string, blockSize?: number) => runTool(IMG2SIMG!, [raw, sparse, ...(blockSize ? [String(blockSize)] : [])]);
