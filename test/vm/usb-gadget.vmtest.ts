// End to end on the Linux kernel's f_mass_storage gadget over dummy_hcd (high speed): a
// kernel-written pstore card, card ejected and inserted again under `wait`, a read-only LUN,
// port reset, and a two-LUN gadget as a two-slot reader; and the labgrid driver (contrib/labgrid)
// in a real labgrid environment — Debian's python3-labgrid, its pytest plugin with
// `--lg-env env-usb.yaml`, the target, driver activation — on the same reader named by its port
// path: flash and verify a card image whose pstore partition a Linux kernel wrote, read it back,
// extract the records, wait for the card. One boot for both tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fixtureCmdline, fixtureDisk, fixtureReadout, outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { rwPattern, rwRegions } from './usb-guest.js';
import { runVm, type VmResult } from './harness.js';

const FIXTURE = 'c61-lz4-wrap';
/** The kernel-written card contrib/labgrid/tests flashes (GPT, pstore/blk on partition 2). */
const LABGRID_FIXTURE = 'stock61-gpt';
const haveLabgrid = spawnSync('/usr/bin/python3', ['-c', 'import labgrid, pytest'], { stdio: 'ignore' }).status === 0;
/**
 * The driver tests the VM runs: wait_card (a card in the reader; waiting for its removal runs into the
 * timeout, CrashcartInfrastructureError), write_image + verify, read_image, extract_pstore, the reader
 * back with usb-storage afterwards, set_mode without a mux. Each crashcart run costs 10-25 s of
 * emulated node start-up and USB binding load, so the tests whose USB side other tests here already
 * cover (`info`) or that fail before the card matters (a truncated image, a card without a pstore
 * region) run only on the image file (test/cli/labgrid-driver.test.ts).
 */
const LABGRID_SELECTION = 'not info_names_the_card and not truncated_image and not no_pstore_region';
const SLOT1_SIZE = 3 * 1024 * 1024;

// Gadget with LUNs for the files given (lun.N/file = $N+1), same identity as vm-lib.sh's.
const GADGET_SH = `
G=/sys/kernel/config/usb_gadget/crashcart
F=$G/functions/mass_storage.0
gadget_luns() {
  for _m in configfs libcomposite usb_f_mass_storage dummy_hcd usb_storage sd_mod; do modprobe $_m; done
  [ -d /sys/kernel/config/usb_gadget ] || mount -t configfs none /sys/kernel/config
  mkdir -p $G/strings/0x409 $F $G/configs/c.1/strings/0x409
  echo 0x1d6b > $G/idVendor; echo 0x0104 > $G/idProduct
  echo crashcart > $G/strings/0x409/manufacturer
  echo "test card reader" > $G/strings/0x409/product
  echo 0123456789 > $G/strings/0x409/serialnumber
  echo mass-storage > $G/configs/c.1/strings/0x409/configuration
  _l=0
  for _f in "$@"; do
    mkdir -p $F/lun.$_l
    echo 1 > $F/lun.$_l/removable
    echo "$_f" > $F/lun.$_l/file
    _l=$((_l + 1))
  done
  ln -s $F $G/configs/c.1/
  ls /sys/class/udc | head -n1 > $G/UDC
}
gadget_luns_remove() {
  echo "" > $G/UDC
  rm -f $G/configs/c.1/mass_storage.0
  for _d in $F/lun.[1-9]*; do [ -d "$_d" ] && rmdir "$_d"; done
  rmdir $G/configs/c.1/strings/0x409 $G/configs/c.1 $F $G/strings/0x409 $G
}
# eject: empty lun.N/file (forced_eject if the host had locked the medium)
eject() { echo "" > $F/lun.\${1:-0}/file 2>/dev/null || echo 1 > $F/lun.\${1:-0}/forced_eject; }
insert() { echo "$1" > $F/lun.\${2:-0}/file; }
`;

const fixture = fixtureDisk(FIXTURE);
let vm: Promise<VmResult> | undefined;
/**
 * The one boot both tests read (started by whichever runs first). A scenario that fails still hands
 * back its outputs: each test checks the part it owns (the gadget test its exit status).
 */
