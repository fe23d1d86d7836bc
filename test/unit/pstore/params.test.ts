import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { parseCmdline, splitCmdline } from '../../../src/pstore/cmdline.js';
import { parseKconfig } from '../../../src/pstore/kconfig.js';
import { mergeParams } from '../../../src/pstore/params.js';

describe('kernel command line', () => {
  it('splits like next_arg(), quotes included', () => {
    assert.deepEqual(splitCmdline(' a=1  "b=x y" c="p q" flag '), [
      { key: 'a', value: '1' },
      { key: 'b', value: 'x y' },
      { key: 'c', value: 'p q' },
      { key: 'flag', value: undefined },
    ]);
  });
  it('extracts pstore parameters with their source', () => {
    const p = parseCmdline(
      'console=ttyS0 pstore_blk.blkdev=/dev/mmcblk1p9 pstore-blk.kmsg_size=0x20 pstore_blk.pmsg_size=-1 pstore_blk.max_reason=2 pstore.compress=lz4 nr_cpus=4',
    );
    assert.deepEqual(p.blkdev, { value: '/dev/mmcblk1p9', source: 'cmdline' });
    assert.equal(p.kmsg_size?.value, 32);
    assert.equal(p.pmsg_size?.value, -1);
    assert.equal(p.compress?.value, 'lz4');
    assert.equal(p.cpus?.value, 4);
    assert.equal(p.console_size, undefined);
  });
  it('rejects non-integer sizes', () => {
    assert.throws(() => parseCmdline('pstore_blk.kmsg_size=64k'), /not an integer/);
  });
  it('earlier layers win when merging', () => {
    const m = mergeParams({ kmsg_size: { value: 8, source: 'flag' } }, { kmsg_size: { value: 64, source: 'cmdline' }, pmsg_size: { value: 4, source: 'cmdline' } });
    assert.deepEqual(m.kmsg_size, { value: 8, source: 'flag' });
    assert.deepEqual(m.pmsg_size, { value: 4, source: 'cmdline' });
  });
});

describe('kernel config', () => {
  const conf = [
    'CONFIG_ARM=y',
    'CONFIG_AEABI=y',
    'CONFIG_NR_CPUS=4',
    'CONFIG_PSTORE=y',
    'CONFIG_PSTORE_BLK=y',
    'CONFIG_PSTORE_BLK_KMSG_SIZE=16',
    'CONFIG_PSTORE_CONSOLE=y',
    'CONFIG_PSTORE_BLK_CONSOLE_SIZE=8',
    '# CONFIG_PSTORE_PMSG is not set',
    'CONFIG_PSTORE_FTRACE=y',
    'CONFIG_PSTORE_BLK_FTRACE_SIZE=64',
    'CONFIG_PSTORE_COMPRESS_DEFAULT="lz4"',
  ].join('\n');
  it('reads sizes, front ends left out, ABI and the ftrace CPU encoding (gzipped too)', () => {
    for (const data of [Buffer.from(conf), gzipSync(conf)]) {
      const k = parseKconfig(data);
      assert.equal(k.params.kmsg_size?.value, 16);
      assert.equal(k.params.console_size?.value, 8);
      assert.equal(k.params.pmsg_size?.value, -1, 'PMSG not built: no zone');
      assert.equal(k.params.ftrace_size?.value, 64);
      assert.equal(k.params.compress?.value, 'lz4');
      assert.equal(k.params.ftrace_cpu_in_ip?.value, 3);
      assert.deepEqual(k.abi, { layout: 'ilp32', endian: 'le' });
      assert.equal(k.params.kmsg_size?.source, 'kconfig');
    }
  });
  it('a 64-bit config without PSTORE_PMSG/CONSOLE/FTRACE has only kmsg zones', () => {
    const k = parseKconfig(Buffer.from('CONFIG_X86_64=y\nCONFIG_64BIT=y\nCONFIG_PSTORE=m\nCONFIG_PSTORE_BLK=m\nCONFIG_PSTORE_BLK_KMSG_SIZE=64\n'));
    assert.equal(k.params.pmsg_size?.value, -1);
    assert.equal(k.params.console_size?.value, -1);
    assert.equal(k.params.ftrace_size?.value, -1);
    assert.deepEqual(k.abi, { layout: 'lp64', endian: 'le' });
  });
  it('"# CONFIG_PSTORE_COMPRESS is not set": the kernel has no decompressor (compress=none)', () => {
    const off = parseKconfig(Buffer.from('CONFIG_PSTORE=y\n# CONFIG_PSTORE_COMPRESS is not set\nCONFIG_PSTORE_BLK=y\n'));
    assert.equal(off.params.compress?.value, 'none');
    const on = parseKconfig(Buffer.from('CONFIG_PSTORE=y\nCONFIG_PSTORE_COMPRESS=y\nCONFIG_PSTORE_BLK=y\n'));
    assert.equal(on.params.compress, undefined, '6.6+: deflate, nothing to say');
  });
  it('rejects text without CONFIG_ lines', () => {
    assert.throws(() => parseKconfig(Buffer.from('hello')), /no CONFIG_/);
  });
});
