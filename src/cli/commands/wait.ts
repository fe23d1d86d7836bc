import type { WaitArgs } from '../args/wait.js';
import { formatBytes } from '../../util/format-bytes.js';
import { UsageError } from '../../errors.js';
import { diag } from '../diagnostics.js';
import { waitForCard, type ReaderPresenceEvent, type WaitOptions, type WaitResult, type WatchedSlot } from '../../reader/card-wait.js';
import { formatUsbSelector, isUsbSelector, parseUsbSelector } from '../../reader/selector.js';

function describeSlot(s: WatchedSlot): string {
  if (s.state !== 'present') return s.selector;
  return `${s.selector} (${formatBytes(s.size ?? 0)}${s.writeProtected ? ', write-protected' : ''})`;
}

export function formatWaitResult(r: WaitResult): string {
  const after = r.already ? 'already' : `after ${(r.elapsedMs / 1000).toFixed(1)} s`;
  if (r.event === 'insert') return `card present: ${r.slots.map(describeSlot).join(', ')} (${after})\n`;
  if (r.slots.length === 0) return `no card present (${after})\n`;
  return `card removed: ${r.slots.map((s) => s.selector).join(', ')} (${after})\n`;
}

/** A watched reader leaving or coming back, as a line for people. */
export function describeReaderEvent(e: ReaderPresenceEvent): string {
  const reader = `reader usb:${e.port} (${e.id}${e.serial ? `, serial ${e.serial}` : ''})`;
  if (e.type === 'reader-gone') return `${reader} left (it was at address ${e.address})`;
  const where = e.match === 'port' ? 'on the same port' : `on another port (it was on ${e.previousPort})`;
  return `${reader} is back ${where} at address ${e.address} (was ${e.previousAddress})`;
}

/** Parses and checks the arguments into waitForCard options (everything but the host). */
export function waitOptionsFrom(a: WaitArgs): WaitOptions {
  if (a.insert && a.remove) throw new UsageError('--insert and --remove exclude each other');
  if (a.selector !== undefined && !isUsbSelector(a.selector))
    throw new UsageError(`wait: ${JSON.stringify(a.selector)} is not a USB selector (usb, usb:PORT, usb:VID:PID, usb:serial=…, optionally @lun=N)`);
  if (a.timeout !== undefined && !(Number.isFinite(a.timeout) && a.timeout >= 0)) throw new UsageError('--timeout must be a number of seconds ≥ 0');
  // Node timers hold at most 2^31-1 ms (~24.8 days); a longer sleep would fire at once and poll in a busy loop.
  if (a.interval !== undefined && !(Number.isFinite(a.interval) && a.interval >= 0.05 && a.interval <= 3600)) throw new UsageError('--interval must be from 0.05 to 3600 seconds');
  const sel = a.selector === undefined ? undefined : parseUsbSelector(a.selector);
  return {
    selector: sel && (sel.kind !== 'any' || sel.lun !== undefined) ? sel : undefined,
    event: a.remove ? 'remove' : 'insert',
    timeoutMs: a.timeout === undefined ? undefined : Math.round(a.timeout * 1000),
    intervalMs: a.interval === undefined ? 1000 : Math.round(a.interval * 1000),
  };
}

export async function runWait(a: WaitArgs): Promise<void> {
  const opts = waitOptionsFrom(a);
  const where = opts.selector ? formatUsbSelector(opts.selector) : 'any reader';
  diag(
    'info',
    `waiting until ${opts.event === 'insert' ? 'a card is present' : 'no card is present'} in ${where}` +
      `${opts.timeoutMs === undefined ? '' : ` (timeout ${opts.timeoutMs / 1000} s)`}`,
  );
  const r = await waitForCard({
    ...opts,
    onReader: (e) => {
      const { type, time: _time, ...fields } = e;
      diag(type === 'reader-gone' ? 'warning' : 'info', describeReaderEvent(e), { event: type, ...fields });
    },
  });
  if (a.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else process.stdout.write(formatWaitResult(r));
}