const boot = (): Promise<VmResult> =>
  (vm ??= runVm({
    virtfsHostRoot: true,
    files: { '/data/card.img': fixture },
    env: { REPO: repoRoot, CMDLINE: fixtureCmdline(FIXTURE), LABGRID: haveLabgrid ? '1' : '', LABGRID_SELECTION },
    timeoutMs: 960_000,
    memoryMiB: 768,
    allowFailure: true,
    script: `${USB_PRELUDE}${GADGET_SH}
      mount_hostroot
      # labgrid first (its outputs do not depend on the rest): pytest with labgrid's plugin and
      # env-usb.yaml (the reader by its port path) on a one-LUN gadget with a blank card
      if [ -n "$LABGRID" ]; then
        cut -d' ' -f1 /proc/uptime | save_text labgrid-t0
        dd if=/dev/zero of=/tmp/lg.img bs=1M count=8 2>/dev/null
        gadget_luns /tmp/lg.img
        i=0; until P=$(port_of_serial 0123456789); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "labgrid gadget missing"; sleep 0.1; done
        wait_driver $P
        run labgrid host_run env PYTHONPATH="$REPO/contrib/labgrid" PYTHONDONTWRITEBYTECODE=1 LG_READER_PORT="$P" \\
          LG_CRASHCART="$REPO/bin/crashcart" CRASHCART_REPO="$REPO" \\
          timeout 600 /usr/bin/python3 -m pytest -p no:cacheprovider -q -rs --durations=3 --basetemp /tmp/pytest -k "$LABGRID_SELECTION" \\
          "$REPO/contrib/labgrid/tests" --lg-env "$REPO/contrib/labgrid/tests/env-usb.yaml"
        cut -d' ' -f1 /proc/uptime | save_text labgrid-t1
        sha256sum /tmp/lg.img | cut -d' ' -f1 | save_text labgrid-card.sha256
        echo "$(driver_of $P)" | save_text labgrid-driver-at-end
        gadget_luns_remove
        rm /tmp/lg.img
      fi
      cp /data/card.img /tmp/card.img
      gadget_luns /tmp/card.img
      i=0; until P=$(port_of_serial 0123456789); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "gadget missing"; sleep 0.1; done
      echo "$P" | save_text port
      wait_driver $P; kernel_disk $P > /dev/null
      SEL=usb:1d6b:0104

      run list-json cc list --json
      run info-json cc info usb --json
      run extract cc pstore extract $SEL -o /tmp/x --json --cmdline "$CMDLINE"
      mkdir -p /out/extract && cp /host/tmp/x/* /out/extract/

      run rw guest rw $SEL 11
      save_file /tmp/card.img card-after-rw.img
      run reset guest reset usb:$P
      run stall guest stall $SEL

      # card ejected while wait --remove polls, then inserted while wait --insert polls
      wait_driver $P
      bg wait-remove wait $SEL --remove --timeout 90 --json
      wait_detached $P
      sleep 1
      eject
      bg_wait wait-remove
      run info-empty cc info $SEL
      run wait-insert-timeout cc wait $SEL --insert --timeout 3
      bg wait-insert wait $SEL --insert --timeout 90 --json
      wait_detached $P
      sleep 1
      insert /tmp/card.img
      bg_wait wait-insert

      # read-only medium: reported, and writes refused
      eject; echo 1 > $F/lun.0/ro; insert /tmp/card.img
      md5sum /tmp/card.img | cut -d' ' -f1 | save_text ro-before.md5
      run ro-list cc list --json
      run ro-info cc info $SEL --json
      run ro-format cc pstore format $SEL --yes --discard-records
      run ro-write guest write-nowp $SEL
      md5sum /tmp/card.img | cut -d' ' -f1 | save_text ro-after.md5
      eject; echo 0 > $F/lun.0/ro

      # two-LUN gadget: a two-slot reader
      wait_driver $P
      gadget_luns_remove
      dd if=/dev/zero of=/tmp/slot1.img bs=1M count=3 2>/dev/null
      gadget_luns /tmp/card.img /tmp/slot1.img
      i=0; until P=$(port_of_serial 0123456789); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "two-LUN gadget missing"; sleep 0.1; done
      echo "$P" | save_text port2
      wait_driver $P; kernel_disk $P 1 > /dev/null
      md5sum /tmp/card.img | cut -d' ' -f1 | save_text slot0-before.md5
      run two-list cc list --json
      run two-ambiguous cc info usb
      run two-reader-ambiguous cc info $SEL
      run two-rw guest rw $SEL@lun=1 5
      md5sum /tmp/card.img | cut -d' ' -f1 | save_text slot0-after.md5
      save_file /tmp/slot1.img slot1-after-rw.img
      eject 0
      run two-only-card cc info usb --json
      run two-wait-slot0 cc wait $SEL@lun=0 --insert --timeout 0
      run two-wait-slot1 cc wait $SEL@lun=1 --insert --timeout 0 --json
      wait_driver $P
      echo "$(driver_of $P)" | save_text driver-at-end
    `,
  }));

