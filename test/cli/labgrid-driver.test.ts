/**
 * The labgrid driver (contrib/labgrid) in a real labgrid environment with Debian's labgrid and its
 * pytest plugin: `pytest --lg-env env-image.yaml` with a card image file as the reader, the real
 * executable underneath. The same tests run against the VM's USB gadget reader in
 * test/vm/usb-gadget.vmtest.ts (env-usb.yaml). Skipped (with a note) where labgrid is not installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/kernel-fixtures.js';

const PYTHON = '/usr/bin/python3';
const haveLabgrid = spawnSync(PYTHON, ['-c', 'import labgrid, pytest'], { stdio: 'ignore' }).status === 0;

test(
  'labgrid: CrashcartDriver flashes, verifies, reads back and extracts kernel-written pstore records; exit classes as exceptions',
  { skip: haveLabgrid ? false : 'python3-labgrid is not installed' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'crashcart-labgrid-'));
    try {
      const card = join(dir, 'card.img');
      const fd = openSync(card, 'w');
      ftruncateSync(fd, 16 << 20);
      closeSync(fd);
      const r = spawnSync(
        PYTHON,
        [
          '-m',
          'pytest',
          '-p',
          'no:cacheprovider',
          '-q',
          '--basetemp',
          join(dir, 'pytest'),
          join(repoRoot, 'contrib/labgrid/tests'),
          '--lg-env',
          join(repoRoot, 'contrib/labgrid/tests/env-image.yaml'),
        ],
        {
          encoding: 'utf8',
          env: {
            ...process.env,
            PYTHONPATH: join(repoRoot, 'contrib/labgrid'),
            PYTHONDONTWRITEBYTECODE: '1',
            LG_CARD: card,
            LG_CRASHCART: join(repoRoot, 'bin/crashcart'),
            CRASHCART_REPO: repoRoot,
          },
        },
      );
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      // Every test ran except the kernel-driver check, which needs a USB reader.
      assert.match(r.stdout, /\b6 passed, 1 skipped\b/, r.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
