import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bcdFromVersion,
  busNumberOf,
  closeAllUsbTransports,
  openUsbTransportCount,
  describeNativeDevice,
  mapNodeUsbError,
  massStorageInterfacesOf,
  NodeUsbControlTransport,
  NodeUsbTransport,
  type NativeDevice,
  type NativeInterface,
} from '../../../src/usb/node-usb-transport.js';
import { DeviceGoneError, UsbAccessError, UsbBusyError, UsbNotSupportedError, UsbTransferError } from '../../../src/usb/errors.js';

test('usb@3 error messages map to typed errors', () => {
  const kind = (m: string) => {
    const e = mapNodeUsbError(new Error(m), 'op');
    return e instanceof UsbTransferError ? e.kind : e.constructor.name;
  };
  assert.equal(kind('transferIn error: Stall'), 'stall');
  assert.equal(kind('controlTransferIn error: endpoint stalled'), 'stall');
  assert.equal(kind('transferIn error: Cancelled'), 'timeout');
  assert.equal(kind('transferOut error: Fault'), 'io');
  assert.equal(kind('transferIn error: Disconnected'), 'DeviceGoneError');
  assert.equal(kind('open error: device disconnected'), 'DeviceGoneError');
  assert.equal(kind('claimInterface error: interface is busy (errno 16)'), 'UsbBusyError');
  assert.equal(kind('endpoint already in use'), 'UsbBusyError');
  assert.equal(kind('open error: permission denied (errno 13)'), 'UsbAccessError');
  assert.equal(kind('operation not supported'), 'UsbNotSupportedError');
  assert.equal(kind('something odd'), 'io');
  const access = mapNodeUsbError(new Error('permission denied (errno 13)'), 'open 1-1.4');
  assert.ok(access instanceof UsbAccessError);
  assert.match(access.message, /udev rule/);
  assert.match(access.message, /crashcart udev-rule/);
  // Already-typed errors pass through.
  const t = new UsbTransferError('babble', 'x');
  assert.equal(mapNodeUsbError(t, 'op'), t);
  assert.ok(mapNodeUsbError('string thrown', 'op') instanceof UsbTransferError);
});

test('descriptor helpers', () => {
  assert.equal(bcdFromVersion(1, 4, 1), 0x0141);
  assert.equal(bcdFromVersion(0x94, 5, 1), 0x9451);
  assert.equal(busNumberOf('001'), 1);
  assert.equal(busNumberOf('3-1'), 3);
  assert.equal(busNumberOf('x'), 0);
  const ifaces: NativeInterface[] = [
    {
      interfaceNumber: 0,
      alternates: [
        {
          alternateSetting: 0,
          interfaceClass: 3,
          interfaceSubclass: 1,
          interfaceProtocol: 1,
          endpoints: [{ endpointNumber: 1, direction: 'in', type: 'interrupt', packetSize: 8 }],
        },
      ],
    },
    {
      interfaceNumber: 1,
      alternates: [
        {
          alternateSetting: 0,
          interfaceClass: 8,
          interfaceSubclass: 6,
          interfaceProtocol: 0x50,
          endpoints: [
            { endpointNumber: 2, direction: 'out', type: 'bulk', packetSize: 512 },
            { endpointNumber: 1, direction: 'in', type: 'bulk', packetSize: 512 },
          ],
        },
        // UAS alternate: class 08 but protocol 62h with streams; listed, not chosen.
        {
          alternateSetting: 1,
          interfaceClass: 8,
          interfaceSubclass: 6,
          interfaceProtocol: 0x62,
          endpoints: [
            { endpointNumber: 3, direction: 'in', type: 'bulk', packetSize: 1024 },
            { endpointNumber: 4, direction: 'out', type: 'bulk', packetSize: 1024 },
          ],
        },
      ],
    },
    { interfaceNumber: 2, alternates: [{ alternateSetting: 0, interfaceClass: 8, interfaceSubclass: 6, interfaceProtocol: 0x50, endpoints: [] }] },
  ];
  assert.deepEqual(massStorageInterfacesOf(ifaces), [
    { interfaceNumber: 1, alternateSetting: 0, subclass: 6, protocol: 0x50, bulkInEndpoint: 1, bulkOutEndpoint: 2, maxPacketSize: 512 },
    { interfaceNumber: 1, alternateSetting: 1, subclass: 6, protocol: 0x62, bulkInEndpoint: 3, bulkOutEndpoint: 4, maxPacketSize: 1024 },
  ]);
});

