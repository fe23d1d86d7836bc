/**
 * Readers and cards coming and going: `crashcart list --watch`. Each poll takes a fresh look at every
 * reader (the same probe as `list`: the reader is claimed for the probe and handed back to its kernel
 * driver), compares it with the last look and reports the differences as events. A reader that cannot
 * be probed this time (busy with another crashcart command, no access) keeps its last known cards.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ListedReader, ListedSlot } from './reader-list.js';

export type ReaderWatchEvent =
  | { type: 'reader-added'; time: string; reader: ListedReader }
  | { type: 'reader-removed'; time: string; selector: string; port: string }
  | { type: 'card-inserted'; time: string; reader: string; slot: ListedSlot }
  | { type: 'card-removed'; time: string; reader: string; slot: ListedSlot }
  /** After the first poll: every reader and card present at the start has been reported. */
  | { type: 'synced'; time: string; readers: number; cards: number };

const cardsOf = (r: ListedReader) => r.slots.filter((s) => s.present);
/** A different card in the same slot reads as a removal and an insertion. */
const sameCard = (a: ListedSlot, b: ListedSlot) => a.size === b.size && a.blockSize === b.blockSize && a.writeProtected === b.writeProtected;

/**
 * The events that lead from `before` to `after` (readers by selector, slots by LUN), and the state to
 * compare the next poll with: a reader probed without success (`error`, no slots) keeps its slots.
 */
export function diffReaders(before: readonly ListedReader[], after: readonly ListedReader[], time: string): { events: ReaderWatchEvent[]; state: ListedReader[] } {
  const events: ReaderWatchEvent[] = [];
  const old = new Map(before.map((r) => [r.selector, r]));
  const state: ListedReader[] = [];
  for (const now of after) {
    const was = old.get(now.selector);
    old.delete(now.selector);
    const unprobed = now.error !== undefined && now.slots.length === 0;
    if (!was) {
      events.push({ type: 'reader-added', time, reader: now });
      for (const slot of cardsOf(now)) events.push({ type: 'card-inserted', time, reader: now.selector, slot });
      state.push(now);
      continue;
    }
    if (unprobed) {
      state.push({ ...now, slots: was.slots });
      continue;
    }
    for (const slot of now.slots) {
      const prev = was.slots.find((s) => s.lun === slot.lun);
      if (slot.error !== undefined && !slot.present) continue; // not readable this time: no news
      if (prev?.present && (!slot.present || !sameCard(prev, slot))) events.push({ type: 'card-removed', time, reader: now.selector, slot: prev });
      if (slot.present && (!prev?.present || !sameCard(prev, slot))) events.push({ type: 'card-inserted', time, reader: now.selector, slot });
    }
    state.push({ ...now, slots: now.slots.map((s) => (s.error !== undefined && !s.present ? (was.slots.find((p) => p.lun === s.lun) ?? s) : s)) });
  }
  for (const gone of old.values()) {
    for (const slot of cardsOf(gone)) events.push({ type: 'card-removed', time, reader: gone.selector, slot });
    events.push({ type: 'reader-removed', time, selector: gone.selector, port: gone.port });
  }
  return { events, state };
}

export interface WatchOptions {
  /** One look at every reader (collectReaders). */
  collect: () => Promise<ListedReader[]>;
  /** Pause between polls. Default 2000 ms. */
  intervalMs?: number;
  /** Ends the watch (resolves) at the next poll boundary or during the pause. */
  signal?: AbortSignal;
  onEvent: (e: ReaderWatchEvent) => void;
  /** Clock for event times (tests). */
  now?: () => Date;
}

/** Polls until `signal` aborts, reporting every change; resolves then. */
export async function watchReaders(o: WatchOptions): Promise<void> {
  const now = o.now ?? (() => new Date());
  let state: ListedReader[] = [];
  let first = true;
  while (!o.signal?.aborted) {
    const readers = await o.collect();
    if (o.signal?.aborted) break;
    const time = now().toISOString();
    const d = diffReaders(state, readers, time);
    state = d.state;
    for (const e of d.events) o.onEvent(e);
    if (first) o.onEvent({ type: 'synced', time, readers: state.length, cards: state.reduce((n, r) => n + cardsOf(r).length, 0) });
    first = false;
    await sleep(o.intervalMs ?? 2000, undefined, { signal: o.signal }).catch(() => undefined);
  }
}
