import type { ListArgs } from '../args/list.js';
import { formatBytes } from '../../util/format-bytes.js';
import { UsageError } from '../../errors.js';
import { collectReaders, type ListedReader, type ListedSlot } from '../../reader/reader-list.js';
import { watchReaders, type ReaderWatchEvent } from '../../reader/reader-watch.js';
import { beginOperation } from '../cancellation.js';

export { collectReaders, type ListDeps, type ListedReader, type ListedSlot } from '../../reader/reader-list.js';

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}

/** lsblk-style text: one line per reader, one per slot under it. */
export function formatReaders(readers: readonly ListedReader[]): string {
  if (readers.length === 0) return 'no USB mass-storage readers found\n';
  const rows: string[][] = [['DEVICE', 'SIZE', 'WP', 'CARD', 'MODEL', 'SERIAL', 'ID', 'KERNEL']];
  const notes: string[] = [];
  for (const r of readers) {
    const model = [r.manufacturer, r.product].filter(Boolean).join(' ');
    rows.push([r.selector, '', '', '', `${model} (rev ${r.revision}${r.speed ? `, ${r.speed} speed` : ''})`, r.serial ?? '', r.id, r.driver ?? '']);
    if (r.error) notes.push(`${r.selector}: ${r.error}`);
    r.slots.forEach((s, i) => {
      const branch = i === r.slots.length - 1 ? '└─' : '├─';
      const model = [s.vendor, s.product, s.revision].filter(Boolean).join(' ');
      rows.push([
        `${branch}${s.selector}`,
        s.present && s.size !== undefined ? formatBytes(s.size) : '',
        s.present ? (s.writeProtected ? 'yes' : 'no') : '',
        s.present ? 'yes' : s.error ? '?' : 'no',
        model,
        '',
        '',
        s.kernelDevice ?? '',
      ]);
      if (s.error) notes.push(`${s.selector}: ${s.error}`);
    });
  }
  return [...table(rows), ...notes.map((n) => `note: ${n}`)].join('\n') + '\n';
}

/** One line per watch event for people. */
export function formatWatchEvent(e: ReaderWatchEvent): string {
  const card = (s: ListedSlot) => `${s.selector} (${s.size !== undefined ? formatBytes(s.size) : '?'}${s.writeProtected ? ', write-protected' : ''})`;
  switch (e.type) {
    case 'reader-added':
      return `${e.time} + reader ${e.reader.selector} ${[e.reader.manufacturer, e.reader.product].filter(Boolean).join(' ')} ${e.reader.id}${e.reader.error ? ` (${e.reader.error})` : ''}`;
    case 'reader-removed':
      return `${e.time} - reader ${e.selector}`;
    case 'card-inserted':
      return `${e.time} + card ${card(e.slot)}`;
    case 'card-removed':
      return `${e.time} - card ${e.slot.selector}`;
    case 'synced':
      return `${e.time} watching ${e.readers} reader(s), ${e.cards} card(s)`;
  }
}

/** --watch: events until SIGINT/SIGTERM/SIGHUP, then an `end` event; a clean end (exit 0). */
async function runWatch(a: ListArgs): Promise<void> {
  if (a.interval !== undefined && !(Number.isFinite(a.interval) && a.interval >= 0.1 && a.interval <= 3600)) throw new UsageError('--interval must be from 0.1 to 3600 seconds');
  const print = (obj: ReaderWatchEvent | { type: 'end'; time: string; reason: string }) =>
    process.stdout.write((a.json ? JSON.stringify(obj) : obj.type === 'end' ? `${obj.time} end (${obj.reason})` : formatWatchEvent(obj)) + '\n');
  const op = beginOperation();
  op.saved(); // nothing to save: a second signal may quit at once
  try {
    await watchReaders({ collect: () => collectReaders(), intervalMs: Math.round((a.interval ?? 2) * 1000), signal: op.signal, onEvent: print });
    print({ type: 'end', time: new Date().toISOString(), reason: op.stoppedBy ?? 'done' });
  } finally {
    op.end();
  }
}

export async function runList(a: ListArgs): Promise<void> {
  if (a.watch) return runWatch(a);
  if (a.interval !== undefined) throw new UsageError('--interval needs --watch');
  const readers = await collectReaders();
  if (a.json) process.stdout.write(JSON.stringify({ readers }, null, 2) + '\n');
  else process.stdout.write(formatReaders(readers));
}
