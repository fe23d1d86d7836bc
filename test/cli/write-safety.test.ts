/**
 * The destructive-operation matrix: every command that writes × every spelling of a target that
 * is really an input (path, symlink, hard link, relative, a name with colons, a path through
 * `..`) × region certainty (valid table, both GPT copies damaged, a missing partition, an
 * unknown PARTUUID). The real executable runs each case; content hashes of every file involved
 * are compared before and after.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, link, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { kernelFixturesDir, repoRoot } from '../helpers/kernel-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'crashcart-safety-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(repoRoot, 'bin/crashcart');
const run = (args: string[], cwd = tmp) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd, input: '', env: { ...process.env, CI: '', XDG_STATE_HOME: join(tmp, 'state') } });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const kernelImage = (name: string) => gunzipSync(readFileSync(join(kernelFixturesDir, name, 'disk.img.gz')));
const GPT_CMDLINE = readFileSync(join(kernelFixturesDir, 'stock61-gpt/cmdline.txt'), 'utf8').trim();

let n = 0;
/** A fresh folder holding a copy of the GPT card a kernel wrote (pstore records in partition 2). */
function caseDir(): { dir: string; card: string } {
  const dir = join(tmp, `case-${++n}`);
  mkdirSync(dir);
  const card = join(dir, 'card.img');
  writeFileSync(card, kernelImage('stock61-gpt'));
  return { dir, card };
}

/** Names for `file`: as typed, through a symlink, a hard link, relative, with colons, through `..`. */
async function spellings(dir: string, file: string): Promise<string[]> {
  symlinkSync(file, join(dir, 'alias.img'));
  await promisify(link)(file, join(dir, 'hardlink.img'));
  symlinkSync(file, join(dir, 'pci-0000:00:17.0-usb-0:1:1.0-scsi-0:0:0:0'));
  mkdirSync(join(dir, 'sub'));
  return [file, join(dir, 'alias.img'), join(dir, 'hardlink.img'), relative(tmp, file), join(dir, 'pci-0000:00:17.0-usb-0:1:1.0-scsi-0:0:0:0'), join(dir, 'sub', '..', 'card.img')];
}

/** Both GPT headers unusable: the state of a card whose board crashed mid-update. */
function damageGpt(card: string): void {
  const b = readFileSync(card);
  b[512] ^= 0xff; // primary header signature
  b[b.length - 512] ^= 0xff; // backup header signature
  writeFileSync(card, b);
}

