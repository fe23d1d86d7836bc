// Misbehaving readers on the real wire (test/vm/ffs-reader.ts on dummy_hcd, the guest side in
// ffs-lib.ts). One boot:
//  - reader quirk scenarios (ffs-scenarios.ts) modelled on unusual_devs.h entries, each read by the
//    kernel (with the entry's flags through usb-storage.quirks) and by crashcart: where the kernel
//    reads the card correctly crashcart must too, byte for byte; where it fails crashcart fails
//    with a typed error,
//  - a card swap (06/28, a not-ready storm, another card) mid-read, mid-flash and under the kernel,
//  - the write-protect switch before and during flashes, on a reader that refuses SYNCHRONIZE CACHE.
// The plain reader and the USB-SD-Mux round trip are usb-ffs.vmtest.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadVmEnv, runVm } from './harness.js';
import { fixtureDisk, outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { FFS_SH } from './ffs-lib.js';
import { QUIRK_SCENARIOS, type QuirkScenario } from './ffs-scenarios.js';

// the card every reader serves: a kernel-written pstore disk (2 MiB), any data would do
const FIXTURE = 'c61-lz4-wrap';
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const gadgetName = (name: string) => `q${name.replace(/[^a-z0-9]/g, '')}`;

test('programmable FunctionFS reader: quirk scenarios against the kernel, card swap, write-protect switch', async (t) => {
  const fixture = fixtureDisk(FIXTURE);
  const scenarios: Record<string, string> = {};
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
  // usbmon is not in the initramfs: loaded from the provisioned kernel's modules over the host root
  const env = loadVmEnv();
  const usbmonKo = join(env.kernelRoot, 'lib/modules', env.kernelRelease, 'kernel/drivers/usb/mon/usbmon.ko');
  // a read scenario: crashcart's copy of the card, then the kernel's
  const readSteps = (q: QuirkScenario) => `
      trun ${q.name}.crashcart read usb:$P -o /tmp/${q.name}.img --json
      [ -f /host/tmp/${q.name}.img ] && md5sum /host/tmp/${q.name}.img | cut -d' ' -f1 > /out/${q.name}.crashcart.md5 && rm -f /host/tmp/${q.name}.img
      _i=0; until [ "$(driver_of $P)" = usb-storage ] || [ $_i -ge 100 ]; do _i=$((_i + 1)); sleep 0.1; done
      ${q.kernel === false ? '' : `kernel_read $P ${q.name}`}
      ffs_stop ${gadgetName(q.name)}`;
  // a write scenario: crashcart flashes w1 (verified), the card is saved; the kernel writes w2; the
  // card then: NAME.{crashcart,kernel}.card.md5 against NAME.{w1,w2}.md5
  const writeSteps = (q: QuirkScenario) => `
      for _w in w1 w2; do head -c $(wc -c < /data/card.img) /dev/urandom > /host/tmp/q-$_w.img; md5sum /host/tmp/q-$_w.img | cut -d' ' -f1 > /out/${q.name}.$_w.md5; done
      trun ${q.name}.crashcart flash /tmp/q-w1.img usb:$P --yes --json --no-bmap
      ffs_save ${gadgetName(q.name)}
      md5sum /host/tmp/q.img | cut -d' ' -f1 > /out/${q.name}.crashcart.card.md5
      _i=0; until [ "$(driver_of $P)" = usb-storage ] || [ $_i -ge 100 ]; do _i=$((_i + 1)); sleep 0.1; done
      kernel_write $P ${q.name} /host/tmp/q-w2.img
      ffs_stop ${gadgetName(q.name)}
      md5sum /host/tmp/q.img | cut -d' ' -f1 > /out/${q.name}.kernel.card.md5
      rm -f /host/tmp/q-w1.img /host/tmp/q-w2.img`;
  const quirkSteps = QUIRK_SCENARIOS.map(
    (q) => `
      cp /data/card.img /host/tmp/q.img
      set_quirks ${q.kernelQuirks ?? ''}
      ${q.usbmonStatus !== undefined ? `usbmon_start ${q.name}` : ''}
      ffs_start ${gadgetName(q.name)} ${q.vendorId} ${q.productId} Q${q.serial} /data/q-${q.name}.json ${q.revision ?? '0100'}
      vm_log "scenario ${q.name} on $P"
      ${q.write ? writeSteps(q) : readSteps(q)}
      ${q.usbmonStatus !== undefined ? 'usbmon_stop' : ''}`,
  ).join('\n');

  const r = await runVm({
    virtfsHostRoot: true,
    files: { '/data/card.img': fixture, ...Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [k, Buffer.from(v)])) },
    env: { REPO: repoRoot, USBMON_KO: existsSync(usbmonKo) ? usbmonKo : '' },
    timeoutMs: 900_000,
    scriptTimeoutMs: 880_000,
    memoryMiB: 768,
    script: `${USB_PRELUDE}${FFS_SH}
      # usbmon_start NAME / usbmon_stop: the bus in usbmon's text format → NAME.usbmon
      usbmon_start() {
        [ -n "$USBMON_KO" ] || return 0
        grep -q '^usbmon ' /proc/modules || insmod "/host$USBMON_KO" || vm_fail "insmod usbmon"
        [ -d /sys/kernel/debug/usb ] || mount -t debugfs none /sys/kernel/debug
        cat /sys/kernel/debug/usb/usbmon/0u > /out/$1.usbmon & USBMON_PID=$!
      }
      usbmon_stop() { [ -z "$USBMON_KO" ] || { kill $USBMON_PID; wait $USBMON_PID || true; }; }
      mount_hostroot
      ffs_modules
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
      _d=$(kernel_disk $P)
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

  // quirk scenarios: differential against the kernel
  for (const q of QUIRK_SCENARIOS) {
    await t.test(`quirk ${q.name}: ${q.source}`, (st) => {
      const want = q.write ? (w: 'w1' | 'w2') => o.text(`${q.name}.${w}.md5`).trim() : () => cardMd5;
      const kernelOk =
        q.kernel !== false && o.text(`${q.name}.kernel.rc`).trim() === '0' && o.text(q.write ? `${q.name}.kernel.card.md5` : `${q.name}.kernel.md5`).trim() === want('w2');
      const ccRc = o.rc(`${q.name}.crashcart`);
      const kernelSays =
        q.kernel === false
          ? 'not taken in this run'
          : kernelOk
            ? q.write
              ? 'writes the card'
              : 'reads the card'
            : `fails (rc ${o.text(`${q.name}.kernel.rc`).trim()}${q.write ? '' : `, ${o.text(`${q.name}.kernel.size`).trim()} bytes`})`;
      st.diagnostic(`${q.name}: kernel ${kernelSays}; crashcart exit ${ccRc}`);
      const readerLog = r.outputs.get(`ffs-${gadgetName(q.name)}.log`)?.toString() ?? '';
      for (const l of readerLog.split('\n').filter((x) => /babble|reset:/.test(x))) st.diagnostic(`${q.name}: ${l}`);
      if (q.usbmonStatus !== undefined) {
        if (!r.outputs.has(`${q.name}.usbmon`)) st.skip(`usbmon.ko missing from the provisioned kernel (${usbmonKo})`);
        else {
          // completions on a bulk-IN pipe with that status: "… C Bi:BUS:DEV:EP STATUS LENGTH …"
          const ends = o
            .text(`${q.name}.usbmon`)
            .split('\n')
            .filter((l) => new RegExp(` C Bi:\\d+:\\d+:\\d+ ${q.usbmonStatus} `).test(l));
          st.diagnostic(
            `${q.name}: bulk-IN transfers ended with ${q.usbmonStatus}: ${ends.length}${ends.length ? ` (${ends.map((l) => l.split(' ').slice(3, 6).join(' ')).join('; ')})` : ''}`,
          );
          assert.ok(ends.length > 0, `${q.name}: no bulk-IN transfer ended with status ${q.usbmonStatus} on the bus`);
        }
      }
      if (q.write && kernelOk) {
        assert.equal(ccRc, 0, `${q.name}: crashcart must write what the kernel writes\n${o.err(`${q.name}.crashcart`)}`);
        assert.equal(o.text(`${q.name}.crashcart.card.md5`).trim(), want('w1'), `${q.name}: the card does not hold what crashcart wrote`);
      } else if (q.write) {
        assert.ok(ccRc === 0 || [3, 6].includes(ccRc), `${q.name}: crashcart succeeds or fails typed (exit ${ccRc})`);
        if (ccRc === 0) assert.equal(o.text(`${q.name}.crashcart.card.md5`).trim(), want('w1'), `${q.name}: crashcart said verified but the card differs`);
      } else if (kernelOk || q.expect === 'read') {
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
    // the slot's medium change is a card that went away: what came back is checked and is another card
    assert.equal(o.rc('swap-read-1'), 13, `read across the swap: CardChangedError\n${o.err('swap-read-1')}`);
    assert.match(o.err('swap-read-1'), /a different card/);
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
    assert.equal(o.rc('swap-flash'), 13, `flash across the swap: CardChangedError\n${o.err('swap-flash')}`);
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
    assert.match(o.text('wp-kernel.err'), /'\/dev\/sd[a-z]+': Read-only file system/, 'refused by the kernel as read-only, on its disk');
    assert.equal(o.rc('wp-flash-2'), 5, `switch moved mid-flash: exit 5\n${o.err('wp-flash-2')}`);
    assert.equal(o.rc('wp-flash-3'), 0, `switch off: the flash works\n${o.err('wp-flash-3')}`);
    assert.match(o.err('wp-flash-3'), /SYNCHRONIZE CACHE.*flushes are skipped/);
    assert.equal(o.text('wp-card.md5').trim(), o.text('swimg.md5').trim(), 'the card holds the image');
  });
});
