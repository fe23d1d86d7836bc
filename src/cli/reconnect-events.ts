/**
 * `--reconnect-timeout` and the reader-gone / reader-back events of flash and read: the option
 * checked into the device opener's reconnect setting, and the events as lines for people or as
 * fields of a `--log-format json` line.
 */
import type { ReconnectEvent } from '../blockdev/reconnect.js';
import { UsageError } from '../errors.js';
import { diag, type LogFields } from './diagnostics.js';

/** The option in milliseconds (0: do not wait). */
export function reconnectTimeoutMs(seconds: number | undefined): number {
  if (seconds === undefined) return 15_000;
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 3600) throw new UsageError('--reconnect-timeout must be from 0 to 3600 seconds');
  return Math.round(seconds * 1000);
}

/** One line for people. */
export function describeReconnectEvent(e: ReconnectEvent): string {
  if (e.type === 'reader-gone') {
    return `${e.device}: the reader went away (port ${e.port}, address ${e.address}: ${e.error}); waiting up to ${(e.timeoutMs / 1000).toFixed(1)} s for it to come back`;
  }
  const where = e.match === 'port' ? `on the same port ${e.port}` : `on another port, ${e.port} (was ${e.previousPort}), recognised by its serial`;
  return `${e.device}: the reader is back ${where} at address ${e.address} (was ${e.previousAddress}) after ${(e.afterMs / 1000).toFixed(1)} s; same card, continuing with the interrupted transfer`;
}

/** The event's fields for a `--log-format json` line. */
export function reconnectLogFields(e: ReconnectEvent): LogFields {
  const { type, device: _device, ...rest } = e;
  return { event: type, ...rest };
}

/** Logs the event on stderr (text, or a JSON line with its fields). */
export function logReconnectEvent(e: ReconnectEvent): void {
  diag(e.type === 'reader-gone' ? 'warning' : 'info', describeReconnectEvent(e), { plain: true, ...reconnectLogFields(e) });
}
