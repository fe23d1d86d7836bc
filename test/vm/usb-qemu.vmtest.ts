// End to end on QEMU's usb-storage device (qemu-xhci, SuperSpeed): two emulated readers, one
// carrying a kernel-written pstore card (stock61-gpt), one blank. crashcart runs inside the VM
// from the host's node over 9p; every check of this file shares one boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRawImage, runVm } from './harness.js';
import { fixtureCmdline, fixtureDisk, fixtureReadout, outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { rwPattern, rwRegions } from './usb-guest.js';

const BLANK_SIZE = 16 * 1024 * 1024;

test('QEMU usb-storage: list, info, pstore extract, write/read back, wait, ambiguity, kernel driver back after exit and signals', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-usb-qemu-'));
  try {
    const cardA = join(dir, 'a.img');
    const cardB = join(dir, 'b.img');
    const fixture = fixtureDisk('stock61-gpt');
    await writeFile(cardA, fixture);
    await createRawImage(cardB, BLANK_SIZE);
    const r = await runVm({
      virtfsHostRoot: true,
      usb: {
        disks: [
          { path: cardA, serial: 'CARD0001' },
          { path: cardB, serial: 'CARD0002' },
        ],
      },
      env: { REPO: repoRoot, CMDLINE_A: fixtureCmdline('stock61-gpt') },
      timeoutMs: 720_000,
      script: `${USB_PRELUDE}
        usb_host_modules
        mount_hostroot
        i=0
        until P1=$(port_of_serial CARD0001) && P2=$(port_of_serial CARD0002); do
          i=$((i + 1)); [ $i -lt 300 ] || vm_fail "USB disks missing"; sleep 0.1
        done
        echo "$P1 $P2" | save_text ports
        wait_driver $P1; wait_driver $P2
        kernel_disk $P1 > /dev/null; kernel_disk $P2 > /dev/null

        run list-json cc list --json
        run list-text cc list
        wait_driver $P1; wait_driver $P2
        echo "$(driver_of $P1) $(driver_of $P2)" | save_text drivers-after-list

        run info-json cc info usb:serial=CARD0001 --json
        run info-text cc info usb:$P1
        run info-ambiguous cc info usb
        run vidpid-ambiguous cc info usb:46f4:0001

        run extract cc pstore extract usb:serial=CARD0001 -o /tmp/x --json --cmdline "$CMDLINE_A"
        mkdir -p /out/extract && cp /host/tmp/x/* /out/extract/

        run rw guest rw usb:serial=CARD0002 7
        wait_driver $P2
        sync; echo 3 > /proc/sys/vm/drop_caches
        dd if=$(kernel_disk $P2) bs=65536 count=1 2>/dev/null | save_text kernel-view

        run stall guest stall usb:$P2
        run reset guest reset usb:$P2
        wait_driver $P2

        run wait-remove-timeout cc wait usb:serial=CARD0002 --remove --timeout 2
        run wait-insert-present cc wait usb:serial=CARD0002 --insert --timeout 10 --json
        wait_driver $P2

        bg sigint wait usb:$P2 --remove
        wait_detached $P2
        kill -INT $BG_PID
        bg_wait sigint
        wait_driver $P2
        bg sigterm wait usb:$P2 --remove
        wait_detached $P2
        kill -TERM $BG_PID
        bg_wait sigterm
        wait_driver $P2
        echo "$(driver_of $P1) $(driver_of $P2)" | save_text drivers-at-end
      `,
    });
    t.diagnostic(`VM run: ${(r.durationMs / 1000).toFixed(1)} s`);
    const o = outputs(r);
    const [p1, p2] = o.text('ports').trim().split(' ');
    assert.match(p1, /^\d+-\d+(\.\d+)*$/);

    // list: both readers with their serials, one slot each, card present, sizes from the images
    const list = o.json<{ readers: any[] }>('list-json');
    assert.deepEqual(list.readers.map((x) => x.serial).sort(), ['CARD0001', 'CARD0002']);
    const a = list.readers.find((x) => x.serial === 'CARD0001');
    const b = list.readers.find((x) => x.serial === 'CARD0002');
    assert.equal(a.selector, `usb:${p1}`);
    assert.equal(b.port, p2);
    assert.equal(a.id, '46f4:0001');
    assert.equal(a.driver, 'usb-storage');
    assert.equal(a.speed, 'super');
    assert.equal(a.slots.length, 1);
    assert.deepEqual(
      { present: a.slots[0].present, size: a.slots[0].size, blockSize: a.slots[0].blockSize, wp: a.slots[0].writeProtected, sel: a.slots[0].selector },
      { present: true, size: fixture.length, blockSize: 512, wp: false, sel: `usb:${p1}@lun=0` },
    );
    assert.equal(b.slots[0].size, BLANK_SIZE);
    assert.match(a.slots[0].kernelDevice, /^\/dev\/sd[a-z]$/);
    assert.match(o.out('list-text'), new RegExp(`└─usb:${p1}@lun=0\\s+8 MiB\\s+no\\s+yes`));
    assert.equal(o.text('drivers-after-list').trim(), 'usb-storage usb-storage', 'kernel driver re-attached after list');

    // info: GPT with the pstore partition found by its signatures
    const info = o.json('info-json');
    assert.equal(info.size, fixture.length);
    assert.equal(info.writeProtected, false);
    assert.equal(info.usb.port, p1);
    assert.equal(info.partitionTable.kind, 'gpt');
    assert.deepEqual(
      info.partitionTable.partitions.map((p: any) => p.name),
      ['boot', 'pstore'],
    );
    assert.equal(info.pstore.found, true);
    assert.equal(info.pstore.region.partition, 2);
    assert.equal(info.pstore.signatures.byType.dmesg, 2);
    assert.match(o.out('info-text'), /partitions GPT .*2 partition\(s\)/);

    // the bare selector with two cards, and a VID:PID two readers share, are refused with the candidates
    assert.equal(o.rc('info-ambiguous'), 2);
    assert.match(o.err('info-ambiguous'), /usb is ambiguous, 2 cards are present/);
    assert.match(o.err('info-ambiguous'), new RegExp(`usb:${p1}@lun=0 .*serial=CARD0001`));
    assert.match(o.err('info-ambiguous'), new RegExp(`usb:${p2}@lun=0 .*serial=CARD0002`));
    assert.equal(o.rc('vidpid-ambiguous'), 2);
    assert.match(o.err('vidpid-ambiguous'), /ambiguous, 2 readers match/);

    // pstore extract through usb: equals what the kernel showed in /sys/fs/pstore, byte for byte
    const ix = o.json('extract');
    const expected = fixtureReadout('stock61-gpt');
    assert.deepEqual(ix.records.map((x: any) => x.file).sort(), [...expected.keys()].sort());
    for (const [name, want] of expected) assert.ok(r.outputs.get(`extract/${name}`)?.equals(want), `${name} differs from the kernel's readout`);

    // write + read back: the guest compared; the image file and the kernel's own view agree
    const rw = o.json('rw');
    assert.equal(rw.size, BLANK_SIZE);
    const img = await readFile(cardB);
    for (const [i, reg] of rwRegions(BLANK_SIZE).entries()) {
      assert.ok(img.subarray(reg.offset, reg.offset + reg.length).equals(Buffer.from(rwPattern(reg.length, 7, i))), `region ${i} on the image`);
    }
    assert.ok(
      img.subarray(64 * 1024, 1024 * 1024).every((x) => x === 0),
      'nothing written between the regions',
    );
    assert.ok(r.outputs.get('kernel-view')!.equals(Buffer.from(rwPattern(65536, 7, 0))), 'the kernel reads what crashcart wrote');

    // control-transfer STALL as usb@3 reports it, mapped to a stall
    const stall = o.json('stall');
    t.diagnostic(`usb@3 control STALL message (QEMU): ${stall.rawMessage}`);
    assert.equal(stall.kind, 'stall');

    // port reset: the device comes back and reads the same
    const reset = o.json('reset');
    t.diagnostic(`port reset (QEMU): address ${reset.addressBefore} → ${reset.addressAfter}`);
    assert.equal(reset.port, p2);

    // wait: timeout exit code 7 while the card stays in; --insert returns at once when present
    assert.equal(o.rc('wait-remove-timeout'), 7, o.err('wait-remove-timeout'));
    assert.match(o.err('wait-remove-timeout'), /timed out after 2\.\d s: the card was not removed/);
    const present = o.json('wait-insert-present');
    assert.equal(present.event, 'insert');
    assert.equal(present.already, true);
    assert.equal(present.slots[0].selector, `usb:${p2}@lun=0`);
    assert.equal(present.slots[0].size, BLANK_SIZE);

    // Ctrl-C and SIGTERM while crashcart holds the reader: exit 130/143, driver re-attached
    assert.equal(o.rc('sigint'), 130, o.err('sigint'));
    assert.match(o.err('sigint'), /interrupted; handing the USB reader back to the kernel driver/);
    assert.equal(o.rc('sigterm'), 143, o.err('sigterm'));
    assert.equal(o.text('drivers-at-end').trim(), 'usb-storage usb-storage');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