test('f_mass_storage gadget: pstore extract, write/read back, eject/insert under wait, read-only LUN, port reset, two-slot reader', async (t) => {
  const r = await boot();
  t.diagnostic(`VM run: ${(r.durationMs / 1000).toFixed(1)} s`);
  assert.equal(r.exitStatus, 0, `the scenario failed (exit ${r.exitStatus}${r.exitStatus === 124 ? ': watchdog' : ''})\n${r.scriptLog.slice(-4000)}`);
  const o = outputs(r);
  const port = o.text('port').trim();

  // list: the gadget's identity, one slot with the card, and the power-on 06/29 absorbed
  const list = o.json<{ readers: any[] }>('list-json');
  assert.equal(list.readers.length, 1);
  const g = list.readers[0];
  assert.deepEqual(
    { sel: g.selector, id: g.id, serial: g.serial, product: g.product, manufacturer: g.manufacturer, speed: g.speed, driver: g.driver },
    { sel: `usb:${port}`, id: '1d6b:0104', serial: '0123456789', product: 'test card reader', manufacturer: 'crashcart', speed: 'high', driver: 'usb-storage' },
  );
  assert.equal(g.slots.length, 1);
  assert.deepEqual(
    { present: g.slots[0].present, size: g.slots[0].size, wp: g.slots[0].writeProtected, removable: g.slots[0].removable },
    { present: true, size: fixture.length, wp: false, removable: true },
  );

  // info through the bare selector (the only card): whole-device pstore region
  const info = o.json('info-json');
  assert.equal(info.device, `usb:${port}@lun=0`);
  assert.equal(info.size, fixture.length);
  assert.equal(info.partitionTable, null);
  assert.equal(info.pstore.found, true);
  assert.ok(info.pstore.signatures.byType.dmesg >= 3, JSON.stringify(info.pstore));

  // pstore extract through the gadget equals the kernel's readout byte for byte
  const ix = o.json('extract');
  const expected = fixtureReadout(FIXTURE);
  assert.deepEqual(ix.records.map((x: any) => x.file).sort(), [...expected.keys()].sort());
  for (const [name, want] of expected) assert.ok(r.outputs.get(`extract/${name}`)?.equals(want), `${name} differs from the kernel's readout`);

  // write + read back; the backing file holds exactly the patterns
  o.json('rw');
  const card = r.outputs.get('card-after-rw.img')!;
  assert.equal(card.length, fixture.length);
  for (const [i, reg] of rwRegions(fixture.length).entries()) {
    assert.ok(card.subarray(reg.offset, reg.offset + reg.length).equals(Buffer.from(rwPattern(reg.length, 11, i))), `region ${i} in the backing file`);
  }
  assert.ok(card.subarray(64 * 1024, 1024 * 1024).equals(fixture.subarray(64 * 1024, 1024 * 1024)), 'bytes between the regions untouched');

  const reset = o.json('reset');
  t.diagnostic(`port reset (gadget): address ${reset.addressBefore} → ${reset.addressAfter}`);
  const stall = o.json('stall');
  t.diagnostic(`usb@3 control STALL message (gadget): ${stall.rawMessage}`);
  assert.equal(stall.kind, 'stall');

  // eject → wait --remove sees it; empty slot; insert → wait --insert sees it
  const removed = o.json('wait-remove');
  assert.equal(removed.event, 'remove');
  assert.equal(removed.already, false);
  assert.deepEqual(
    removed.slots.map((s: any) => s.selector),
    [`usb:${port}@lun=0`],
  );
  assert.equal(o.rc('info-empty'), 3);
  assert.match(o.err('info-empty'), /no card in the slot/);
  assert.equal(o.rc('wait-insert-timeout'), 7);
  assert.match(o.err('wait-insert-timeout'), /no card was inserted in usb:1d6b:0104 \(usb:[\d.-]+@lun=0 is empty\)/);
  const inserted = o.json('wait-insert');
  assert.equal(inserted.already, false);
  assert.equal(inserted.slots[0].size, fixture.length);

  // ro=1: write-protected in list and info, format refused with exit 5, the card refuses a write itself
  const roList = o.json<{ readers: any[] }>('ro-list');
  assert.equal(roList.readers[0].slots[0].writeProtected, true);
  assert.equal(o.json('ro-info').writeProtected, true);
  assert.equal(o.rc('ro-format'), 5, o.err('ro-format'));
  assert.match(o.err('ro-format'), /write-protected/);
  const roWrite = o.json('ro-write');
  assert.equal(roWrite.exitCode, 5);
  assert.match(roWrite.message, /write-protected.*\(7\/27\/0\d\)/i);
  assert.equal(o.text('ro-after.md5'), o.text('ro-before.md5'), 'the read-only card was not changed');

  // two LUNs: a two-slot reader
  const two = o.json<{ readers: any[] }>('two-list');
  assert.equal(two.readers.length, 1);
  assert.deepEqual(
    two.readers[0].slots.map((s: any) => [s.selector.replace(/^usb:[\d.-]+/, ''), s.present, s.size]),
    [
      ['@lun=0', true, fixture.length],
      ['@lun=1', true, SLOT1_SIZE],
    ],
  );
  assert.equal(o.rc('two-ambiguous'), 2);
  assert.match(o.err('two-ambiguous'), /usb is ambiguous, 2 cards are present/);
  assert.equal(o.rc('two-reader-ambiguous'), 2);
  assert.match(o.err('two-reader-ambiguous'), /the reader holds 2 cards[\s\S]*@lun=0[\s\S]*@lun=1[\s\S]*add @lun=N/);
  o.json('two-rw');
  assert.equal(o.text('slot0-after.md5'), o.text('slot0-before.md5'), 'writing slot 1 left slot 0 alone');
  const slot1 = r.outputs.get('slot1-after-rw.img')!;
  for (const [i, reg] of rwRegions(SLOT1_SIZE).entries()) {
    assert.ok(slot1.subarray(reg.offset, reg.offset + reg.length).equals(Buffer.from(rwPattern(reg.length, 5, i))), `slot 1 region ${i}`);
  }
  const only = o.json('two-only-card');
  assert.match(only.device, /@lun=1$/);
  assert.equal(only.size, SLOT1_SIZE);
  assert.equal(o.rc('two-wait-slot0'), 7);
  assert.equal(o.json('two-wait-slot1').already, true);
  assert.equal(o.text('driver-at-end').trim(), 'usb-storage');
});

