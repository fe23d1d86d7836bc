// The programmable reader on the real wire (test/vm/ffs-reader.ts: a user-space USB mass-storage
// device through FunctionFS on dummy_hcd). One boot:
//  - a plain reader: the kernel's usb-storage and crashcart read the same card, byte for byte,
//  - a USB-SD-Mux: `mux host` → `wait --insert` → `flash` (verified) → `mux dut` → `mux host` →
//    `pstore extract` equal to the kernel's readout, `mux status`,
//  - reader quirk scenarios modelled on unusual_devs.h entries, each read by the kernel (with the
//    entry's flags through usb-storage.quirks) and by crashcart: where the kernel reads the card
//    correctly crashcart must too, byte for byte; where it fails crashcart fails with a typed error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { runVm } from './harness.js';
import { fixtureCmdline, fixtureDisk, fixtureReadout, outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { QUIRK_SCENARIOS } from './ffs-scenarios.js';

const FIXTURE = 'c61-lz4-wrap';
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

// ffs_start NAME VID PID SERIAL SCENARIO_FILE: a gadget whose one function is the FunctionFS
// reader; waits until the kernel has enumerated it and prints its port path.
const FFS_SH = `
ffs_modules() { for _m in configfs libcomposite usb_f_fs dummy_hcd usb_storage sd_mod; do modprobe $_m || vm_fail "modprobe $_m"; done
  [ -d /sys/kernel/config/usb_gadget ] || mount -t configfs none /sys/kernel/config; }
ffs_start() {
  G=/sys/kernel/config/usb_gadget/$1
  mkdir -p $G/strings/0x409 $G/functions/ffs.$1 $G/configs/c.1/strings/0x409
  echo 0x$2 > $G/idVendor; echo 0x$3 > $G/idProduct; echo 0x\${6:-0100} > $G/bcdDevice
  echo crashcart > $G/strings/0x409/manufacturer
  echo "\${7:-programmable reader}" > $G/strings/0x409/product
  echo $4 > $G/strings/0x409/serialnumber
  echo reader > $G/configs/c.1/strings/0x409/configuration
  mkdir -p /host/dev/ffs-$1
  mount -t functionfs $1 /host/dev/ffs-$1 || vm_fail "mount functionfs $1"
  cp "$5" /host/tmp/scenario-$1.json
  chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 UV_THREADPOOL_SIZE=8 \\
    node "$REPO/dist/test/vm/ffs-reader.js" /dev/ffs-$1 /tmp/scenario-$1.json > /tmp/ffs-$1.out 2> /out/ffs-$1.log &
  FFS_PID=$!
  vm_log "ffs $1: program started"
  _i=0; until grep -q ready /tmp/ffs-$1.out; do
    _i=$((_i + 1)); { [ $_i -lt 600 ] && kill -0 $FFS_PID 2>/dev/null; } || { cat /out/ffs-$1.log; vm_fail "ffs reader $1 not ready"; }; sleep 0.1
  done
  ln -s $G/functions/ffs.$1 $G/configs/c.1/
  ls /sys/class/udc | head -n1 > $G/UDC || vm_fail "binding $1 to the UDC failed"
  _i=0; until P=$(port_of_serial $4); do _i=$((_i + 1)); [ $_i -lt 300 ] || vm_fail "$1 not enumerated"; sleep 0.1; done
  vm_log "ffs $1: enumerated at $P at $(cut -d' ' -f1 /proc/uptime) s"
}
# ffs_stop NAME: the program writes its cards back (SIGTERM), the gadget goes away
ffs_stop() {
  G=/sys/kernel/config/usb_gadget/$1
  vm_log "ffs $1: stopping"
  # the program first (it writes its cards back and closes the endpoint files), then the UDC:
  # unbinding a FunctionFS gadget whose program still holds the endpoints does not return; closing
  # ep0 unbinds it already (the write then fails with ENODEV)
  kill $FFS_PID
  _i=0; while kill -0 $FFS_PID 2>/dev/null && [ $_i -lt 50 ]; do _i=$((_i + 1)); sleep 0.1; done
  kill -0 $FFS_PID 2>/dev/null && { vm_log "ffs $1: program still running after SIGTERM, killed"; kill -9 $FFS_PID; }
  wait $FFS_PID || true
  vm_log "ffs $1: program ended at $(cut -d' ' -f1 /proc/uptime) s"
  echo "" > $G/UDC 2>/dev/null || true
  rm -f $G/configs/c.1/ffs.$1
  rmdir $G/configs/c.1/strings/0x409 $G/configs/c.1 $G/functions/ffs.$1 $G/strings/0x409 $G
  umount /host/dev/ffs-$1; rmdir /host/dev/ffs-$1
}
# ffs_arm NAME N: SIGUSR2 arms the scenario's next event; waits until the program says it is armed
ffs_arm() { kill -USR2 $FFS_PID; _i=0; until grep -q "armed $2" /tmp/ffs-$1.out; do _i=$((_i + 1)); [ $_i -lt 100 ] || vm_fail "ffs $1: event $2 not armed"; sleep 0.1; done; vm_log "ffs $1: event $2 armed"; }
# trun NAME ARGS...: crashcart ARGS with a bound (a hang is recorded as exit 124)
trun() { _t=$1; shift; run $_t host_run timeout 90 node "$REPO/bin/crashcart" "$@"; }
# set_quirks VID:PID:FLAGS — usb-storage's quirks parameter for devices bound from now on
set_quirks() { echo "$1" > /sys/module/usb_storage/parameters/quirks; }
# kernel_read PORT NAME: the kernel's view of the card (dd of its /dev/sdX), md5 and size saved
kernel_read() {
  _rc=0; _d=; _i=0
  while [ -z "$_d" ] && [ $_i -lt 200 ]; do
    for _b in /sys/bus/usb/devices/$1:1.0/host*/target*/*:*:*:0/block/*; do [ -e "$_b" ] && _d=/dev/\${_b##*/}; done
    _i=$((_i + 1)); sleep 0.1
  done
  [ -n "$_d" ] || { echo "no kernel disk" > /out/$2.kernel.err; echo 99 > /out/$2.kernel.rc; echo none > /out/$2.kernel.md5; echo 0 > /out/$2.kernel.size; return 0; }
  timeout 120 dd if=$_d of=/tmp/k.img bs=64k 2> /out/$2.kernel.err || _rc=$?
  echo $_rc > /out/$2.kernel.rc
  md5sum /tmp/k.img | cut -d' ' -f1 > /out/$2.kernel.md5
  wc -c < /tmp/k.img | tr -d ' ' > /out/$2.kernel.size
  rm -f /tmp/k.img
}
`;

test('programmable FunctionFS reader: kernel and crashcart read alike, USB-SD-Mux round trip, quirk scenarios', async (t) => {
  const fixture = fixtureDisk(FIXTURE);
  const scenarios: Record<string, string> = {
    '/data/plain.json': JSON.stringify({ luns: ['/tmp/plain.img'] }),
    '/data/mux.json': JSON.stringify({ mux: 'classic', luns: ['/tmp/mux.img'], reader: { serial: 'MUX0001' } }),
  };
  for (const q of QUIRK_SCENARIOS) scenarios[`/data/q-${q.name}.json`] = JSON.stringify({ luns: ['/tmp/q.img', ...(q.extraLuns ?? [])], reader: q.reader, faults: q.faults });
  // card swap and write-protect switch: events the script arms (SIGUSR2) before the operation they hit
  scenarios['/data/swap.json'] = JSON.stringify({
    luns: ['/tmp/swA.img'],
    events: [
      { action: 'swap', afterBytes: 1 << 20, card: '/tmp/swB.img', storm: 4 },
      { action: 'swap', afterBytes: 256 << 10, card: '/tmp/swC.img', storm: 4 },
      { action: 'swap', afterBytes: 1 << 20, card: '/tmp/swD.img', storm: 4 },
    ],
  });
  scenarios['/data/wp.json'] = JSON.stringify({
    luns: ['/tmp/wp.img'],
    reader: { noSyncCache: true },
    events: [{ action: 'wp-on' }, { action: 'wp-off' }, { action: 'wp-on', afterBytes: 256 << 10 }, { action: 'wp-off' }],
  });
  const quirkSteps = QUIRK_SCENARIOS.map(
    (q) => `
      cp /data/card.img /host/tmp/q.img
      set_quirks ${q.kernelQuirks ?? ''}
      ffs_start q${q.name.replace(/[^a-z0-9]/g, '')} ${q.vendorId} ${q.productId} Q${q.serial} /data/q-${q.name}.json ${q.revision ?? '0100'}
      vm_log "scenario ${q.name} on $P"
      trun ${q.name}.crashcart read usb:$P -o /tmp/${q.name}.img --json
      [ -f /host/tmp/${q.name}.img ] && md5sum /host/tmp/${q.name}.img | cut -d' ' -f1 > /out/${q.name}.crashcart.md5 && rm -f /host/tmp/${q.name}.img
      _i=0; until [ "$(driver_of $P)" = usb-storage ] || [ $_i -ge 100 ]; do _i=$((_i + 1)); sleep 0.1; done
      kernel_read $P ${q.name}
      ffs_stop q${q.name.replace(/[^a-z0-9]/g, '')}`,
  ).join('\n');

  const r = await runVm({
    virtfsHostRoot: true,
    files: { '/data/card.img': fixture, ...Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [k, Buffer.from(v)])) },
    env: { REPO: repoRoot, CMDLINE: fixtureCmdline(FIXTURE) },
    timeoutMs: 900_000,
    scriptTimeoutMs: 880_000,
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
      ${quirkSteps}

      # card swap: 06/28 then a not-ready storm then the new card, mid-read, mid-flash and under the kernel
      cp /data/card.img /host/tmp/swA.img
      dd if=/data/card.img of=/host/tmp/swB.img bs=64k skip=16 count=16 2>/dev/null
      dd if=/dev/urandom of=/host/tmp/swC.img bs=64k count=24 2>/dev/null
      dd if=/data/card.img of=/host/tmp/swD.img bs=64k count=24 2>/dev/null
      dd if=/dev/urandom of=/host/tmp/swimg.img bs=64k count=16 2>/dev/null
      for _f in swA swB swC swD swimg; do md5sum /host/tmp/$_f.img | cut -d' ' -f1 > /out/$_f.md5; done
      ffs_start swap 1d6b 010d QSWAP /data/swap.json
      ffs_arm swap 1
      trun swap-read-1 read usb:$P -o /tmp/swap-1.img --json
      cp /host/tmp/swap-1.img /out/swap-1.partial 2>/dev/null || true; cp /host/tmp/swap-1.img.map /out/swap-1.map 2>/dev/null || true
      trun swap-wait-1 wait usb:$P --insert --timeout 30 --json
      trun swap-read-2 read usb:$P -o /tmp/swap-2.img --json
      md5sum /host/tmp/swap-2.img 2>/dev/null | cut -d' ' -f1 > /out/swap-read-2.md5 || true
      ffs_arm swap 2
      trun swap-flash flash /tmp/swimg.img usb:$P --yes --json
      trun swap-wait-2 wait usb:$P --insert --timeout 30 --json
      wait_driver $P
      ffs_arm swap 3
      kernel_read $P swap-k1
      _k=0; while [ $_k -lt 10 ]; do _k=$((_k + 1)); kernel_read $P swap-k2; [ "$(cat /out/swap-k2.kernel.rc)" = 0 ] && break; sleep 0.5; done
      ffs_stop swap
      md5sum /host/tmp/swC.img | cut -d' ' -f1 > /out/swC.after.md5
      grep -c "fired" /tmp/ffs-swap.out > /out/swap-fired.count || true

      # write-protect switch between and during flashes, on a reader that refuses SYNCHRONIZE CACHE
      cp /data/card.img /host/tmp/wp.img
      ffs_start wp 1d6b 010e QWP /data/wp.json
      ffs_arm wp 1
      trun wp-flash-1 flash /tmp/swimg.img usb:$P --yes --json
      wait_driver $P
      _d=; for _b in /sys/bus/usb/devices/$P:1.0/host*/target*/*:*:*:0/block/*; do [ -e "$_b" ] && _d=/dev/\${_b##*/}; done
      _rc=0; dd if=/host/tmp/swimg.img of=$_d bs=64k oflag=direct 2> /out/wp-kernel.err || _rc=$?; echo $_rc > /out/wp-kernel.rc
      ffs_arm wp 2
      ffs_arm wp 3
      trun wp-flash-2 flash /tmp/swimg.img usb:$P --yes --json
      ffs_arm wp 4
      trun wp-flash-3 flash /tmp/swimg.img usb:$P --yes --json
      ffs_stop wp
      head -c 1048576 /host/tmp/wp.img | md5sum | cut -d' ' -f1 > /out/wp-card.md5
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

  // quirk scenarios: differential against the kernel
  for (const q of QUIRK_SCENARIOS) {
    await t.test(`quirk ${q.name}: ${q.source}`, (st) => {
      const kernelOk = o.text(`${q.name}.kernel.rc`).trim() === '0' && o.text(`${q.name}.kernel.md5`).trim() === cardMd5;
      const ccRc = o.rc(`${q.name}.crashcart`);
      st.diagnostic(
        `${q.name}: kernel ${kernelOk ? 'reads the card' : `fails (rc ${o.text(`${q.name}.kernel.rc`).trim()}, ${o.text(`${q.name}.kernel.size`).trim()} bytes)`}; crashcart exit ${ccRc}`,
      );
      if (kernelOk || q.expect === 'read') {
        assert.equal(ccRc, 0, `${q.name}: crashcart must read what the kernel reads\n${o.err(`${q.name}.crashcart`)}`);
        assert.equal(o.text(`${q.name}.crashcart.md5`).trim(), cardMd5, `${q.name}: crashcart's copy differs`);
      } else {
        assert.ok([3, 6].includes(ccRc), `${q.name}: a typed failure (exit ${ccRc})\n${o.err(`${q.name}.crashcart`)}`);
      }
    });
  }

  // card swap: the operation that meets it stops with a typed error and returns no byte of another card
  await t.test('card swap with unit attention and a not-ready storm: read and flash stop, a fresh operation reads the new card, the kernel agrees', (st) => {
    const want = (n: string) => o.text(`${n}.md5`).trim();
    assert.equal(o.text('swap-fired.count').trim(), '3', 'every swap happened');
    assert.equal(o.rc('swap-read-1'), 3, `read across the swap: typed failure\n${o.err('swap-read-1')}`);
    assert.match(o.err('swap-read-1'), /medium may have changed|no card/);
    // what the interrupted read kept is the first card's bytes, nothing else
    const part = r.outputs.get('swap-1.partial');
    const map = r.outputs.get('swap-1.map');
    const a = Buffer.from(fixture);
    if (part && map) {
      for (const line of map.toString().split('\n')) {
        const m = /^0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+\+/i.exec(line);
        if (!m) continue;
        const [pos, size] = [parseInt(m[1], 16), parseInt(m[2], 16)];
        assert.ok(part.subarray(pos, pos + size).equals(a.subarray(pos, pos + size)), `finished range ${pos}+${size} holds the first card's bytes`);
      }
    }
    assert.equal(o.rc('swap-wait-1'), 0, o.err('swap-wait-1'));
    assert.equal(o.rc('swap-read-2'), 0, o.err('swap-read-2'));
    assert.equal(o.text('swap-read-2.md5').trim(), want('swB'), 'a fresh read after the swap reads the new (smaller) card');
    assert.equal(o.rc('swap-flash'), 3, `flash across the swap: typed failure\n${o.err('swap-flash')}`);
    assert.equal(o.text('swC.after.md5').trim(), want('swC'), 'nothing was written to the card swapped in mid-flash');
    const k1 = o.text('swap-k1.kernel.rc').trim();
    st.diagnostic(`kernel across the swap: rc ${k1}, ${o.text('swap-k1.kernel.size').trim()} bytes; afterwards: rc ${o.text('swap-k2.kernel.rc').trim()}`);
    assert.equal(o.text('swap-k2.kernel.md5').trim(), want('swD'), 'the kernel reads the new card afterwards, as crashcart does');
  });

  await t.test('write-protect switch: refused before writing, stopped mid-flash, works when cleared; SYNCHRONIZE CACHE refused → flash succeeds and says so', (st) => {
    assert.equal(o.rc('wp-flash-1'), 5, `switch on: exit 5\n${o.err('wp-flash-1')}`);
    assert.match(o.err('wp-flash-1'), /write-protected/);
    st.diagnostic(`kernel dd onto the locked card: rc ${o.text('wp-kernel.rc').trim()}: ${o.text('wp-kernel.err').trim().split('\n')[0]}`);
    assert.notEqual(o.text('wp-kernel.rc').trim(), '0', 'the kernel refuses the locked card too');
    assert.equal(o.rc('wp-flash-2'), 5, `switch moved mid-flash: exit 5\n${o.err('wp-flash-2')}`);
    assert.equal(o.rc('wp-flash-3'), 0, `switch off: the flash works\n${o.err('wp-flash-3')}`);
    assert.match(o.err('wp-flash-3'), /SYNCHRONIZE CACHE.*flushes are skipped/);
    assert.equal(o.text('wp-card.md5').trim(), o.text('swimg.md5').trim(), 'the card holds the image');
  });

  await t.test('slow media: no reset by either driver', () => {
    assert.doesNotMatch(o.text('ffs-qslowmedia.log'), /reset:/, 'a 2 s command is no reason to reset the reader');
  });
});
