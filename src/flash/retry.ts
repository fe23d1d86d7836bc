/**
 * What to do about a device error during flashing and reading: retry it, wait for the card or
 * reader to come back, or give up. Read off the failure kind every BlockDevice backend puts on
 * its errors (DeviceFailure in ../errors.ts), never off messages or backend classes.
 */
import { deviceFailureOf, IoError, WriteProtectedError } from '../errors.js';
import { setTimeout as timeout } from 'node:timers/promises';

export type ErrorClass = 'abort' | 'write-protected' | 'gone' | 'transient' | 'fatal';

export function classifyError(e: unknown): ErrorClass {
  if ((e as Error)?.name === 'AbortError') return 'abort';
  if (e instanceof WriteProtectedError) return 'write-protected';
  switch (deviceFailureOf(e)) {
    case 'gone':
      return 'gone';
    case 'transient':
    case 'medium':
      return 'transient';
    case 'cancelled':
      return 'abort';
    default:
      return 'fatal';
  }
}

export interface RetryOptions {
  /** Extra attempts after the first. */
  retries: number;
  /** First back-off delay; doubles per attempt, capped at 5 s. */
  baseDelayMs: number;
  signal?: AbortSignal;
  onRetry?: (attempt: number, delayMs: number, err: unknown) => void;
}

/** Waits `ms`; an abort rejects with the signal's reason (as every other abort here does). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await timeout(ms, undefined, { signal });
  } catch (e) {
    throw signal?.aborted ? signal.reason : e;
  }
}

/** Thrown when transient errors persisted through every retry. */
export class RetriesExhaustedError extends IoError {
  readonly attempts: number;
  constructor(attempts: number, last: unknown) {
    super(`${(last as Error)?.message ?? String(last)} (still failing after ${attempts} attempts)`, { cause: last });
    this.attempts = attempts;
  }
}

/** Runs `op`, retrying transient failures with exponential back-off. */
export async function withRetry<T>(op: () => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (classifyError(e) !== 'transient') throw e;
      if (attempt >= o.retries) throw new RetriesExhaustedError(attempt + 1, e);
      const delay = Math.min(5000, o.baseDelayMs * 2 ** attempt);
      o.onRetry?.(attempt + 1, delay, e);
      await sleep(delay, o.signal);
    }
  }
}