describe('no command writes a target that is one of its inputs, whatever its name', () => {
  it('flash IMAGE onto the image itself', async () => {
    const { dir, card } = caseDir();
    const before = sha(card);
    for (const t of await spellings(dir, card)) {
      const r = run(['flash', card, t, '--yes', '--no-bmap']);
      assert.equal(r.code, 12, `${t}: ${r.err}`);
      assert.match(r.err, /image being flashed/);
    }
    assert.equal(sha(card), before);
  });

  it('flash with the bmap as a destination, and a destination named twice', async () => {
    const { dir, card } = caseDir();
    const img = join(repoRoot, 'test/fixtures/flash/disk.img');
    const bmap = join(dir, 'disk.img.bmap');
    writeFileSync(bmap, readFileSync(join(repoRoot, 'test/fixtures/flash/disk.img.bmap')));
    const bmapBefore = sha(bmap);
    let r = run(['flash', img, bmap, '--bmap', bmap, '--yes']);
    assert.equal(r.code, 12, r.err);
    assert.equal(sha(bmap), bmapBefore);
    const before = sha(card);
    symlinkSync(card, join(dir, 'again'));
    r = run(['flash', img, card, join(dir, 'again'), '--yes', '--no-bmap']);
    assert.equal(r.code, 12, r.err);
    assert.match(r.err, /already a destination/);
    assert.equal(sha(card), before, 'a refusal writes nothing, to any card');
  });

  it('read DEVICE -o DEVICE, and --map naming the device', async () => {
    const { dir, card } = caseDir();
    const before = sha(card);
    for (const t of await spellings(dir, card)) {
      let r = run(['read', card, '-o', t]);
      assert.equal(r.code, 12, `-o ${t}: ${r.err}`);
      r = run(['read', card, '-o', join(dir, 'copy.img'), '--map', t]);
      assert.equal(r.code, 12, `--map ${t}: ${r.err}`);
      assert.ok(!existsSync(join(dir, 'copy.img')), 'a refused read leaves no output behind');
    }
    assert.equal(sha(card), before);
    // the map and the output as one file
    const r = run(['read', card, '-o', join(dir, 'x.img'), '--map', join(dir, 'x.img')]);
    assert.equal(r.code, 12, r.err);
    assert.equal(sha(card), before);
  });

  it('provision a card with a partition image or a raw boot loader image that is the card', async () => {
    const { dir, card } = caseDir();
    const before = sha(card);
    for (const t of await spellings(dir, card)) {
      let r = run(['provision', t, '--profile', 'qemu-x86_64', '--image', `rootfs=${card}`, '--yes', '--replace-table', '--discard-records']);
      assert.equal(r.code, 12, `${t}: ${r.err}`);
      assert.match(r.err, /partition image/);
      r = run(['provision', card, '--profile', 'imx8mm-sd', '--image', `bootloader=${t}`, '--yes', '--replace-table', '--discard-records']);
      assert.equal(r.code, 12, `bootloader=${t}: ${r.err}`);
      assert.match(r.err, /partition image/);
    }
    assert.equal(sha(card), before);
  });

  it('pstore extract -o naming the device, and format --backup naming it', async () => {
    const { dir, card } = caseDir();
    const before = sha(card);
    for (const t of await spellings(dir, card)) {
      let r = run(['pstore', 'extract', card, '-o', t]);
      assert.equal(r.code, 12, `extract -o ${t}: ${r.err}`);
      r = run(['pstore', 'format', card, '--cmdline', GPT_CMDLINE, '--backup', t, '--yes']);
      assert.equal(r.code, 12, `format --backup ${t}: ${r.err}`);
    }
    assert.equal(sha(card), before);
  });
});

describe('destructive pstore commands write only where the region is certain', () => {
  const cases: [string, string[]][] = [
    ['blkdev= from the command line', ['--cmdline', GPT_CMDLINE]],
    ['nothing named', []],
    ['--partition 2', ['--partition', '2']],
  ];
  for (const cmd of ['format', 'clear']) {
    for (const [what, args] of cases) {
      it(`${cmd} with both GPT headers damaged (${what}): exit 6, nothing written`, () => {
        const { card } = caseDir();
        damageGpt(card);
        const before = sha(card);
        const r = run(['pstore', cmd, card, ...args, '--yes', '--backup', join(tmp, `b-${n}`)]);
        assert.equal(r.code, 6, r.err);
        assert.match(r.err, /--offset BYTES --size BYTES/);
        assert.equal(sha(card), before);
      });
    }
    for (const [what, args] of [
      ['a partition the table lacks', ['--partition', '9']],
      ['a PARTUUID no partition has', ['--blkdev', 'PARTUUID=01234567-89ab-cdef-0123-456789abcdef']],
      ['a partition name the table lacks', ['--partition', 'nosuch']],
    ] as [string, string[]][]) {
      it(`${cmd} naming ${what}: exit 6, nothing written`, () => {
        const { card } = caseDir();
        const before = sha(card);
        const r = run(['pstore', cmd, card, ...args, '--yes', cmd === 'format' ? '--discard-records' : '--no-backup']);
        assert.equal(r.code, 6, r.err);
        assert.equal(sha(card), before);
      });
    }
  }

  it('format with a valid table writes the pstore partition and nothing else; an explicit range works on a damaged card', () => {
    const { card } = caseDir();
    const orig = readFileSync(card);
    const r = run(['pstore', 'format', card, '--cmdline', GPT_CMDLINE, '--yes', '--backup', join(tmp, `b-ok-${n}`), '--json']);
    assert.equal(r.code, 0, r.err);
    const { region } = JSON.parse(r.out) as { region: { offset: number; size: number } };
    const now = readFileSync(card);
    assert.ok(now.subarray(0, region.offset).equals(orig.subarray(0, region.offset)), 'bytes before the region unchanged');
    assert.ok(now.subarray(region.offset + region.size).equals(orig.subarray(region.offset + region.size)), 'bytes after the region unchanged');
    assert.ok(!now.subarray(region.offset, region.offset + region.size).equals(orig.subarray(region.offset, region.offset + region.size)), 'the region was formatted');

    const damaged = caseDir().card;
    damageGpt(damaged);
    const d0 = readFileSync(damaged);
    const e = run(['pstore', 'format', damaged, '--offset', String(region.offset), '--size', String(region.size), '--yes', '--discard-records', '--json']);
    assert.equal(e.code, 0, e.err);
    const d1 = readFileSync(damaged);
    assert.ok(d1.subarray(0, region.offset).equals(d0.subarray(0, region.offset)));
    assert.ok(d1.subarray(region.offset + region.size).equals(d0.subarray(region.offset + region.size)));
  });

  it('an unpartitioned device holding a file system is not taken as a pstore region', () => {
    const dir = join(tmp, 'fs');
    mkdirSync(dir);
    const card = join(dir, 'fat.img');
    const b = Buffer.alloc(4 * 1024 * 1024);
    b.write('\xeb\x3c\x90mkfs.fat', 0, 'latin1');
    b[510] = 0x55;
    b[511] = 0xaa;
    writeFileSync(card, b);
    const r = run(['pstore', 'format', card, '--yes', '--discard-records']);
    assert.equal(r.code, 6, r.err);
    assert.match(r.err, /boot sector/);
    assert.equal(sha(card), createHash('sha256').update(b).digest('hex'));
  });
});