test(
  'labgrid: CrashcartDriver through the labgrid pytest plugin on the gadget reader (flash + verify, read back, pstore extract, wait_card)',
  { skip: haveLabgrid ? false : 'python3-labgrid or python3-pytest is not installed on the host' },
  async (t) => {
    const r = await boot();
    const o = outputs(r);
    t.diagnostic(`labgrid section: ${(Number(o.text('labgrid-t1')) - Number(o.text('labgrid-t0'))).toFixed(1)} s of the VM run`);
    const out = o.ok('labgrid');
    t.diagnostic(out.trim().split('\n').at(-1) ?? '');
    for (const slow of out.match(/^[\d.]+s call .*$/gm) ?? []) t.diagnostic(slow);
    // wait_card (insert; remove running into its timeout as CrashcartInfrastructureError), flash + verify
    // + read back + extract against the kernel's readout, usb-storage bound again after the calls,
    // set_mode refused without a mux resource
    assert.match(out, /\b4 passed, 3 deselected\b/, `${out}\n${o.err('labgrid')}`);
    assert.doesNotMatch(out, /skipped|failed|error/i, out);
    // what the driver's write_image left on the card, read from the gadget's backing file: the image
    assert.equal(o.text('labgrid-driver-at-end').trim(), 'usb-storage');
    const image = fixtureDisk(LABGRID_FIXTURE);
    assert.equal(o.text('labgrid-card.sha256').trim(), createHash('sha256').update(image).digest('hex'), 'the card holds the flashed image');
  },
);
