// The programmable reader on the real wire (test/vm/ffs-reader.ts: a user-space USB mass-storage
// device through FunctionFS on dummy_hcd). One boot:
//  - a plain reader: the kernel's usb-storage and crashcart read the same card, byte for byte,
//  - a USB-SD-Mux: `mux host` → `wait --insert` → `flash` (verified) → `mux dut` → `mux host` →
//    `pstore extract` equal to the kernel's readout, `mux status`.
// The reader quirk scenarios, card swap and write-protect switch boot on their own:
// usb-ffs-quirks.vmtest.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { runVm } from './harness.js';
import { fixtureCmdline, fixtureDisk, fixtureReadout, outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { FFS_SH } from './ffs-lib.js';

const FIXTURE = 'c61-lz4-wrap';
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

test('programmable FunctionFS reader: kernel and crashcart read alike, USB-SD-Mux round trip', async (t) => {
  const fixture = fixtureDisk(FIXTURE);
  const scenarios: Record<string, string> = {
    '/data/plain.json': JSON.stringify({ luns: ['/tmp/plain.img'] }),
    '/data/mux.json': JSON.stringify({ mux: 'classic', luns: ['/tmp/mux.img'], reader: { serial: 'MUX0001' } }),
  };

  const r = await runVm({
    virtfsHostRoot: true,
    files: { '/data/card.img': fixture, ...Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [k, Buffer.from(v)])) },
    env: { REPO: repoRoot, CMDLINE: fixtureCmdline(FIXTURE) },
    timeoutMs: 600_000,
    scriptTimeoutMs: 580_000,
    memoryMiB: 768,
    script: `${USB_PRELUDE}${FFS_SH}
      mount_hostroot
      ffs_modules
      cp /data/card.img /host/tmp/plain.img

      # a plain reader: kernel and crashcart see the same card
      ffs_start plain 1d6b 0105 PLAIN0001 /data/plain.json
      echo "$P" | save_text plain-port
      wait_driver $P
      kernel_read $P plain
      trun plain-read read usb:$P -o /tmp/plain-read.img --json
      md5sum /host/tmp/plain-read.img | cut -d' ' -f1 | save_text plain-crashcart.md5
      rm -f /host/tmp/plain-read.img
      trun plain-extract pstore extract usb:$P -o /tmp/px --json --cmdline "$CMDLINE"
      mkdir -p /out/plain-extract && cp /host/tmp/px/* /out/plain-extract/
      ffs_stop plain

      # USB-SD-Mux: switch to host, wait for the card, flash, to the board and back, extract
      dd if=/dev/zero of=/host/tmp/mux.img bs=512 count=$(( $(wc -c < /data/card.img) / 512 )) 2>/dev/null
      cp /data/card.img /host/tmp/image.img
      ffs_start mux 0424 4041 MUX0001 /data/mux.json 0100 usb-sd-mux_rev4.0
      echo "$P" | save_text mux-port
      trun mux-status-0 mux usb status --json
      trun mux-host mux usb:serial=MUX0001 host --json
      trun mux-wait wait usb:$P --insert --timeout 30 --json
      trun mux-flash flash /tmp/image.img usb:$P --yes --json
      trun mux-dut mux usb dut
      trun mux-wait-dut wait usb:$P --remove --timeout 0
      trun mux-host-2 mux usb host
      trun mux-wait-2 wait usb:$P --insert --timeout 30
      trun mux-extract pstore extract usb:$P -o /tmp/mx --json --cmdline "$CMDLINE"
      mkdir -p /out/mux-extract && cp /host/tmp/mx/* /out/mux-extract/ 2>/dev/null || true
      trun mux-status mux usb status
      ffs_stop mux
      md5sum /host/tmp/mux.img | cut -d' ' -f1 | save_text mux-card.md5
    `,
  });
  t.diagnostic(`VM run: ${(r.durationMs / 1000).toFixed(1)} s`);
  const o = outputs(r);
  const cardMd5 = md5(fixture);

  const expected = fixtureReadout(FIXTURE);
  // plain: the kernel and crashcart read the card the program serves, byte for byte
  await t.test('plain reader: kernel and crashcart read the same card', () => {
    assert.equal(o.text('plain.kernel.md5').trim(), cardMd5, 'kernel read of the FunctionFS reader');
    o.json('plain-read');
    assert.equal(o.text('plain-crashcart.md5').trim(), cardMd5, 'crashcart read of the FunctionFS reader');
    const ix = o.json('plain-extract');
    assert.deepEqual(ix.records.map((x: any) => x.file).sort(), [...expected.keys()].sort());
    for (const [name, want] of expected) assert.ok(r.outputs.get(`plain-extract/${name}`)?.equals(want), `${name} differs from the kernel's readout`);
  });

  await t.test('USB-SD-Mux: host, wait, flash, dut, host, extract', () => {
    assert.equal(o.json('mux-status-0').mode, 'off');
    const host = o.json('mux-host');
    assert.deepEqual({ mode: host.mode, variant: host.variant, id: host.id }, { mode: 'host', variant: 'classic', id: '0424:4041' });
    assert.equal(o.json('mux-wait').event, 'insert');
    o.json('mux-flash');
    o.ok('mux-dut');
    o.ok('mux-wait-dut');
    o.ok('mux-host-2');
    o.ok('mux-wait-2');
    const mx = o.json('mux-extract');
    assert.deepEqual(mx.records.map((x: any) => x.file).sort(), [...expected.keys()].sort());
    for (const [name, want] of expected) assert.ok(r.outputs.get(`mux-extract/${name}`)?.equals(want), `mux: ${name} differs from the kernel's readout`);
    assert.match(o.ok('mux-status'), /^host\t/);
    assert.equal(o.text('mux-card.md5').trim(), cardMd5, 'the flashed card holds the image');
  });
});