describe('outputs never clobber', () => {
  it('read -o an existing file is refused and leaves it as it was', () => {
    const { dir, card } = caseDir();
    const precious = join(dir, 'notes.txt');
    writeFileSync(precious, 'precious');
    const r = run(['read', card, '-o', precious]);
    assert.equal(r.code, 12, r.err);
    assert.equal(readFileSync(precious, 'utf8'), 'precious');
    assert.ok(!existsSync(`${precious}.map`));
  });

  it('extract into a non-empty folder is refused; a planted symlink is never written through; --replace replaces only an extraction', () => {
    const { dir, card } = caseDir();
    const out = join(dir, 'out');
    mkdirSync(out);
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'victim');
    symlinkSync(victim, join(out, 'dmesg-pstore_blk-0'));
    let r = run(['pstore', 'extract', card, '-o', out, '--cmdline', GPT_CMDLINE]);
    assert.equal(r.code, 12, r.err);
    r = run(['pstore', 'extract', card, '-o', out, '--cmdline', GPT_CMDLINE, '--replace']);
    assert.equal(r.code, 12, r.err);
    assert.equal(readFileSync(victim, 'utf8'), 'victim');
    const fresh = join(dir, 'fresh');
    assert.equal(run(['pstore', 'extract', card, '-o', fresh, '--cmdline', GPT_CMDLINE]).code, 0);
    const files = readdirSync(fresh).sort();
    assert.equal(run(['pstore', 'extract', card, '-o', fresh, '--cmdline', GPT_CMDLINE]).code, 12);
    r = run(['pstore', 'extract', card, '-o', fresh, '--cmdline', GPT_CMDLINE, '--replace']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(readdirSync(fresh).sort(), files);
  });

  it("a reused --backup folder keeps the first card's records: each run gets a folder of its own", () => {
    const a = caseDir();
    const b = caseDir();
    const backup = join(tmp, 'shared-backup');
    let r = run(['pstore', 'format', a.card, '--cmdline', GPT_CMDLINE, '--yes', '--backup', backup, '--json']);
    assert.equal(r.code, 0, r.err);
    const first = readdirSync(backup).sort();
    const firstIndex = readFileSync(join(backup, 'index.json'), 'utf8');
    assert.ok(first.includes('dmesg-pstore_blk-0'));
    r = run(['pstore', 'format', b.card, '--cmdline', GPT_CMDLINE, '--yes', '--backup', backup, '--json']);
    assert.equal(r.code, 0, r.err);
    const second = (JSON.parse(r.out) as { backup: string }).backup;
    assert.notEqual(second, backup);
    assert.ok(second.startsWith(backup + '/'));
    assert.equal(readFileSync(join(backup, 'index.json'), 'utf8'), firstIndex, 'the first backup is untouched');
    assert.ok(readdirSync(second).includes('index.json'));
  });
});