type Call = string;

function fakeDevice(overrides: Partial<NativeDevice> = {}, log: Call[] = []): NativeDevice {
  const dev: NativeDevice = {
    vendorId: 0x058f,
    productId: 0x6387,
    deviceVersionMajor: 1,
    deviceVersionMinor: 4,
    deviceVersionSubminor: 1,
    bus: '1',
    address: 7,
    ports: [1, 4],
    speed: 'high',
    get manufacturerName() {
      return 'Generic';
    },
    get productName() {
      return 'Mass Storage';
    },
    get serialNumber(): string | null {
      throw new Error('needs open');
    },
    get configuration() {
      return {
        interfaces: [
          {
            interfaceNumber: 0,
            alternates: [
              {
                alternateSetting: 0,
                interfaceClass: 8,
                interfaceSubclass: 6,
                interfaceProtocol: 0x50,
                endpoints: [
                  { endpointNumber: 1, direction: 'in' as const, type: 'bulk', packetSize: 512 },
                  { endpointNumber: 2, direction: 'out' as const, type: 'bulk', packetSize: 512 },
                ],
              },
            ],
          },
        ],
      };
    },
    open: async () => void log.push('open'),
    close: async () => void log.push('close'),
    reset: async () => void log.push('reset'),
    claimInterface: async (n) => void log.push(`claim ${n}`),
    releaseInterface: async (n) => void log.push(`release ${n}`),
    selectAlternateInterface: async (n, a) => void log.push(`alt ${n} ${a}`),
    nativeControlTransferIn: async (s, t, l) => (log.push(`ctrlIn ${s.request} ${t} ${l}`), Uint8Array.of(1)),
    nativeControlTransferOut: async (s, t) => (log.push(`ctrlOut ${s.request} ${t}`), 0),
    nativeTransferIn: async (ep, t, l) => (log.push(`in ${ep} ${t} ${l}`), new Uint8Array(l)),
    nativeTransferOut: async (ep, t, d) => (log.push(`out ${ep} ${t} ${d.length}`), d.length),
    clearHalt: async (dir, ep) => void log.push(`clearHalt ${dir} ${ep}`),
    detachKernelDriver: async (n) => void log.push(`detach ${n}`),
    attachKernelDriver: async (n) => void log.push(`attach ${n}`),
    ...overrides,
  };
  return dev;
}

const linux = process.platform === 'linux';

test('describe: ids, bcdDevice, port path, MSC interface; failing getters are tolerated', () => {
  const d = describeNativeDevice(fakeDevice());
  assert.equal(d.revision, 0x0141);
  assert.equal(d.portPath, '1-1.4');
  assert.equal(d.serial, undefined);
  assert.equal(d.manufacturer, 'Generic');
  assert.equal(d.massStorage.length, 1);
});

test('open detaches the kernel driver, claims; close releases and re-attaches', async () => {
  const log: Call[] = [];
  const native = fakeDevice({}, log);
  const t = await NodeUsbTransport.open(native, describeNativeDevice(native));
  assert.deepEqual(log, linux ? ['open', 'detach 0', 'claim 0'] : ['open', 'claim 0']);
  log.length = 0;
  assert.equal(await t.bulkOut(new Uint8Array(31), { timeoutMs: 5000 }), 31);
  assert.equal((await t.bulkIn(13, { timeoutMs: 7000 })).length, 13);
  await t.clearHalt('in', { timeoutMs: 1000 });
  await t.clearHalt('out', { timeoutMs: 1000 });
  assert.deepEqual([...(await t.controlIn({ requestType: 'class', recipient: 'interface', request: 0xfe, value: 0, index: 0 }, 1, { timeoutMs: 10000 }))], [1]);
  await t.controlOut({ requestType: 'class', recipient: 'interface', request: 0xff, value: 0, index: 0 }, undefined, { timeoutMs: 5000 });
  assert.deepEqual(log, ['out 2 5000 31', 'in 1 7000 13', 'clearHalt in 1', 'clearHalt out 2', 'ctrlIn 254 10000 1', 'ctrlOut 255 5000']);
  log.length = 0;
  await t.close();
  await t.close();
  assert.deepEqual(log, linux ? ['release 0', 'attach 0', 'close'] : ['release 0', 'close']);
  await assert.rejects(t.bulkIn(13, { timeoutMs: 1 }), DeviceGoneError);
});

