import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryDevice } from '../../../src/blockdev/memory-device.js';
import { NoPstoreError } from '../../../src/errors.js';
import { applyClear, planClear } from '../../../src/pstore/clear.js';
import { parseCmdline } from '../../../src/pstore/cmdline.js';
import { decodeRegion } from '../../../src/pstore/decode.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import { applyFormat, planFormat } from '../../../src/pstore/format.js';
import { computeLayout } from '../../../src/pstore/layout.js';
import { deviceSource, memorySource } from '../../../src/pstore/region-source.js';
import { planGeometry } from '../../../src/pstore/plan-geometry.js';
import { kernelFixtures } from '../../helpers/kernel-fixtures.js';

const fx = kernelFixtures().find((f) => f.name === 'c61-none-rr')!;

describe('pstore format', () => {
  it('zero-fills the region the kernel uses: no zone signature is left', async () => {
    const dev = new MemoryDevice(fx.disk(), { blockSize: 512, alignment: 512 });
    const g = planGeometry(dev.size, parseCmdline(fx.cmdline));
    await applyFormat(dev, 0, planFormat(g.layout));
    assert.ok(dev.data.every((b) => b === 0));
    await assert.rejects(extractPstore(memorySource(dev.data), { params: {} }), NoPstoreError);
  });

  it('--headers writes erased zones: nothing to show, but the geometry is detectable and counters start at 0', async () => {
    const dev = new MemoryDevice(new Uint8Array(2 << 20).fill(0xa5));
    const params = parseCmdline('pstore_blk.kmsg_size=16 pstore_blk.pmsg_size=8 pstore_blk.console_size=8 pstore_blk.ftrace_size=0');
    const g = planGeometry(dev.size, params);
    await applyFormat(dev, 0, planFormat(g.layout, { headers: true, abi: { endian: 'be', layout: 'i386' } }));
    const x = await extractPstore(memorySource(dev.data), { params: {} });
    assert.equal(x.records.length, 0);
    assert.equal(x.geometry.kmsg_size.value, 16);
    assert.equal(x.geometry.pmsg_size.value, 8);
    assert.equal(x.geometry.console_size.value, 8);
    assert.equal(x.decoded.abi.endian, 'be');
    // An erased kmsg header is all zeros but its magic, identical in every layout: the layout
    // cannot be told (nor does it matter) until the first dump.
    assert.deepEqual(x.decoded.counters, { oops: 0, panic: 0 });
    assert.ok(x.zones.filter((z) => z.type === 'dmesg').every((z) => z.state === 'erased'));
    assert.equal(x.decoded.nextKmsgZone, 0, 'equal times: the last zone wins, so the next dump goes to zone 0');
  });

  it('formats a region at an unaligned offset of a block device through read-modify-write', async () => {
    const dev = new MemoryDevice(new Uint8Array(1 << 20).fill(0xff), { blockSize: 512, alignment: 512 });
    await applyFormat(dev, 4096 + 100, planFormat(computeLayout(64 * 1024, { kmsg: 8192, pmsg: 0, console: 0, ftrace: 0 }, 1)));
    assert.equal(dev.data[4096 + 99], 0xff);
    assert.ok(dev.data.subarray(4096 + 100, 4096 + 100 + 65536).every((b) => b === 0));
    assert.equal(dev.data[4096 + 100 + 65536], 0xff);
  });
});

describe('pstore clear', () => {
  it('erases like the kernel: records gone, oops counter and next zone survive', async () => {
    const dev = new MemoryDevice(fx.disk());
    const params = parseCmdline(fx.cmdline);
    const before = await extractPstore(deviceSource(dev, 0, dev.size), { params });
    assert.deepEqual(before.decoded.counters, { oops: 4, panic: 0 });
    await applyClear(dev, 0, planClear(before.decoded, ['dmesg-pstore_blk-1', 'console-pstore_blk-0']));
    const mid = await extractPstore(deviceSource(dev, 0, dev.size), { params });
    assert.deepEqual(
      mid.records.map((r) => r.file),
      ['dmesg-pstore_blk-0', 'dmesg-pstore_blk-2', 'dmesg-pstore_blk-3'],
    );
    await applyClear(dev, 0, planClear(mid.decoded));
    const after = await decodeRegion(deviceSource(dev, 0, dev.size), before.geometry.layout);
    assert.equal(after.records.length, 0);
    assert.deepEqual(after.counters, { oops: 4, panic: 0 }, 'the kernel numbers the next Oops 5');
    assert.equal(after.nextKmsgZone, 4);
  });

  it('refuses unknown record names with the list of records', () => {
    return extractPstore(memorySource(fx.disk()), { params: parseCmdline(fx.cmdline) }).then((x) => {
      assert.throws(() => planClear(x.decoded, ['dmesg-pstore_blk-9']), /no record named dmesg-pstore_blk-9 \(records: dmesg-pstore_blk-0/);
    });
  });
});
