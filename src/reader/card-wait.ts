/**
 * Card detection by polling. A card going in or out of a slot is not a USB event — the reader
 * stays enumerated — so each slot is asked with TEST UNIT READY: GOOD = card present,
 * NOT READY 3Ah = empty, UNIT ATTENTION 28h (medium may have changed) is absorbed and asked
 * again. Readers are re-enumerated on every poll, so a reader that is plugged in or pulled
 * while waiting is noticed too (a pulled reader has no cards). A watched reader that leaves, and one
 * that comes back under a new address (same port path, or same serial on another port), is
 * reported (`onReader`, `readerEvents`).
 *
 * Readers being watched stay claimed between polls (the kernel driver stays detached), so
 * usb-storage does not rescan the reader after every poll; everything is handed back when the
 * wait ends, however it ends.
 *
 * The wait is for a state, not an edge: `insert` ends as soon as a matching slot holds a card
 * (at once if one already does), `remove` when no matching slot holds one. That makes it
 * race-free in scripts: `crashcart wait --insert` after the card went in still returns.
 */
import { CancelledError, WaitTimeoutError } from '../errors.js';
import type { ScsiOptions } from '../scsi/scsi-lun.js';
import { ScsiLun } from '../scsi/scsi-lun.js';
import { LunNotSupportedError, NoMediumError, NotReadyError } from '../scsi/sense.js';
import { BotDriver, type BotOptions } from '../usb/bot.js';
import { DeviceGoneError } from '../usb/errors.js';
import { assertNotMounted, slotSelector } from './open-usb.js';
import { loadReaderProfiles, quirksFor, type ReaderProfile, type ReaderQuirks } from './reader-profiles.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatUsbSelector, matchUsbSelector, type UsbSelector } from './selector.js';
import type { SysfsOptions } from './sysfs.js';
import type { ReconnectMatch } from '../blockdev/reconnect.js';
import { matchReader } from './reader-identity.js';
import { hex4, type UsbDeviceInfo, type UsbHost, type UsbTransport } from '../usb/transport.js';

export type CardEvent = 'insert' | 'remove';

export interface WatchedSlot {
  /** `usb:2-1@lun=0`. */
  selector: string;
  lun: number;
  state: 'present' | 'absent' | 'unknown';
  size?: number;
  blockSize?: number;
  writeProtected?: boolean;
  /** Why the state is unknown. */
  error?: string;
  reader: { port: string; id: string; product?: string; serial?: string };
}

/**
 * A watched reader left (no longer listed) or came back (listed again under a new address, on its
 * port or — by its serial — on another one).
 */
export type ReaderPresenceEvent =
  | { type: 'reader-gone'; time: string; port: string; address: number; id: string; serial?: string }
  | { type: 'reader-back'; time: string; port: string; address: number; id: string; serial?: string; previousPort: string; previousAddress: number; match: ReconnectMatch };

export interface WaitOptions {
  /** Which readers/slots to watch; undefined = every reader. */
  selector?: UsbSelector;
  event: CardEvent;
  /** Give up after this long (WaitTimeoutError). Undefined = wait forever; 0 = look once. */
  timeoutMs?: number;
  /** Pause between polls. Default 1000 ms. */
  intervalMs?: number;
  host?: UsbHost;
  profiles?: readonly ReaderProfile[];
  bot?: Omit<BotOptions, 'onEvent'>;
  scsi?: Omit<ScsiOptions, 'onEvent'>;
  sysfs?: SysfsOptions;
  signal?: AbortSignal;
  /** Called after every poll with the state of every watched slot. */
  onPoll?: (slots: WatchedSlot[], poll: number) => void;
  /** Called when a watched reader leaves or comes back. */
  onReader?: (e: ReaderPresenceEvent) => void;
}

export interface WaitResult {
  event: CardEvent;
  /** The state already held at the first poll. */
  already: boolean;
  elapsedMs: number;
  polls: number;
  /** insert: the slots holding a card; remove: the slots that held one during the wait and are now empty. */
  slots: WatchedSlot[];
  /** Every watched slot at the end. */
  all: WatchedSlot[];
  /** Watched readers that left or came back during the wait, in order (absent when none did). */
  readerEvents?: ReaderPresenceEvent[];
}

