// End to end: `crashcart flash` of a .zst image with a bmap onto two USB readers at once, QEMU
// usb-storage (qemu-xhci, SuperSpeed) and the kernel's f_mass_storage gadget over dummy_hcd (high
// speed), with crashcart's verification; then `crashcart read` of both cards, compared on the
// host with what the image and its bmap say the cards must hold. One boot.
//
// The image is the bmaptool-made sparse fixture of test/fixtures/flash, compressed here with the
// zstd CLI (provision.sh installs it). Both cards start filled with a pattern so that blocks the
// bmap leaves unmapped, and the bytes after the image's partial last sector, must keep it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runVm } from './harness.js';
import { outputs, repoRoot, USB_PRELUDE } from './usb-lib.js';

const CARD_SIZE = 8 * 1024 * 1024;
const fixtures = join(repoRoot, 'test', 'fixtures', 'flash');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Card contents before flashing: a position-dependent byte pattern, never a run of zeros. */
function cardPattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((Math.imul(i >>> 2, 2654435761) | 0x01010101) >>> 0, i);
  return b;
}

/** Mapped byte ranges of a bmap (read with a regular expression, independently of crashcart's parser). */
function bmapRanges(xml: string): { imageSize: number; ranges: [number, number][] } {
  const imageSize = Number(/<ImageSize>\s*(\d+)\s*<\/ImageSize>/.exec(xml)![1]);
  const blockSize = Number(/<BlockSize>\s*(\d+)\s*<\/BlockSize>/.exec(xml)![1]);
  const ranges: [number, number][] = [];
  for (const m of xml.matchAll(/<Range[^>]*>\s*(\d+)(?:\s*-\s*(\d+))?\s*<\/Range>/g)) {
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    ranges.push([first * blockSize, Math.min((last + 1) * blockSize, imageSize)]);
  }
  return { imageSize, ranges };
}

test('flash .zst + bmap onto QEMU usb-storage and the f_mass_storage gadget at once, verify, read back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'crashcart-flash-usb-'));
  try {
    const raw = await readFile(join(fixtures, 'disk.img'));
    const bmapXml = await readFile(join(fixtures, 'disk.img.bmap'), 'utf8');
    assert.equal(sha256(raw), (await readFile(join(fixtures, 'disk.img.sha256'), 'utf8')).split(/\s/)[0]);
    const zst = execFileSync('zstd', ['-q', '-c', '-3', join(fixtures, 'disk.img')], { maxBuffer: 64 << 20 });
    assert.equal(zst.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');

    const { imageSize, ranges } = bmapRanges(bmapXml);
    assert.equal(imageSize, raw.length);
    assert.ok(ranges.length >= 3);
    const before = cardPattern(CARD_SIZE);
    const expected = Buffer.from(before);
    for (const [s, e] of ranges) raw.copy(expected, s, s, e);
    let mapped = 0;
    for (const [s, e] of ranges) mapped += e - s;
    assert.ok(mapped < raw.length / 2, 'the bmap leaves most of the image unmapped');
    // every byte outside the mapped ranges is zero in the image, so the pattern must survive there
    assert.notEqual(sha256(expected.subarray(0, raw.length)), sha256(raw));

    const cardQ = join(dir, 'q.img');
    await writeFile(cardQ, before);

    const r = await runVm({
      virtfsHostRoot: true,
      usb: { disks: [{ path: cardQ, serial: 'CARDQ001' }] },
      files: { '/data/disk.img.zst': zst, '/data/disk.bmap': Buffer.from(bmapXml), '/data/gcard.img': before },
      env: { REPO: repoRoot },
      timeoutMs: 900_000,
      memoryMiB: 768,
      script: `${USB_PRELUDE}
        usb_host_modules
        mount_hostroot
        cp /data/disk.img.zst /data/disk.bmap /host/tmp/
        cp /data/gcard.img /tmp/gcard.img
        gadget_mass_storage /tmp/gcard.img > /dev/null
        i=0
        until PQ=$(port_of_serial CARDQ001) && PG=$(port_of_serial 0123456789); do
          i=$((i + 1)); [ $i -lt 300 ] || vm_fail "USB readers missing"; sleep 0.1
        done
        wait_driver $PQ; wait_driver $PG
        kernel_disk $PQ > /dev/null; kernel_disk $PG > /dev/null

        run flash cc flash /tmp/disk.img.zst usb:serial=CARDQ001 usb:serial=0123456789 --bmap /tmp/disk.bmap --yes --json
        wait_driver $PQ; wait_driver $PG
        run read-q cc read usb:serial=CARDQ001 -o /tmp/read-q.img --json
        run read-g cc read usb:serial=0123456789 -o /tmp/read-g.img --json
        cp /host/tmp/read-q.img /host/tmp/read-g.img /out/ 2>/dev/null || true
        wait_driver $PG
        gadget_remove
        save_file /tmp/gcard.img gcard-after.img
      `,
    });
    t.diagnostic(`VM run: ${(r.durationMs / 1000).toFixed(1)} s`);
    const o = outputs(r);

    // flash: one decompression pass, both cards written and verified
    const lines = o
      .ok('flash')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const summary = lines.at(-1);
    assert.equal(summary.image.format, 'zstd', JSON.stringify(summary.image));
    assert.equal(summary.image.size, imageSize);
    assert.equal(summary.targets.length, 2, JSON.stringify(summary));
    for (const tr of summary.targets) {
      assert.equal(tr.ok, true, JSON.stringify(tr));
      assert.equal(tr.verified, true, JSON.stringify(tr));
      assert.equal(tr.size, CARD_SIZE);
      assert.ok(tr.bytesWritten >= mapped && tr.bytesWritten < raw.length, `${tr.device}: ${tr.bytesWritten} bytes written, ${mapped} mapped`);
    }
    const phases = lines.filter((e) => e.type === 'phase').map((e) => `${e.device}:${e.phase}`);
    for (const tr of summary.targets) {
      assert.ok(phases.includes(`${tr.device}:verifying`), `${tr.device} went through verification: ${phases.join(' ')}`);
    }

    // read back through crashcart: the reported sha256, the file, and the card's backing file agree
    const want = sha256(expected);
    for (const [name, backing] of [
      ['q', await readFile(cardQ)],
      ['g', r.outputs.get('gcard-after.img')],
    ] as const) {
      const rs = o
        .ok(`read-${name}`)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .at(-1);
      const img = r.outputs.get(`read-${name}.img`);
      assert.ok(img, `read-${name}.img saved`);
      assert.equal(img.length, CARD_SIZE);
      assert.equal(sha256(img.subarray(0, raw.length)), sha256(expected.subarray(0, raw.length)), `card ${name}: image area`);
      assert.equal(sha256(img), want, `card ${name}: whole card`);
      assert.equal(rs.sha256, want, `card ${name}: sha256 crashcart read reports`);
      assert.ok(backing, `card ${name} backing file`);
      assert.equal(sha256(backing), want, `card ${name}: backing file`);
      for (const [s, e] of ranges) assert.ok(img.subarray(s, e).equals(raw.subarray(s, e)), `card ${name}: mapped range ${s}-${e}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
