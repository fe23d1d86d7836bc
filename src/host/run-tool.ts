/**
 * Running a program of the host (mkfs.vfat, mcopy, mke2fs, debugfs): found on PATH or in the
 * sbin folders Debian installs them to, run without a shell, its output collected. A missing
 * program is a ToolMissingError naming the Debian package that provides it.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ToolMissingError } from '../errors.js';

export interface HostTool {
  /** Program name, as on PATH. */
  name: string;
  /** The Debian package that installs it. */
  debianPackage: string;
}

export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Where `name` is installed: PATH, then /usr/sbin and /sbin (not on a user's PATH on Debian); undefined when nowhere. */
export function findTool(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const d of [...path.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** The path of `tool`, or a ToolMissingError that says what it is needed for. */
export function requireTool(tool: HostTool, purpose: string): string {
  const p = findTool(tool.name);
  if (!p) throw new ToolMissingError(tool.name, tool.debianPackage, purpose);
  return p;
}

/**
 * Runs `program` with `args` (no shell; stdin is empty unless `input` is given) and resolves
 * with its exit status and output, whatever the status. An aborted `signal` kills it.
 */
export function runTool(program: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; signal?: AbortSignal; cwd?: string } = {}): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.stdin.on('error', () => undefined); // a program that exits without reading its input
    child.stdin.end(opts.input ?? '');
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}
