// The labgrid driver (contrib/labgrid) end to end in a real labgrid environment (Debian's
// python3-labgrid, environment YAML, target, driver activation, the labgrid pytest plugin) driving
// the kernel's f_mass_storage gadget reader named by its USB port path: flash and verify a card image
// whose pstore partition a Linux kernel wrote, read it back, extract the records as the kernel showed
// them, each fault class as its labgrid exception, and the reader back with usb-storage after every
// call. The pytest run is contrib/labgrid/tests with env-usb.yaml. Then `list --json --watch` sees
// the card ejected and inserted and ends on SIGINT. One boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';
import { runVm } from './harness.js';
import { assertNdjson } from '../helpers/contract.js';

test('labgrid: CrashcartDriver on the gadget reader through the labgrid pytest plugin', async (t) => {
  const r = await runVm({
    virtfsHostRoot: true,
    env: { REPO: repoRoot },
    timeoutMs: 420_000,
    memoryMiB: 768,
    script: `${USB_PRELUDE}
      mount_hostroot
      dd if=/dev/zero of=/tmp/card.img bs=1M count=16 2>/dev/null
      gadget_mass_storage /tmp/card.img > /dev/null
      i=0; until P=$(port_of_serial 0123456789); do i=$((i + 1)); [ $i -lt 300 ] || vm_fail "gadget missing"; sleep 0.1; done
      echo "$P" | save_text port
      wait_driver $P; kernel_disk $P > /dev/null
      run pytest host_run env PYTHONPATH="$REPO/contrib/labgrid" PYTHONDONTWRITEBYTECODE=1 LG_READER_PORT="$P" \\
        LG_CRASHCART="$REPO/bin/crashcart" CRASHCART_REPO="$REPO" \\
        /usr/bin/python3 -m pytest -p no:cacheprovider -q -rs --basetemp /tmp/pytest \\
        "$REPO/contrib/labgrid/tests" --lg-env "$REPO/contrib/labgrid/tests/env-usb.yaml"
      echo "$(driver_of $P)" | save_text driver-at-end

      # list --watch: the card ejected and inserted again, then SIGINT ends the watch cleanly
      LUN=/sys/kernel/config/usb_gadget/crashcart/functions/mass_storage.0/lun.0
      bg watch list --json --watch --interval 0.5
      i=0; until grep -q '"type":"synced"' /out/watch.out 2>/dev/null; do i=$((i + 1)); [ $i -lt 1200 ] || vm_fail "no synced event"; sleep 0.1; done
      echo "" > $LUN/file 2>/dev/null || echo 1 > $LUN/forced_eject
      i=0; until grep -q '"type":"card-removed"' /out/watch.out; do i=$((i + 1)); [ $i -lt 600 ] || vm_fail "no card-removed event"; sleep 0.1; done
      echo /tmp/card.img > $LUN/file
      i=0; until [ "$(grep -c '"type":"card-inserted"' /out/watch.out)" -ge 2 ]; do i=$((i + 1)); [ $i -lt 600 ] || vm_fail "no card-inserted event"; sleep 0.1; done
      kill -INT $BG_PID
      bg_wait watch
      wait_driver $P
      echo "$(driver_of $P)" | save_text driver-after-watch
    `,
  });
  t.diagnostic(`VM run: ${(r.durationMs / 1000).toFixed(1)} s`);
  const o = outputs(r);
  const out = o.ok('pytest');
  t.diagnostic(out.trim().split('\n').at(-1) ?? '');
  assert.match(out, /\b7 passed\b/, out);
  assert.doesNotMatch(out, /skipped|failed|error/i, out);
  assert.equal(o.text('driver-at-end').trim(), 'usb-storage');

  // list --watch on the gadget: the NDJSON events of the schema, in order; SIGINT ends it with exit 0
  const port = o.text('port').trim();
  const events = assertNdjson('list-watch', o.ok('watch'));
  assert.deepEqual(
    events.map((e) => [e.type, (e.slot as { selector?: string } | undefined)?.selector ?? (e.reader as { selector?: string } | undefined)?.selector ?? e.reason ?? null]),
    [
      ['reader-added', `usb:${port}`],
      ['card-inserted', `usb:${port}@lun=0`],
      ['synced', null],
      ['card-removed', `usb:${port}@lun=0`],
      ['card-inserted', `usb:${port}@lun=0`],
      ['end', 'SIGINT'],
    ],
  );
  assert.equal(o.text('driver-after-watch').trim(), 'usb-storage');
});