test('no kernel driver bound: nothing re-attached on close', async () => {
  const log: Call[] = [];
  const native = fakeDevice({ detachKernelDriver: async () => Promise.reject(new Error('detachKernelDriver error: no kernel driver attached (errno 61)')) }, log);
  const t = await NodeUsbTransport.open(native, describeNativeDevice(native));
  await t.close();
  assert.ok(!log.includes('attach 0'));
});

test('claim refused: kernel driver re-attached, handle closed, busy error', { skip: !linux }, async () => {
  const log: Call[] = [];
  const native = fakeDevice({ claimInterface: async () => Promise.reject(new Error('claimInterface error: interface is busy (errno 16)')) }, log);
  await assert.rejects(NodeUsbTransport.open(native, describeNativeDevice(native)), UsbBusyError);
  assert.deepEqual(log, ['open', 'detach 0', 'attach 0', 'close']);
});

test('open refused: permission error with the fix', async () => {
  const native = fakeDevice({ open: async () => Promise.reject(new Error('open error: permission denied (errno 13)')) });
  await assert.rejects(NodeUsbTransport.open(native, describeNativeDevice(native)), (e: unknown) => e instanceof UsbAccessError && /udev/.test(e.message));
});

test('device without a BOT interface is refused', async () => {
  const native = fakeDevice({
    get configuration() {
      return { interfaces: [] };
    },
  });
  await assert.rejects(NodeUsbTransport.open(native, describeNativeDevice(native)), UsbNotSupportedError);
});

test('transfer results: null = stall, oversize = babble, Cancelled = timeout', async () => {
  let next: () => Promise<Uint8Array | null> = async () => null;
  const native = fakeDevice({
    nativeTransferIn: () => next(),
    nativeControlTransferIn: async () => null,
    nativeControlTransferOut: async () => -1,
  });
  const t = await NodeUsbTransport.open(native, describeNativeDevice(native));
  const kind = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'ok';
    } catch (e) {
      return e instanceof UsbTransferError ? e.kind : (e as Error).constructor.name;
    }
  };
  assert.equal(await kind(t.bulkIn(13, { timeoutMs: 1 })), 'stall');
  next = async () => new Uint8Array(600);
  assert.equal(await kind(t.bulkIn(512, { timeoutMs: 1 })), 'babble');
  next = async () => Promise.reject(new Error('transferIn error: Cancelled'));
  assert.equal(await kind(t.bulkIn(512, { timeoutMs: 1 })), 'timeout');
  next = async () => Promise.reject(new Error('transferIn error: Disconnected'));
  assert.equal(await kind(t.bulkIn(512, { timeoutMs: 1 })), 'DeviceGoneError');
  assert.equal(await kind(t.controlIn({ requestType: 'class', recipient: 'interface', request: 0xfe, value: 0, index: 0 }, 1, { timeoutMs: 1 })), 'stall');
  assert.equal(await kind(t.controlOut({ requestType: 'class', recipient: 'interface', request: 0xff, value: 0, index: 0 }, undefined, { timeoutMs: 1 })), 'stall');
  await t.close();
});

test('clear halt that hangs times out', async () => {
  const native = fakeDevice({ clearHalt: () => new Promise(() => undefined) });
  const t = await NodeUsbTransport.open(native, describeNativeDevice(native));
  await assert.rejects(t.clearHalt('in', { timeoutMs: 20 }), (e: unknown) => e instanceof UsbTransferError && e.kind === 'timeout');
  await t.close();
});

test('abort: rejects at once; the next transfer on that pipe waits for the native one to end', async () => {
  const order: string[] = [];
  let finish!: () => void;
  let first = true;
  const native = fakeDevice({
    nativeTransferIn: (_ep, _t, l) => {
      if (first) {
        first = false;
        return new Promise((r) => (finish = () => (order.push('first ended'), r(new Uint8Array(0)))));
      }
      order.push('second started');
      return Promise.resolve(new Uint8Array(l));
    },
  });
  const t = await NodeUsbTransport.open(native, describeNativeDevice(native));
  const ac = new AbortController();
  const p = t.bulkIn(512, { timeoutMs: 1000, signal: ac.signal });
  ac.abort(new Error('user abort'));
  await assert.rejects(p, /user abort/);
  const second = t.bulkIn(13, { timeoutMs: 1000 });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, []);
  finish();
  assert.equal((await second).length, 13);
  assert.deepEqual(order, ['first ended', 'second started']);
  await t.close();
});

