// A programmable USB card reader on the real wire: runs inside the test VM (host_run node
// dist/test/vm/ffs-reader.js FFS_DIR SCENARIO.json), serves a USB mass-storage interface through
// FunctionFS (usb_f_fs on dummy_hcd), so every byte crosses the kernel's USB stack, usbfs and the
// `usb` package. The device logic is the simulated reader of the unit tests (test/sim): its BOT
// target, SCSI answers and fault injection, and the USB-SD-Mux emulation. This file only moves
// bytes between the FunctionFS endpoint files and that target, and halts endpoints where the
// target stalls them.
//
// Scenario file (JSON):
//   { "luns": ["/tmp/card.img" | null, ...],      backing files (read at start, written back on
//                                                  SIGTERM/SIGUSR1 and when the program ends)
//     "reader": { SimReaderOptions: capacityReportsCount, noModeSense, maxLunStalls, ... },
//     "faults": [ Fault, ... ],                    injected in order (opcode, times, ...), armed
//                                                  again at every Get Max LUN (a new host driver)
//     "mux": "classic" | "fast" | "sdwire",         emulate a USB-SD-Mux (card = luns[0]), or an
//                                                  SDWire: one device with the FTDI FT200XD's vendor
//                                                  interface (0, two bulk endpoints never used) and the
//                                                  reader (1), the card present while CBUS0 is high
//     "controlLog": "/tmp/ftdi.log",                SDWire: every vendor request appended as a JSON line
//                                                  {bmRequestType, bRequest, wValue, wIndex, wLength, data}
//     "events": [ { "action": "swap" | "wp-on" | "wp-off", "afterBytes"?: n, "card"?: path,
//                   "storm"?: n }, ... ] }         each SIGUSR2 arms the next one (prints "armed N"):
//                                                  without afterBytes it happens at once, else after
//                                                  that many READ/WRITE data bytes (prints "fired N");
//                                                  swap: LUN 0 gets `card` (06/28, `storm` × 02/3A,
//                                                  06/28), wp-on/off: the card's lock switch
// An SDWire is a hub with the FTDI and the reader on two ports; dummy_hcd has no hub, so the
// emulator is one composite device. FunctionFS hands a function the vendor requests addressed to
// the device (not to one of its interfaces) only with FUNCTIONFS_ALL_CTRL_RECIP in the
// descriptors' flags (f_fs.c, ffs_func_req_match); the FTDI's requests are such requests.
// Logs every Bulk-Only Mass Storage Reset and port reset ("reset: …") on stderr, and babble (a
// data-IN longer than the CBW asked: the CSW is held until the host resets the reader or 3 s pass).
// Prints "ready" once the descriptors are written (the VM script then binds the UDC), and "saved"
// each time SIGUSR1 has written the cards back.
import { openSync, readFileSync, read as readCb, write as writeCb, writeFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { MemoryCard, SimReader, type Fault, type SimReaderOptions } from '../sim/sim-reader.js';
import { SimUsbSdMux } from '../sim/sim-usb-sd-mux.js';
import { SimSdWire, type SimFtdiCbus } from '../sim/sim-sdwire.js';
import { appendFileSync } from 'node:fs';
import { UsbTransferError } from '../../src/usb/errors.js';

const fsRead = promisify(readCb);
const fsWrite = promisify(writeCb);

interface ScenarioEvent {
  action: 'swap' | 'wp-on' | 'wp-off';
  afterBytes?: number;
  card?: string;
  storm?: number;
}

interface Scenario {
  luns: (string | null)[];
  reader?: SimReaderOptions;
  faults?: Fault[];
  mux?: 'classic' | 'fast' | 'sdwire';
  controlLog?: string;
  events?: ScenarioEvent[];
}

const DATA_OPCODES = new Set([0x28, 0x2a, 0x88, 0x8a]);

// ---- FunctionFS descriptors --------------------------------------------------------------------
const FUNCTIONFS_DESCRIPTORS_MAGIC_V2 = 3;
const FUNCTIONFS_STRINGS_MAGIC = 2;
const HAS_FS_DESC = 1;
const HAS_HS_DESC = 2;
const ALL_CTRL_RECIP = 64;

function interfaceDescriptor(number = 0): number[] {
  return [9, 4, number, 0, 2, 0x08, 0x06, 0x50, 1];
}
/** The FT200XD's one interface: vendor class, bulk IN and OUT. */
function ftdiInterfaceDescriptor(): number[] {
  return [9, 4, 0, 0, 2, 0xff, 0xff, 0xff, 0];
}
function endpoint(address: number, maxPacket: number): number[] {
  return [7, 5, address, 2, maxPacket & 0xff, maxPacket >> 8, 0];
}

function descriptors(sdwire: boolean): Buffer {
  const ftdi = (mp: number) => (sdwire ? [...ftdiInterfaceDescriptor(), ...endpoint(0x81, mp), ...endpoint(0x02, mp)] : []);
  const msc = (mp: number) =>
    sdwire ? [...interfaceDescriptor(1), ...endpoint(0x83, mp), ...endpoint(0x04, mp)] : [...interfaceDescriptor(), ...endpoint(0x81, mp), ...endpoint(0x02, mp)];
  const fs = [...ftdi(64), ...msc(64)];
  const hs = [...ftdi(512), ...msc(512)];
  const body = Buffer.from([...fs, ...hs]);
  const count = sdwire ? 6 : 3;
  const head = Buffer.alloc(20);
  head.writeUInt32LE(FUNCTIONFS_DESCRIPTORS_MAGIC_V2, 0);
  head.writeUInt32LE(20 + body.length, 4);
  head.writeUInt32LE(HAS_FS_DESC | HAS_HS_DESC | (sdwire ? ALL_CTRL_RECIP : 0), 8);
  head.writeUInt32LE(count, 12);
  head.writeUInt32LE(count, 16);
  return Buffer.concat([head, body]);
}

function strings(): Buffer {
  const s = Buffer.from('crashcart programmable reader\0', 'ascii');
  const head = Buffer.alloc(16);
  head.writeUInt32LE(FUNCTIONFS_STRINGS_MAGIC, 0);
  head.writeUInt32LE(16 + 2 + s.length, 4);
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(1, 12);
  const lang = Buffer.alloc(2);
  lang.writeUInt16LE(0x0409, 0);
  return Buffer.concat([head, lang, s]);
}

// ---- event types of ep0 (struct usb_functionfs_event, 12 bytes) ---------------------------------
const EVENT_SIZE = 12;
const EV = { BIND: 0, UNBIND: 1, ENABLE: 2, DISABLE: 3, SETUP: 4 } as const;
const GET_MAX_LUN = 0xfe;
const BOMS_RESET = 0xff;

const log = (m: string) => process.stderr.write(`ffs-reader: ${m}\n`);

async function main(dir: string, scenarioPath: string): Promise<void> {
  const sc = JSON.parse(readFileSync(scenarioPath, 'utf8')) as Scenario;
  const cards = sc.luns.map((p) => {
    if (!p) return null;
    const data = new Uint8Array(readFileSync(p));
    return new MemoryCard(data.length / 512, 512, { data });
  });
  const eventCards = new Map<string, MemoryCard>();
  for (const e of sc.events ?? []) {
    if (e.card && !eventCards.has(e.card)) {
      const data = new Uint8Array(readFileSync(e.card));
      eventCards.set(e.card, new MemoryCard(data.length / 512, 512, { data }));
    }
  }
  const save = () => {
    sc.luns.forEach((p, i) => p && cards[i] && writeFileSync(p, cards[i]!.data));
    for (const [p, c] of eventCards) writeFileSync(p, c.data);
  };
  // scenario events: armed one by one with SIGUSR2, fired at once or after some READ/WRITE data
  let nextEvent = 0;
  let armed: { n: number; e: ScenarioEvent; bytes: number } | undefined;
  const fire = (n: number, e: ScenarioEvent) => {
    armed = undefined;
    if (e.action === 'swap') sim.swapCard(0, e.card ? eventCards.get(e.card)! : null, e.storm ?? 3);
    else {
      const card = sim.luns[0].card ?? sim.luns[0].swapping?.card;
      if (card) card.writeProtected = e.action === 'wp-on';
    }
    log(`event ${n} (${e.action}) fired`);
    process.stdout.write(`fired ${n}\n`);
  };
  const onCbw = (cbw: { cdb: Uint8Array; dataTransferLength: number }) => {
    if (!armed || !DATA_OPCODES.has(cbw.cdb[0])) return;
    armed.bytes += cbw.dataTransferLength;
    if (armed.bytes >= (armed.e.afterBytes ?? 0)) fire(armed.n, armed.e);
  };
  process.on('SIGUSR2', () => {
    const e = sc.events?.[nextEvent];
    if (!e) return log('SIGUSR2: no event left');
    const n = ++nextEvent;
    process.stdout.write(`armed ${n}\n`);
    if (e.afterBytes === undefined) fire(n, e);
    else armed = { n, e, bytes: 0 };
  });
  let sim: SimReader;
  let ftdi: SimFtdiCbus | undefined;
  if (sc.mux === 'sdwire') {
    const w = new SimSdWire({ reader: sc.reader, card: cards[0] ?? undefined });
    sim = w.reader;
    ftdi = w.ftdi;
  } else if (sc.mux) {
    const mux = new SimUsbSdMux(sc.mux, { ...sc.reader, card: cards[0] ?? undefined });
    sim = mux.reader;
  } else {
    sim = new SimReader({ ...sc.reader, luns: cards, realTime: true, onCbw });
  }
  const armFaults = () => {
    sim.faults.length = 0;
    if (sc.faults) sim.inject(...sc.faults.map((f) => ({ ...f })));
  };
  armFaults();

  const ep0 = openSync(`${dir}/ep0`, 'r+');
  writeSync0(ep0, descriptors(ftdi !== undefined));
  writeSync0(ep0, strings());
  process.on('SIGUSR1', () => {
    save();
    process.stdout.write('saved\n');
  });
  process.on('SIGTERM', () => {
    save();
    // not process.exit(): it joins the libuv threadpool, whose threads sit in reads of the endpoint files
    process.kill(process.pid, 'SIGKILL');
  });
  process.stdout.write('ready\n');

  let epIn = -1;
  let epOut = -1;
  let enabledOnce = false;
  let generation = 0;
  const ev = Buffer.alloc(EVENT_SIZE * 4);
  for (;;) {
    const { bytesRead } = await fsRead(ep0, ev, 0, ev.length, null);
    for (let at = 0; at + EVENT_SIZE <= bytesRead; at += EVENT_SIZE) {
      const type = ev[at + 8];
      if (type === EV.ENABLE) {
        if (epIn < 0) {
          // the reader's endpoint files: after the FTDI's two on an SDWire
          epIn = openSync(`${dir}/ep${ftdi ? 3 : 1}`, 'r+');
          epOut = openSync(`${dir}/ep${ftdi ? 4 : 2}`, 'r+');
        }
        if (enabledOnce) {
          log('reset: port reset (endpoints enabled again)');
          await sim.resetPort({ timeoutMs: 1000 });
        }
        enabledOnce = true;
        const g = ++generation;
        void bulkLoop(sim, epIn, epOut, () => g === generation).catch((e) => log(`bulk loop ended: ${(e as Error).message}`));
      } else if (type === EV.DISABLE || type === EV.UNBIND) {
        generation++;
      } else if (type === EV.SETUP) {
        // Get Max LUN opens each host driver's session (the kernel's usb-storage probe, crashcart's
        // open): the scenario's faults are armed afresh, so each driver meets them all
        if (ev[at + 1] === GET_MAX_LUN) armFaults();
        if (ev[at + 1] === BOMS_RESET) log('reset: Bulk-Only Mass Storage Reset');
        if (ftdi && (ev[at] & 0x60) === 0x40) await vendorSetup(ftdi, ep0, ev.subarray(at, at + 8), sc.controlLog);
        else await setup(sim, ep0, ev.subarray(at, at + 8));
      }
    }
  }
}

/** Descriptors and strings go to ep0 in one write each. */
function writeSync0(fd: number, b: Buffer): void {
  const n = writeSync(fd, b);
  if (n !== b.length) throw new Error(`short write to ep0: ${n} of ${b.length}`);
}

/** A class request to the interface: Get Max LUN and Bulk-Only Mass Storage Reset. */
async function setup(sim: SimReader, ep0: number, s: Buffer): Promise<void> {
  const requestType = s[0];
  const request = s[1];
  const index = s.readUInt16LE(4);
  const length = s.readUInt16LE(6);
  const dirIn = (requestType & 0x80) !== 0;
  const ctl = { requestType: 'class' as const, recipient: 'interface' as const, request, value: s.readUInt16LE(2), index };
  try {
    if ((requestType & 0x60) !== 0x20) throw new UsbTransferError('stall', 'not a class request');
    if (dirIn) {
      const data = await sim.controlIn(ctl, length, { timeoutMs: 1000 });
      await fsWrite(ep0, Buffer.from(data), 0, data.length, null);
    } else {
      await sim.controlOut(ctl, undefined, { timeoutMs: 1000 });
      await fsRead(ep0, Buffer.alloc(0), 0, 0, null);
    }
  } catch (e) {
    if (!(e instanceof UsbTransferError)) throw e;
    if (e.kind === 'timeout') return; // the device does not answer: the host times out
    // STALL the control request: I/O in the wrong direction on ep0 halts it.
    try {
      if (dirIn) await fsRead(ep0, Buffer.alloc(1), 0, 1, null);
      else await fsWrite(ep0, Buffer.alloc(1), 0, 1, null);
    } catch {
      // EL2HLT / EBADMSG: the request is stalled
    }
  }
}

/** A vendor request to the FTDI chip: logged, answered (IN), acknowledged (OUT) or stalled. */
async function vendorSetup(ftdi: SimFtdiCbus, ep0: number, s: Buffer, logFile: string | undefined): Promise<void> {
  const [requestType, request] = [s[0], s[1]];
  const [value, index, length] = [s.readUInt16LE(2), s.readUInt16LE(4), s.readUInt16LE(6)];
  const dirIn = (requestType & 0x80) !== 0;
  let data: Uint8Array | undefined;
  if (!dirIn && length > 0) {
    const b = Buffer.alloc(length);
    const { bytesRead } = await fsRead(ep0, b, 0, length, null);
    data = b.subarray(0, bytesRead);
  }
  try {
    const reply = ftdi.request(requestType, request, value, index, length, data);
    if (dirIn) await fsWrite(ep0, Buffer.from(reply ?? new Uint8Array(0)), 0, reply?.length ?? 0, null);
    else if (length === 0) await fsRead(ep0, Buffer.alloc(0), 0, 0, null);
  } catch (e) {
    if (!(e instanceof UsbTransferError)) throw e;
    try {
      if (dirIn) await fsRead(ep0, Buffer.alloc(1), 0, 1, null);
      else await fsWrite(ep0, Buffer.alloc(1), 0, 1, null);
    } catch {
      // stalled
    }
  } finally {
    if (logFile) appendFileSync(logFile, JSON.stringify(ftdi.log[ftdi.log.length - 1]) + '\n');
  }
}

/** Halts a bulk endpoint: FunctionFS halts an endpoint on I/O in the wrong direction. */
async function halt(fd: number, direction: 'in' | 'out'): Promise<void> {
  try {
    if (direction === 'in') await fsRead(fd, Buffer.alloc(1), 0, 1, null);
    else await fsWrite(fd, Buffer.alloc(1), 0, 1, null);
  } catch {
    // EBADMSG: halted
  }
}

/**
 * CBW in, then whatever the target does next: receive data-OUT, send data-IN, halt, send the CSW.
 * A target that hangs (timeout fault) sends nothing until the host resets it.
 */
async function bulkLoop(sim: SimReader, epIn: number, epOut: number, current: () => boolean): Promise<void> {
  const cbwBuf = Buffer.alloc(512);
  while (current()) {
    const { bytesRead } = await fsRead(epOut, cbwBuf, 0, cbwBuf.length, null);
    if (!current()) return;
    // dCBWDataTransferLength, and the data-IN bytes sent for it (more is babble)
    const asked = bytesRead === 31 ? cbwBuf.readUInt32LE(8) : 0;
    let sentIn = 0;
    try {
      await sim.bulkOut(new Uint8Array(cbwBuf.subarray(0, bytesRead)), { timeoutMs: 1000 });
    } catch (e) {
      if (!(await onTargetError(e, sim, epIn, epOut))) continue;
    }
    let st = sim.wireState();
    if (st.haltOut) {
      await halt(epOut, 'out');
      await sim.clearHalt('out', { timeoutMs: 1000 });
    }
    while (st.phase === 'data-out' && st.outRemaining > 0 && current()) {
      const buf = Buffer.alloc(Math.min(st.outRemaining, 1 << 20));
      const r = await fsRead(epOut, buf, 0, buf.length, null);
      try {
        await sim.bulkOut(new Uint8Array(buf.subarray(0, r.bytesRead)), { timeoutMs: 1000 });
      } catch (e) {
        if (!(await onTargetError(e, sim, epIn, epOut))) break;
      }
      st = sim.wireState();
    }
    // data-IN, then the CSW (the same call: the target says which it is by its phase)
    for (let guard = 0; guard < 100000 && current(); guard++) {
      st = sim.wireState();
      if (st.phase === 'cbw') break;
      let chunk: Uint8Array;
      try {
        chunk = await sim.bulkIn(1 << 20, { timeoutMs: 1000 });
      } catch (e) {
        if (await onTargetError(e, sim, epIn, epOut)) continue;
        break;
      }
      if (chunk.length) {
        if (st.phase === 'csw' && sentIn > asked && (await resetWithin(sim, BABBLE_CSW_HOLD_MS))) {
          log('babble: the host reset the reader, its CSW is dropped');
          continue;
        }
        // babble: data-IN beyond dCBWDataTransferLength, the CSW still to come (data with the CSW in
        // one chunk, for a host that reads both at once, leaves the target waiting for a CBW)
        const babble = st.phase === 'data-in' && sim.wireState().phase === 'csw' && sentIn + chunk.length > asked;
        const { bytesWritten } = await fsWrite(epIn, Buffer.from(chunk), 0, chunk.length, null);
        if (st.phase === 'data-in') sentIn += chunk.length;
        if (babble) log(`babble: ${sentIn} bytes sent for a CBW of ${asked}, the host took ${bytesWritten} of the last ${chunk.length}`);
      } else if (st.phase === 'csw') {
        // an empty CSW: a zero-length packet
        await fsWrite(epIn, Buffer.alloc(0), 0, 0, null);
      }
    }
  }
}

/**
 * After babble a host that read the surplus as its CSW (the kernel: its 13-byte CSW transfer gets
 * -EOVERFLOW) resets the reader, and a reader drops the CSW it still holds; one that read the
 * surplus with its data (crashcart: data and CSW in one transfer) reads the CSW next. A write on
 * FunctionFS cannot be taken back once queued, so the CSW waits this long for a reset first.
 */
const BABBLE_CSW_HOLD_MS = 3000;

async function resetWithin(sim: SimReader, ms: number): Promise<boolean> {
  const resets = () => sim.stats.bomsResets + sim.stats.portResets;
  const before = resets();
  for (let waited = 0; waited < ms && resets() === before; waited += 50) await new Promise((r) => setTimeout(r, 50));
  return resets() !== before;
}

/**
 * What the target's error means on the wire. A STALL halts the endpoint (the host clears it on the
 * bus; the target is told at once so its next answer is queued behind the halt); a hang sends
 * nothing; a vanished device ends the program. Returns true when the exchange goes on.
 */
async function onTargetError(e: unknown, sim: SimReader, epIn: number, epOut: number): Promise<boolean> {
  if (!(e instanceof UsbTransferError)) throw e;
  if (e.kind === 'stall') {
    const st = sim.wireState();
    if (st.haltIn) {
      await halt(epIn, 'in');
      await sim.clearHalt('in', { timeoutMs: 1000 });
    }
    if (st.haltOut) {
      await halt(epOut, 'out');
      await sim.clearHalt('out', { timeoutMs: 1000 });
    }
    return true;
  }
  if (e.kind === 'timeout') return false;
  if (e.kind === 'disconnected') {
    log('device vanished');
    process.exit(3);
  }
  return false;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main(process.argv[2], process.argv[3]).catch((e: unknown) => {
    log(`failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  });
}
