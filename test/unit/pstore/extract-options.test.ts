/**
 * Extraction inputs beyond the command line: Kconfig filling what the command line leaves out,
 * board profiles, a System.map with a KASLR slide, and the Android view of pmsg.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { resolveGeometryInputs } from '../../../src/cli/geometry-options.js';
import { decodeAndroidPmsg } from '../../../src/pstore/android-pmsg.js';
import { extractPstore } from '../../../src/pstore/extract.js';
import { memorySource } from '../../../src/pstore/region-source.js';
import { loadSymbolTable } from '../../../src/symbols/index.js';
import { ftraceMismatch, kernelFixtures } from '../../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-opts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const fixture = (name: string) => kernelFixtures().find((f) => f.name === name)!;

describe('geometry from Kconfig and profiles', () => {
  it('Kconfig supplies the 64 KiB ftrace zone a command line leaves out (the trap of built-in front ends)', async () => {
    const fx = fixture('c61-lz4-wrap');
    const cmdline = fx.cmdline.replace(/pstore_blk\.ftrace_size=\d+/, '');
    const kconfig = join(tmp, 'config');
    writeFileSync(kconfig, 'CONFIG_X86_64=y\nCONFIG_PSTORE=y\nCONFIG_PSTORE_BLK=m\nCONFIG_PSTORE_PMSG=y\nCONFIG_PSTORE_CONSOLE=y\nCONFIG_PSTORE_FTRACE=y\nCONFIG_NR_CPUS=64\n');
    const inputs = resolveGeometryInputs({ cmdline, kconfig, cpus: 1 });
    const x = await extractPstore(memorySource(fx.disk()), { params: inputs.params, abi: inputs.abi });
    assert.deepEqual(x.geometry.ftrace_size, { value: 64, source: 'kconfig' });
    assert.deepEqual(x.geometry.kmsg_size, { value: 16, source: 'cmdline' });
    assert.deepEqual(x.records.map((r) => r.file).sort(), [...fx.readout.keys()].sort());
    for (const r of x.records) assert.ok(Buffer.from(r.content).equals(fx.readout.get(r.file)!), r.file);
  });

  it('a board profile file gives the geometry and ABI', async () => {
    const fx = fixture('arm32-lz4');
    const profile = join(tmp, 'arm-board.json');
    writeFileSync(
      profile,
      JSON.stringify({ name: 'arm-board', abi: { endian: 'le', layout: 'ilp32' }, pstore: { kmsg_size: 16, pmsg_size: 8, console_size: 8, ftrace_size: 0, compress: 'lz4' } }),
    );
    const inputs = resolveGeometryInputs({ profile });
    const x = await extractPstore(memorySource(fx.disk()), { params: inputs.params, abi: inputs.abi });
    assert.equal(x.geometry.kmsg_size.source, 'profile');
    assert.equal(x.decoded.abi.layout, 'ilp32');
    assert.equal(x.decoded.abi.layoutSource, 'given');
    assert.deepEqual(x.records.map((r) => r.file).sort(), [...fx.readout.keys()].sort());
    for (const r of x.records) assert.ok(Buffer.from(r.content).equals(fx.readout.get(r.file)!), r.file);
  });

  it('flags beat the command line, which beats the profile', () => {
    const profile = join(tmp, 'p.json');
    writeFileSync(profile, JSON.stringify({ name: 'p', pstore: { kmsg_size: 8, pmsg_size: 4 } }));
    const i = resolveGeometryInputs({ profile, cmdline: 'pstore_blk.kmsg_size=16 pstore_blk.pmsg_size=32', 'kmsg-size': 32 });
    assert.deepEqual(i.params.kmsg_size, { value: 32, source: 'flag' });
    assert.deepEqual(i.params.pmsg_size, { value: 32, source: 'cmdline' });
  });
});

describe('ftrace symbols with a KASLR slide', () => {
  it('a System.map (link-time addresses) plus the slide renders like the kernel', async () => {
    const fx = fixture('c61-full-deflate');
    // Turn the kallsyms dump into a System.map of a kernel linked 16 MiB lower, without modules.
    const slide = 0x1000000n;
    const map = gunzipSync(fx.kallsyms!)
      .toString('latin1')
      .split('\n')
      .filter((l) => l && !l.includes('['))
      .map((l) => {
        const [addr, type, name] = l.split(/\s+/);
        return `${(BigInt('0x' + addr) - slide).toString(16).padStart(16, '0')} ${type} ${name}`;
      })
      .join('\n');
    const given = await extractPstore(memorySource(fx.disk()), { params: {}, symbols: loadSymbolTable(Buffer.from(map), { format: 'kallsyms' }), kaslrSlide: slide });
    const ftrace = Buffer.from(given.records.find((r) => r.type === 'ftrace')!.content).toString('latin1');
    // Module symbols are not in a System.map: compare only lines whose two symbols are core ones.
    const expected = fx.readout.get('ftrace-pstore_blk-0')!.toString('latin1').split('\n');
    const actual = ftrace.split('\n');
    let compared = 0;
    for (let i = 0; i < expected.length; i++) {
      if (expected[i].includes('[') || /0x[0-9a-f]+ <-|<- 0x/.test(expected[i])) continue;
      assert.equal(ftraceMismatch(expected[i], actual[i]), null);
      compared++;
    }
    assert.ok(compared > 500, `compared ${compared} core-kernel lines`);
    assert.equal(given.symbols.kaslrSource, 'given');
  });
});

describe('Android view of pmsg', () => {
  function entry(id: number, prio: number, tag: string, msg: string, sec: number): Buffer {
    const payload = Buffer.concat([Buffer.from([prio]), Buffer.from(`${tag}\0${msg}\0`)]);
    const h = Buffer.alloc(18);
    h[0] = 0x6c;
    h.writeUInt16LE(18 + payload.length, 1);
    h.writeUInt16LE(1000, 3); // uid
    h.writeUInt16LE(321, 5); // pid
    h[7] = id;
    h.writeUInt16LE(322, 8); // tid
    h.writeUInt32LE(sec, 10);
    h.writeUInt32LE(123_000_000, 14);
    return Buffer.concat([h, payload]);
  }
  it('decodes logger entries and resynchronises after a cut-off one', () => {
    const a = entry(0, 4, 'ActivityManager', 'Start proc 1234', 1700000000);
    const b = entry(3, 6, 'init', 'service crashed', 1700000001);
    const v = decodeAndroidPmsg(Buffer.concat([a.subarray(9), b, a]));
    assert.equal(v.records, 2);
    assert.equal(v.skippedBytes, a.length - 9);
    assert.deepEqual(v.text.trim().split('\n'), [
      '11-14 22:13:21.123  1000   321   322 E init    : service crashed',
      '11-14 22:13:20.123  1000   321   322 I ActivityManager: Start proc 1234',
    ]);
  });
  it('plain text pmsg has no entries', () => {
    assert.equal(decodeAndroidPmsg(Buffer.from('pmsg line 0 from userspace\n')).records, 0);
  });
});
