// The programmable reader on the real wire (test/vm/ffs-reader.ts: a user-space USB mass-storage
// device through FunctionFS on dummy_hcd). One boot:
//  - a plain reader: the kernel's usb-storage and crashcart read the same card, byte for byte,
//  - reconnect: the reader unplugged mid-transfer (its host port powered off, on again after 2 s:
//    it re-enumerates at a new address): crashcart's flash and read finish with the card equal to the image, an unplug
//    that never comes back ends with exit 3; the kernel's dd onto /dev/sdX in the same situation is
//    recorded as the differential,
//  - a USB-SD-Mux: `mux host` → `wait --insert` → `flash` (verified) → `mux dut` → `mux host` →
//    `pstore extract` equal to the kernel's readout, `mux status`,
//  - an SDWire (the FTDI FT200XD's vendor interface beside the reader, one composite device):
//    `mux host` → `wait --insert` → `mux dut` → `wait --remove`, `mux status`, `mux off` refused, and
//    sdwire-cli's switching over pyftdi (scripts/sdwire-reference.py): the emulator logs every
//    vendor request each program sends, compared byte for byte.
// The reader quirk scenarios, card swap and write-protect switch boot on their own:
// usb-ffs-quirks.vmtest.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { runVm } from './harness.js';
import { fixtureCmdline, fixtureDisk, fixtureReadout, outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { FFS_SH } from './ffs-lib.js';
import { pinRequests, type ControlRecord } from '../sim/sim-sdwire.js';

const FIXTURE = 'c61-lz4-wrap';
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

// ---- reconnect: the reader unplugged mid-transfer ---------------------------------------------
// The unplug is the host port's power switched off and on again (the port's sysfs `disable`): the
// reader loses VBUS as when its cable is pulled, the host sees a disconnect and then a new device at a
// new address. Not used: unbinding the gadget from the UDC (echo "" > UDC) does not return while the
// FunctionFS program holds its endpoints (see ffs_stop), and after the UDC's soft_connect
// "disconnect"/"connect" dummy_hcd's device no longer answers its address (descriptor read error -71).
// rc_when PROG waits until PROG's --json progress shows 1 MB done. Sizes are small (an 8 MiB image, a
// 12 MiB card): the FunctionFS reader moves well under 1 MB/s in the TCG guest.
const RECONNECT_SH = `
rc_port() { RC_PORT=$(readlink -f /sys/bus/usb/devices/$P/port); [ -f "$RC_PORT/disable" ] || vm_fail "rc: no port disable attribute for $P"; }
rc_unplug() { echo 1 > $RC_PORT/disable; vm_log "rc: unplugged at $(cut -d' ' -f1 /proc/uptime) s"; }
rc_replug() {
  echo 0 > $RC_PORT/disable
  _i=0; until port_of_serial RC0001 > /dev/null; do _i=$((_i + 1)); [ $_i -lt 300 ] || { vm_log "rc: not enumerated again"; return 1; }; sleep 0.1; done
  vm_log "rc: plugged in again at $(cut -d' ' -f1 /proc/uptime) s, address $(cat /sys/bus/usb/devices/$(port_of_serial RC0001)/devnum)"
}
rc_when() {
  _i=0
  until grep -Eq '"bytes":[0-9]{7,}' /out/$1.out 2>/dev/null; do
    _i=$((_i + 1)); { [ $_i -lt 1200 ] && kill -0 $BG_PID 2>/dev/null; } || { vm_log "rc: $1 never reached 1 MB"; return 1; }; sleep 0.05
  done
}
# rc_wait NAME: bg_wait with a bound (a hang is killed and recorded as such)
rc_wait() { ( sleep 150; kill $BG_PID 2>/dev/null && echo hang > /out/$1.hang ) & _wd=$!; bg_wait $1; kill $_wd 2>/dev/null || true; }
# rc_card NAME: the program writes its card back (it says "saved"); sha256 of the first 8 MiB and of all of it
rc_card() {
  ffs_save rc
  head -c 8388608 /host/tmp/rc.img | sha256sum | cut -d' ' -f1 | save_text $1.image-part.sha256
  sha256sum /host/tmp/rc.img | cut -d' ' -f1 | save_text $1.sha256
}
`;
const RECONNECT_STEPS = `
      head -c 8388608 /dev/urandom > /host/tmp/rc-image.img
      sha256sum /host/tmp/rc-image.img | cut -d' ' -f1 | save_text rc-image.sha256
      dd if=/dev/zero of=/host/tmp/rc.img bs=1M count=12 2>/dev/null
      ffs_start rc 1d6b 0106 RC0001 /data/rc.json
      rc_port
      rc_steps() {
        wait_driver $P
        # the kernel's usb-storage: dd onto its disk, unplugged a second in, back 2 s later
        _d=$(kernel_disk $P); echo "$_d" | save_text rc-kernel.disk
        ( _rc=0; timeout 60 dd if=/host/tmp/rc-image.img of=$_d bs=64k oflag=direct 2> /out/rc-kernel.err || _rc=$?; echo $_rc > /out/rc-kernel.rc ) &
        _dd=$!
        sleep 1; rc_unplug; sleep 2; rc_replug || return 1; wait $_dd
        wait_driver $P; kernel_disk $P | save_text rc-kernel.disk-after; vm_log "rc: kernel dd exit $(cat /out/rc-kernel.rc)"
        rc_card rc-kernel-card
        # crashcart flash: unplugged at 1 MB, back 2 s later
        bg rc-flash flash /tmp/rc-image.img usb:$P --yes --json --no-bmap
        rc_when rc-flash && { rc_unplug; sleep 2; rc_replug; }
        rc_wait rc-flash
        rc_card rc-flash-card
        # crashcart read: the same
        bg rc-read read usb:$P -o /tmp/rc-read.img --json
        rc_when rc-read && { rc_unplug; sleep 2; rc_replug; }
        rc_wait rc-read
        sha256sum /host/tmp/rc-read.img | cut -d' ' -f1 | save_text rc-read.sha256
        rm -f /host/tmp/rc-read.img /host/tmp/rc-read.img.map
        # an unplug that never comes back: exit 3 once --reconnect-timeout is over
        bg rc-gone flash /tmp/rc-image.img usb:$P --yes --json --no-bmap --reconnect-timeout 5
        rc_when rc-gone && rc_unplug
        rc_wait rc-gone
        rc_replug
      }
      rc_steps || vm_log "rc: stopped early"
      ffs_stop rc
      rm -f /host/tmp/rc.img /host/tmp/rc-image.img
`;
// ---- end of reconnect --------------------------------------------------------------------------

test('programmable FunctionFS reader: kernel and crashcart read alike, reconnect after an unplug, USB-SD-Mux and SDWire round trips', async (t) => {
  const fixture = fixtureDisk(FIXTURE);
  const scenarios: Record<string, string> = {
    '/data/plain.json': JSON.stringify({ luns: ['/tmp/plain.img'] }),
    '/data/mux.json': JSON.stringify({ mux: 'classic', luns: ['/tmp/mux.img'], reader: { serial: 'MUX0001' } }),
    '/data/rc.json': JSON.stringify({ luns: ['/tmp/rc.img'], reader: { serial: 'RC0001' } }),
    '/data/sdwire.json': JSON.stringify({ mux: 'sdwire', luns: ['/tmp/sdw.img'], controlLog: '/tmp/ftdi.log' }),
  };

  const r = await runVm({
    virtfsHostRoot: true,
    files: { '/data/card.img': fixture, ...Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [k, Buffer.from(v)])) },
    env: { REPO: repoRoot, CMDLINE: fixtureCmdline(FIXTURE) },
    // the reconnect block takes about 1.5 min, the SDWire one about 1.5 min, under load
    timeoutMs: 720_000,
    scriptTimeoutMs: 700_000,
    memoryMiB: 768,
    script: `${USB_PRELUDE}${FFS_SH}${RECONNECT_SH}
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

      # reconnect: the reader unplugged mid-transfer and plugged in again
      ${RECONNECT_STEPS}

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

      # SDWire: crashcart, then sdwire-cli's logic over pyftdi; each command's vendor requests as the
      # emulated FT200XD received them go to NAME.ftdi
      cp /data/card.img /host/tmp/sdw.img
      ffs_start sdw 04e8 6001 sdw-1 /data/sdwire.json 1000 sd-wire
      echo "$P" | save_text sdw-port
      ftdi() { _f=$1; shift; : > /host/tmp/ftdi.log; "$@"; cp /host/tmp/ftdi.log /out/$_f.ftdi; }
      ftdi sdw-host trun sdw-host mux usb:serial=sdw-1 host --json
      trun sdw-wait wait usb:$P --insert --timeout 30 --json
      ftdi sdw-status-1 trun sdw-status-1 mux usb status --json
      ftdi sdw-dut trun sdw-dut mux usb:04e8:6001 dut --json
      trun sdw-wait-dut wait usb:$P --remove --timeout 10
      ftdi sdw-status-2 trun sdw-status-2 mux usb status --json
      ftdi sdw-off trun sdw-off mux usb off
      ftdi py run py host_run timeout 60 /usr/bin/python3 "$REPO/scripts/sdwire-reference.py" ts status dut status
      ffs_stop sdw
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

  // ---- reconnect -------------------------------------------------------------------------------
  await t.test('reconnect: unplugged mid-flash and mid-read, back at a new address → crashcart finishes; never back → exit 3; the kernel fails the I/O', (st) => {
    const image = o.text('rc-image.sha256').trim();
    const kernelRc = o.text('rc-kernel.rc').trim();
    const kernelCardOk = o.text('rc-kernel-card.image-part.sha256').trim() === image;
    st.diagnostic(
      `kernel usb-storage, dd to ${o.text('rc-kernel.disk').trim()} unplugged 1 s in: dd exit ${kernelRc} (${o.text('rc-kernel.err').trim().split('\n').slice(0, 3).join(' | ')}); ` +
        `after the replug the disk is ${o.text('rc-kernel.disk-after').trim()}; the card ${kernelCardOk ? 'holds' : 'does not hold'} the image`,
    );
    const events = (name: string) =>
      o
        .out(name)
        .split('\n')
        .filter((l) => l.includes('"reader-'))
        .map((l) => JSON.parse(l));
    for (const name of ['rc-flash', 'rc-read']) {
      assert.ok(!r.outputs.has(`${name}.hang`), `${name} hung`);
      o.json(name);
      const ev = events(name);
      st.diagnostic(`${name}: ${ev.map((e) => `${e.type} ${e.port} address ${e.address}${e.afterMs !== undefined ? ` after ${e.afterMs} ms` : ''}`).join('; ')}`);
      assert.deepEqual(
        ev.map((e) => e.type),
        ['reader-gone', 'reader-back'],
        `${name}: the reader left and came back\n${o.err(name)}`,
      );
      assert.equal(ev[1].port, ev[0].port, 'back on the same port');
      assert.notEqual(ev[1].address, ev[0].address, 'at a new address');
    }
    assert.equal(o.text('rc-flash-card.image-part.sha256').trim(), image, 'after the interrupted flash the card holds the image');
    assert.equal(o.text('rc-read.sha256').trim(), o.text('rc-flash-card.sha256').trim(), 'the interrupted read equals the card');
    assert.ok(!r.outputs.has('rc-gone.hang'), 'the unplug that never came back did not hang');
    // a failing --json command ends with its error object: the summary is the line before
    const gone = o
      .ok('rc-gone', 3)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((l) => l.type === 'summary');
    assert.equal(gone.targets[0].error.name, 'DeviceGoneDuringFlashError');
    assert.match(gone.targets[0].error.message, /did not come back within 5\.0 s/);
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

  await t.test('SDWire: host, wait, dut, wait, status; the same vendor requests as sdwire-cli over pyftdi', () => {
    const log = (name: string): ControlRecord[] =>
      o
        .text(`${name}.ftdi`)
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ControlRecord);
    const port = o.text('sdw-port').trim();
    const host = o.json('sdw-host');
    assert.deepEqual({ mode: host.mode, variant: host.variant, id: host.id, reader: host.reader }, { mode: 'host', variant: 'sdwire', id: '04e8:6001', reader: `usb:${port}` });
    assert.equal(o.json('sdw-wait').event, 'insert');
    assert.equal(o.json('sdw-status-1').mode, 'host');
    assert.equal(o.json('sdw-dut').mode, 'dut');
    o.ok('sdw-wait-dut');
    assert.equal(o.json('sdw-status-2').mode, 'dut');
    assert.match(o.ok('sdw-off', 2) + o.err('sdw-off'), /no off position/);
    assert.deepEqual(log('sdw-off'), [], 'mux off sends nothing');
    // what crashcart sent, on the wire
    const SET = (wValue: number) => ({ bmRequestType: 0x40, bRequest: 0x0b, wValue, wIndex: 1, wLength: 0, data: '' });
    const READ_PINS = { bmRequestType: 0xc0, bRequest: 0x0c, wValue: 0, wIndex: 1, wLength: 1, data: '' };
    assert.deepEqual(log('sdw-host'), [SET(0x20f1)]);
    assert.deepEqual(log('sdw-dut'), [SET(0x20f0)]);
    for (const s of ['sdw-status-1', 'sdw-status-2']) assert.deepEqual(log(s), [READ_PINS], s);
    // the reference, one pyftdi session per action (ts status dut status): the same pin requests
    // inside pyftdi's housekeeping, and the same positions read back
    const py = log('py');
    assert.equal(py.filter((r) => r.bRequest === 0 && r.wValue === 1).length, 4, 'four pyftdi sessions (each opens with a purge)');
    assert.deepEqual(pinRequests(py), [...log('sdw-host'), ...log('sdw-status-1'), ...log('sdw-dut'), ...log('sdw-status-2')], 'pyftdi and crashcart, request for request');
    assert.deepEqual(JSON.parse(o.ok('py')).status, ['ts', 'dut']);
    t.diagnostic(
      `pyftdi session: ${py
        .slice(0, 8)
        .map((r) => `${r.bmRequestType.toString(16)}/${r.bRequest.toString(16)}/${r.wValue.toString(16)}`)
        .join(' ')}`,
    );
  });
});