interface Session {
  device: UsbDeviceInfo;
  transport: UsbTransport;
  bot: BotDriver;
  quirks: ReaderQuirks;
  luns: ScsiLun[];
  /** Last known state per LUN, to read capacity only when a card appears. */
  last: Map<number, WatchedSlot>;
}

const key = (d: UsbDeviceInfo) => `${d.bus}:${d.address}:${d.portPath}`;

/** Follows the watched readers from poll to poll and reports those that leave and come back. */
class ReaderPresence {
  private last = new Map<string, UsbDeviceInfo>();
  private away: UsbDeviceInfo[] = [];
  private first = true;
  readonly events: ReaderPresenceEvent[] = [];

  constructor(private readonly onEvent?: (e: ReaderPresenceEvent) => void) {}

  private emit(e: ReaderPresenceEvent): void {
    this.events.push(e);
    this.onEvent?.(e);
  }

  /** The readers listed (and matching the selector) at this poll. */
  update(readers: readonly UsbDeviceInfo[]): void {
    const now = new Map(readers.map((d) => [key(d), d]));
    const time = new Date().toISOString();
    const who = (d: UsbDeviceInfo) => ({ port: d.portPath, address: d.address, id: `${hex4(d.vendorId)}:${hex4(d.productId)}`, ...(d.serial ? { serial: d.serial } : {}) });
    for (const [k, d] of this.last) {
      if (now.has(k)) continue;
      this.away.push(d);
      this.emit({ type: 'reader-gone', time, ...who(d) });
    }
    for (const [k, d] of now) {
      if (this.first || this.last.has(k)) continue;
      const i = this.away.findIndex((g) => matchReader(g, d) !== undefined);
      if (i < 0) continue;
      const [g] = this.away.splice(i, 1);
      this.emit({ type: 'reader-back', time, ...who(d), previousPort: g.portPath, previousAddress: g.address, match: matchReader(g, d)! });
    }
    this.last = now;
    this.first = false;
  }
}

export async function waitForCard(opts: WaitOptions): Promise<WaitResult> {
  const host = opts.host ?? new (await import('../usb/node-usb-transport.js')).NodeUsbHost();
  const profiles = opts.profiles ?? loadReaderProfiles();
  const sel: UsbSelector = opts.selector ?? { kind: 'any' };
  const interval = opts.intervalMs ?? 1000;
  const started = Date.now();
  const deadline = opts.timeoutMs === undefined ? undefined : started + opts.timeoutMs;
  const sessions = new Map<string, Session>();
  const seenPresent = new Map<string, WatchedSlot>();
  const presence = new ReaderPresence(opts.onReader);
  let polls = 0;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw new CancelledError();
      const all = await pollOnce(host, sel, sessions, profiles, opts, presence);
      polls++;
      opts.onPoll?.(all, polls);
      const present = all.filter((s) => s.state === 'present');
      for (const s of present) seenPresent.set(s.selector, s);
      const done = opts.event === 'insert' ? present.length > 0 : present.length === 0 && all.every((s) => s.state !== 'unknown');
      if (done) {
        const slots = opts.event === 'insert' ? present : [...seenPresent.values()].map((s) => ({ ...s, state: 'absent' as const }));
        return {
          event: opts.event,
          already: polls === 1,
          elapsedMs: Date.now() - started,
          polls,
          slots,
          all,
          ...(presence.events.length ? { readerEvents: presence.events } : {}),
        };
      }
      const now = Date.now();
      if (deadline !== undefined && now >= deadline) {
        const what = opts.event === 'insert' ? 'no card was inserted' : 'the card was not removed';
        const where = opts.selector ? ` in ${formatUsbSelector(opts.selector)}` : '';
        const state = all.length
          ? all.map((s) => `${s.selector} ${s.state === 'present' ? 'has a card' : s.state === 'absent' ? 'is empty' : `unknown (${s.error})`}`).join(', ')
          : 'no reader present';
        throw new WaitTimeoutError(`timed out after ${((now - started) / 1000).toFixed(1)} s: ${what}${where} (${state})`);
      }
      await abortableSleep(deadline === undefined ? interval : Math.min(interval, deadline - now), opts.signal);
    }
  } finally {
    await Promise.allSettled([...sessions.values()].map((s) => s.transport.close()));
  }
}

async function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => undefined);
  if (signal?.aborted) throw new CancelledError();
}

