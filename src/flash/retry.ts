/**
 * Error classes for device I/O during flashing and reading: what is worth retrying, what means
 * the card or reader is gone, what is final. Works across backends by looking at error classes
 * of the USB/SCSI layers and at errno codes of the OS backends.
 */
import { IoError, WriteProtectedError } from '../errors.js';
import { DeviceGoneError, UsbTransferError, BotTransportError } from '../usb/errors.js';
import { MediumChangedError, NoMediumError, NotReadyError, UnitAttentionError, AbortedCommandError, MediumError } from '../scsi/sense.js';

export type ErrorClass = 'abort' | 'write-protected' | 'gone' | 'transient' | 'fatal';

const GONE_ERRNO = new Set(['ENODEV', 'ENXIO', 'ENOMEDIUM', 'ESHUTDOWN', 'EBADF']);
const TRANSIENT_ERRNO = new Set(['EIO', 'EBUSY', 'EAGAIN', 'ETIMEDOUT', 'EINTR']);

function errnoOf(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}

export function classifyError(e: unknown): ErrorClass {
  if ((e as Error)?.name === 'AbortError') return 'abort';
  if (e instanceof WriteProtectedError) return 'write-protected';
  if (e instanceof DeviceGoneError || e instanceof NoMediumError || e instanceof MediumChangedError) return 'gone';
  if (e instanceof UsbTransferError) return e.kind === 'disconnected' ? 'gone' : e.kind === 'cancelled' ? 'abort' : 'transient';
  if (e instanceof BotTransportError) return e.recovered ? 'transient' : 'gone';
  if (e instanceof UnitAttentionError || e instanceof AbortedCommandError || e instanceof MediumError) return 'transient';
  if (e instanceof NotReadyError) return 'transient';
  const code = errnoOf(e);
  if (code && GONE_ERRNO.has(code)) return 'gone';
  if (code && TRANSIENT_ERRNO.has(code)) return 'transient';
  if (e instanceof IoError && /\bis closed\b/.test(e.message)) return 'gone';
  return 'fatal';
}

export interface RetryOptions {
  /** Extra attempts after the first. */
  retries: number;
  /** First back-off delay; doubles per attempt, capped at 5 s. */
  baseDelayMs: number;
  signal?: AbortSignal;
  onRetry?: (attempt: number, delayMs: number, err: unknown) => void;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
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