test('closeAllUsbTransports re-attaches every open reader', async () => {
  const log: Call[] = [];
  const n1 = fakeDevice({}, log);
  const n2 = fakeDevice({ address: 9 }, log);
  await NodeUsbTransport.open(n1, describeNativeDevice(n1));
  await NodeUsbTransport.open(n2, describeNativeDevice(n2));
  log.length = 0;
  await closeAllUsbTransports();
  assert.equal(log.filter((l) => l === 'release 0').length, 2);
  assert.equal(log.filter((l) => l === 'close').length, 2);
  log.length = 0;
  await closeAllUsbTransports();
  assert.deepEqual(log, []);
});

test('a signal while the interface is being claimed: the transport is already closable, the driver comes back', { skip: !linux }, async () => {
  const log: Call[] = [];
  let releaseDetach!: () => void;
  const detaching = new Promise<void>((r) => (releaseDetach = r));
  const native = fakeDevice(
    {
      detachKernelDriver: async (n) => {
        await detaching;
        log.push(`detach ${n}`);
      },
    },
    log,
  );
  const opening = NodeUsbTransport.open(native, describeNativeDevice(native));
  await new Promise((r) => setImmediate(r));
  assert.equal(openUsbTransportCount(), 1, 'counted before the kernel driver is detached');
  const closing = closeAllUsbTransports();
  releaseDetach();
  await closing;
  await assert.rejects(opening, DeviceGoneError);
  assert.deepEqual(log, ['open', 'detach 0', 'claim 0', 'release 0', 'attach 0', 'close']);
  assert.equal(openUsbTransportCount(), 0);
});

test('control-only transport (an FTDI): any interface claimed, ftdi_sio detached and re-attached, stalls typed, closed on a signal', async () => {
  const log: Call[] = [];
  const native = fakeDevice({ configuration: { interfaces: [] } as unknown as NativeDevice['configuration'] }, log);
  const info = describeNativeDevice(native);
  assert.equal(info.massStorage.length, 0);
  const t = await NodeUsbControlTransport.open(native, info, 0);
  assert.deepEqual(log, linux ? ['open', 'detach 0', 'claim 0'] : ['open', 'claim 0']);
  log.length = 0;
  await t.controlOut({ requestType: 'vendor', recipient: 'device', request: 0x0b, value: 0x20f1, index: 1 }, undefined, { timeoutMs: 5000 });
  assert.deepEqual([...(await t.controlIn({ requestType: 'vendor', recipient: 'device', request: 0x0c, value: 0, index: 1 }, 1, { timeoutMs: 5000 }))], [1]);
  assert.deepEqual(log, ['ctrlOut 11 5000', 'ctrlIn 12 5000 1']);
  assert.equal(openUsbTransportCount(), 1);
  log.length = 0;
  await closeAllUsbTransports();
  assert.deepEqual(log, linux ? ['release 0', 'attach 0', 'close'] : ['release 0', 'close']);
  assert.equal(openUsbTransportCount(), 0);
  await assert.rejects(t.controlIn({ requestType: 'vendor', recipient: 'device', request: 0x0c, value: 0, index: 1 }, 1, { timeoutMs: 1 }), DeviceGoneError);

  const stalls = fakeDevice({ nativeControlTransferIn: async () => null, nativeControlTransferOut: async () => Promise.reject(new Error('controlTransferOut error: Stall')) });
  const s = await NodeUsbControlTransport.open(stalls, describeNativeDevice(stalls), 0);
  await assert.rejects(
    s.controlIn({ requestType: 'vendor', recipient: 'device', request: 0x0c, value: 0, index: 1 }, 1, { timeoutMs: 1 }),
    (e: unknown) => e instanceof UsbTransferError && e.kind === 'stall',
  );
  await assert.rejects(
    s.controlOut({ requestType: 'vendor', recipient: 'device', request: 0x0b, value: 0, index: 1 }, undefined, { timeoutMs: 1 }),
    (e: unknown) => e instanceof UsbTransferError && e.kind === 'stall',
  );
  await s.close();
  const busy = fakeDevice({ claimInterface: async () => Promise.reject(new Error('claimInterface error: interface is busy (errno 16)')) });
  await assert.rejects(NodeUsbControlTransport.open(busy, describeNativeDevice(busy), 0), UsbBusyError);
  assert.equal(openUsbTransportCount(), 0);
});