async function pollOnce(
  host: UsbHost,
  sel: UsbSelector,
  sessions: Map<string, Session>,
  profiles: readonly ReaderProfile[],
  opts: WaitOptions,
  presence: ReaderPresence,
): Promise<WatchedSlot[]> {
  const readers = matchUsbSelector(sel, await host.list());
  presence.update(readers);
  const wanted = new Set(readers.map(key));
  for (const [k, s] of sessions) {
    if (!wanted.has(k)) {
      sessions.delete(k);
      await s.transport.close().catch(() => undefined);
    }
  }
  const out: WatchedSlot[] = [];
  for (const d of readers) {
    let s = sessions.get(key(d));
    try {
      if (!s) {
        s = await openSession(host, d, profiles, opts);
        sessions.set(key(d), s);
      }
      for (const scsi of s.luns) {
        if (sel.lun !== undefined && scsi.lun !== sel.lun) continue;
        const slot = await pollSlot(s, scsi, opts.signal);
        if (slot) out.push(slot);
      }
    } catch (e) {
      const gone = e instanceof DeviceGoneError || s?.bot.disconnected === true;
      if (s) {
        sessions.delete(key(d));
        await s.transport.close().catch(() => undefined);
      }
      // A reader pulled in the middle of a poll has no cards; anything else ends the wait.
      if (!gone) throw e;
    }
  }
  return out;
}

async function openSession(host: UsbHost, d: UsbDeviceInfo, profiles: readonly ReaderProfile[], opts: WaitOptions): Promise<Session> {
  assertNotMounted(d, opts.sysfs);
  const quirks = quirksFor(profiles, d.vendorId, d.productId, d.revision).quirks;
  const transport = await host.open(d);
  try {
    const bot = new BotDriver(transport, { ...opts.bot, ignoreTag: quirks.ignoreTag, ignoreResidue: quirks.ignoreResidue });
    const maxLun = quirks.singleLun ? 0 : await bot.getMaxLun();
    // Polling must not sit in "becoming ready": the next poll asks again.
    const scsiOpts: ScsiOptions = { ...opts.scsi, noReadCapacity16: quirks.noReadCapacity16, becomingReadyTimeoutMs: 0 };
    const luns = Array.from({ length: maxLun + 1 }, (_, lun) => new ScsiLun(bot, lun, scsiOpts));
    return { device: d, transport, bot, quirks, luns, last: new Map() };
  } catch (e) {
    await transport.close().catch(() => undefined);
    throw e;
  }
}

/** One slot's state; undefined for a LUN the reader says does not exist. */
async function pollSlot(s: Session, scsi: ScsiLun, signal: AbortSignal | undefined): Promise<WatchedSlot | undefined> {
  const d = s.device;
  const base = {
    selector: slotSelector(d, scsi.lun),
    lun: scsi.lun,
    reader: { port: d.portPath, id: `${hex4(d.vendorId)}:${hex4(d.productId)}`, ...(d.product ? { product: d.product } : {}), ...(d.serial ? { serial: d.serial } : {}) },
  };
  let slot: WatchedSlot;
  try {
    await scsi.testUnitReady({ absorbMediumChange: true, signal });
    const prev = s.last.get(scsi.lun);
    if (prev?.state === 'present') slot = prev;
    else {
      const cap = await scsi.readCapacity({ absorbMediumChange: true, signal });
      let last = cap.lastLba;
      if (s.quirks.capacityOffByOne && last >= 0n) last -= 1n;
      if (last < 0n) slot = { ...base, state: 'absent' };
      else {
        const writeProtected = s.quirks.noWriteProtectDetect ? false : await scsi.writeProtected(signal);
        slot = { ...base, state: 'present', size: Number((last + 1n) * BigInt(cap.blockSize)), blockSize: cap.blockSize, writeProtected };
      }
    }
  } catch (e) {
    if (e instanceof DeviceGoneError || s.bot.disconnected || (e instanceof Error && e.name === 'AbortError')) throw e;
    if (e instanceof LunNotSupportedError) return undefined;
    if (e instanceof NoMediumError) slot = { ...base, state: 'absent' };
    else if (e instanceof NotReadyError) slot = { ...base, state: 'absent', error: e.message };
    else slot = { ...base, state: 'unknown', error: e instanceof Error ? e.message : String(e) };
  }
  s.last.set(scsi.lun, slot);
  return slot;
}
