/**
 * Geometry values are checked against the kernel's own ranges wherever they come from: flags,
 * the board's command line, profile fields and Kconfig (src/pstore/param-limits.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExitCode, UsageError } from '../../../src/errors.js';
import { checkProfile } from '../../../src/profile/board-profile.js';
import { parseCmdline } from '../../../src/pstore/cmdline.js';
import { parseKconfig } from '../../../src/pstore/kconfig.js';
import { checkCpus, checkKernelSizeKiB, checkSizeKiB, MAX_CPUS, MAX_SIZE_KIB, parseKaslrOffset } from '../../../src/pstore/param-limits.js';

const usage = (re: RegExp) => (e: unknown) => e instanceof UsageError && e.exitCode === ExitCode.USAGE && re.test(e.message);

describe('flag ranges', () => {
  it('sizes: whole KiB from 0 to 131072 (128 MiB)', () => {
    assert.equal(MAX_SIZE_KIB, 131072);
    for (const v of [0, 4, 64, 131072]) assert.equal(checkSizeKiB(v, '--kmsg-size'), v);
    for (const v of [-1, 131073, 1.5, Number.NaN, Infinity, 2 ** 60]) {
      assert.throws(() => checkSizeKiB(v, '--kmsg-size'), usage(/--kmsg-size must be a whole number of KiB from 0 \(no zone\) to 131072/));
    }
  });
  it('cpus: 1..8192, the largest NR_CPUS of any architecture', () => {
    assert.equal(MAX_CPUS, 8192);
    for (const v of [1, 2, 8192]) assert.equal(checkCpus(v, '--cpus'), v);
    for (const v of [0, -1, 8193, 99999, 2.5]) assert.throws(() => checkCpus(v, '--cpus'), usage(/--cpus must be a whole number of possible CPUs from 1 to 8192/));
  });
  it('--kaslr-offset: hex up to 64 bits, with or without 0x/0X', () => {
    assert.equal(parseKaslrOffset('0x1e000000'), 0x1e000000n);
    assert.equal(parseKaslrOffset('1E000000'), 0x1e000000n);
    // regression: "0X10" passed the old check and then crashed BigInt() (exit 1, stack trace)
    assert.equal(parseKaslrOffset('0X10'), 0x10n);
    assert.equal(parseKaslrOffset('ffffffffffffffff'), 2n ** 64n - 1n);
    assert.throws(() => parseKaslrOffset('10000000000000000'), usage(/larger than a 64-bit address/));
    for (const bad of ['', '-1', '0x', 'xyz', '1e0x']) assert.throws(() => parseKaslrOffset(bad), usage(/--kaslr-offset must be a hex number/));
  });
});

describe('kernel command line ranges', () => {
  it('keeps what the kernel accepts: negative sizes (no zone), the ALIGN quirk, 128 MiB', () => {
    const p = parseCmdline('pstore_blk.kmsg_size=-1 pstore_blk.pmsg_size=131072 pstore_blk.console_size=5000 nr_cpus=8192 pstore_blk.max_reason=-5');
    assert.deepEqual([p.kmsg_size?.value, p.pmsg_size?.value, p.console_size?.value, p.cpus?.value, p.max_reason?.value], [-1, 131072, 5000, 8192, -5]);
    // the kernel ignores nr_cpus <= 0
    assert.equal(parseCmdline('nr_cpus=0').cpus, undefined);
    // kmsg_size=134217727 is not a multiple of 4: ALIGN(134217727, 4096) = 128 MiB still fits
    assert.equal(checkKernelSizeKiB(134217727, 'k'), 134217727);
  });
  it('refuses zones larger than the 128 MiB the kernel can use, and values past a long', () => {
    assert.throws(() => parseCmdline('pstore_blk.kmsg_size=131076'), usage(/pstore_blk\.kmsg_size=131076: .*128 MiB.*from 0 to 131072/));
    assert.throws(() => parseCmdline('pstore_blk.ftrace_size=99999999999999999999'), usage(/out of range/));
    assert.throws(() => parseCmdline('nr_cpus=99999'), usage(/nr_cpus must be a whole number of possible CPUs from 1 to 8192/));
    assert.throws(() => parseCmdline('possible_cpus=8193'), usage(/possible_cpus/));
    assert.throws(() => parseCmdline('pstore_blk.max_reason=0x80000000'), usage(/out of range for an int parameter/));
    assert.throws(() => parseCmdline('mmcpstore.sector_offset=-1'), usage(/sector_offset=-1: must be a whole number of 512-byte sectors from 0/));
    assert.throws(() => parseCmdline('mmcpstore.sector_count=0'), usage(/sector_count=0: must be a whole number of 512-byte sectors from 1/));
    assert.throws(() => parseCmdline('mmcpstore.sector_count=0x7fffffffffffffff'), usage(/512-byte sectors/));
  });
});

describe('Kconfig and profile ranges', () => {
  it('CONFIG_PSTORE_BLK_*_SIZE beyond 128 MiB is refused; -1 (front end off) is kept', () => {
    const k = parseKconfig(Buffer.from('CONFIG_PSTORE=y\nCONFIG_PSTORE_BLK_KMSG_SIZE=64\nCONFIG_PSTORE_BLK_PMSG_SIZE=-1\n'));
    assert.equal(k.params.pmsg_size?.value, -1);
    assert.throws(() => parseKconfig(Buffer.from('CONFIG_PSTORE_BLK_KMSG_SIZE=999999999\n')), usage(/CONFIG_PSTORE_BLK_KMSG_SIZE=999999999/));
  });
  it('profile fields name the range; a profile cmdline out of range is a profile error', () => {
    const r = checkProfile({ name: 'x', pstore: { kmsg_size: 131073, cpus: 8193 } }, 'x.json');
    assert.deepEqual(r.errors, [
      'pstore.kmsg_size: must be a non-negative integer (KiB) from 0 to 131072 (128 MiB, the most pstore/blk uses of any device)',
      'pstore.cpus: must be a positive integer from 1 to 8192 (the largest NR_CPUS of any architecture)',
    ]);
    const c = checkProfile({ name: 'x', cmdline: 'nr_cpus=100000' }, 'x.json');
    assert.match(c.errors[0], /^cmdline: nr_cpus must be a whole number of possible CPUs from 1 to 8192/);
  });
});
