/**
 * Feedback for long waits, on a terminal only (never in --json output or pipes): an ora
 * spinner for phases of unknown length, a cli-progress bar for byte counts.
 */
// ora and cli-progress are loaded only when a terminal will show them: start-up stays short
// for scripts and CI, where every command runs without them.

import type cliProgressLib from 'cli-progress';
import { jsonLogs } from './diagnostics.js';

const interactive = () => process.stderr.isTTY === true && !process.env.CI && !jsonLogs();

/** The cli-progress module, loaded only when a terminal will show its bars; undefined otherwise. */
export type ProgressBars = typeof cliProgressLib;
export async function loadProgressBars(quiet: boolean): Promise<ProgressBars | undefined> {
  if (quiet || jsonLogs() || process.stderr.isTTY !== true || process.env.TERM === 'dumb') return undefined;
  return (await import('cli-progress')).default;
}

/**
 * process.stderr as ora sees it, where a terminal that reports no width (a pseudo-terminal whose
 * size nobody set: 0 columns) counts as 80 columns, as one without the field does. ora divides
 * by the width to count the lines it clears, and with 0 it wrote cursor-up sequences without end.
 */
function spinnerStream(): NodeJS.WriteStream {
  return new Proxy(process.stderr, {
    get(target, key) {
      if (key === 'columns') return target.columns || 80;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export interface Spinner {
  text: string;
  stop(): void;
  fail(): void;
}

/** A started ora spinner on a terminal, undefined otherwise (for a phase of unknown length). */
export async function startSpinner(text: string, quiet: boolean): Promise<Spinner | undefined> {
  if (quiet || jsonLogs() || process.stderr.isTTY !== true) return undefined;
  const { default: ora } = await import('ora');
  return ora({ text, stream: spinnerStream() }).start();
}

export async function withSpinner<T>(text: string, quiet: boolean, fn: () => Promise<T>): Promise<T> {
  if (quiet || !interactive()) return fn();
  const { default: ora } = await import('ora');
  const spinner = ora({ text, stream: spinnerStream() }).start();
  try {
    const r = await fn();
    spinner.stop();
    return r;
  } catch (e) {
    spinner.fail();
    throw e;
  }
}

export interface ByteProgress {
  update(done: number): void;
  stop(): void;
}

export async function byteProgress(label: string, total: number, quiet: boolean): Promise<ByteProgress> {
  if (quiet || !interactive()) return { update: () => {}, stop: () => {} };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% {value_mib}/{total_mib} MiB {speed} MiB/s ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const start = Date.now();
  const mib = (n: number) => (n / 1048576).toFixed(1);
  bar.start(total, 0, { value_mib: mib(0), total_mib: mib(total), speed: '0.0' });
  return {
    update(done) {
      const s = (Date.now() - start) / 1000;
      bar.update(done, { value_mib: mib(done), total_mib: mib(total), speed: s > 0 ? mib(done / s) : '0.0' });
    },
    stop: () => bar.stop(),
  };
}
