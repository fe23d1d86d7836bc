import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile, truncate, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { devNumber } from '../../../src/host/dev-number.js';
import { openImageFile, mapOpenError } from '../../../src/blockdev/image-file-device.js';
import { mapWriteError, IO_CHUNK } from '../../../src/blockdev/file-handle-device.js';
import { RegionDevice } from '../../../src/blockdev/region-device.js';
import { IoError, UsageError, WriteProtectedError } from '../../../src/errors.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crashcart-img-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + 5) & 0xff;
  return b;
}

test('image file: size from fstat, positional reads, read-only by default', async () => {
  const p = join(dir, 'a.img');
  const data = pattern(10000);
  await writeFile(p, data);
  const dev = await openImageFile(p);
  try {
    assert.equal(dev.size, 10000);
    assert.equal(dev.blockSize, 512);
    assert.equal(dev.alignment, 1);
    assert.equal(dev.readOnly, true);
    const { identity, ...info } = dev.info;
    assert.deepEqual(info, { name: p, kind: 'image' });
    const st = statSync(p, { bigint: true });
    assert.deepEqual(identity, { kind: 'file', key: `${st.dev}:${st.ino}`, fsDevice: devNumber(st.dev) });
    assert.deepEqual(await dev.read(9990, 10), data.slice(9990));
    assert.deepEqual(await dev.read(3, 0), new Uint8Array(0));
    await assert.rejects(dev.write(0, new Uint8Array([1])), (e: unknown) => e instanceof WriteProtectedError && /read-only/.test(e.message));
    await assert.rejects(dev.read(9990, 11), (e: unknown) => e instanceof IoError && /11 bytes at offset 9990/.test(e.message));
  } finally {
    await dev.close();
  }
  await dev.close(); // idempotent
  await assert.rejects(dev.read(0, 1), /closed/);
});

test('image file opened for writing: writes land in the file, never grow it', async () => {
  const p = join(dir, 'w.img');
  await writeFile(p, new Uint8Array(4096));
  const dev = await openImageFile(p, { write: true, blockSize: 4096 });
  assert.equal(dev.readOnly, false);
  assert.equal(dev.blockSize, 4096);
  await dev.write(4090, new Uint8Array([1, 2, 3, 4, 5, 6]));
  await dev.flush();
  await assert.rejects(dev.write(4095, new Uint8Array(2)), IoError);
  await dev.close();
  const back = await readFile(p);
  assert.equal(back.length, 4096);
  assert.deepEqual([...back.subarray(4090)], [1, 2, 3, 4, 5, 6]);
});

test('truncated image: a short read is an IoError naming offset and length', async () => {
  const p = join(dir, 't.img');
  await writeFile(p, pattern(8192));
  const dev = await openImageFile(p);
  await truncate(p, 5000); // the image shrinks under us
  await assert.rejects(dev.read(4096, 2048), (e: unknown) => {
    assert.ok(e instanceof IoError);
    assert.match(e.message, /short read on .*t\.img: wanted 2048 bytes at offset 4096, got only 904/);
    return true;
  });
  await dev.close();
});

test('open errors: missing file, directory, bad block size', async () => {
  await assert.rejects(openImageFile(join(dir, 'nope.img')), (e: unknown) => e instanceof UsageError && /no such file/.test(e.message));
  await assert.rejects(openImageFile(dir), UsageError);
  await assert.rejects(openImageFile(join(dir, 'nope.img'), { blockSize: 0 }), UsageError);
});

test('permission and read-only file-system errors map to WriteProtectedError when writing', async () => {
  const mk = (code: string) => Object.assign(new Error(`${code}: test`), { code });
  assert.ok(mapOpenError('/x.img', true, mk('EROFS')) instanceof WriteProtectedError);
  assert.ok(mapOpenError('/x.img', true, mk('EACCES')) instanceof WriteProtectedError);
  assert.ok(mapOpenError('/x.img', false, mk('EACCES')) instanceof UsageError);
  assert.ok(mapOpenError('/x.img', false, mk('EIO')) instanceof IoError);
  assert.ok(mapWriteError('/x.img', 0, 1, mk('EROFS')) instanceof WriteProtectedError);
  assert.ok(mapWriteError('/x.img', 0, 1, mk('EPERM')) instanceof WriteProtectedError);
  const nospc = mapWriteError('/x.img', 512, 1024, mk('ENOSPC'));
  assert.ok(nospc instanceof IoError);
  assert.match(nospc.message, /write of 1024 bytes at offset 512 on \/x\.img failed/);
});

test('read-only file opened for writing (as a non-root user) is WriteProtectedError', { skip: process.getuid?.() === 0 ? 'root ignores file permissions' : false }, async () => {
  const p = join(dir, 'ro.img');
  await writeFile(p, new Uint8Array(512));
  await chmod(p, 0o444);
  await assert.rejects(openImageFile(p, { write: true }), WriteProtectedError);
});

test('AbortSignal is honoured before and between chunks of a large read', async () => {
  const p = join(dir, 'big.img');
  await writeFile(p, new Uint8Array(0));
  await truncate(p, IO_CHUNK * 3);
  const dev = await openImageFile(p, { write: true });
  try {
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(dev.read(0, 16, { signal: pre.signal }), { name: 'AbortError' });
    await assert.rejects(dev.write(0, new Uint8Array(16), { signal: pre.signal }), { name: 'AbortError' });
    const mid = new AbortController();
    const pending = dev.read(0, IO_CHUNK * 3, { signal: mid.signal });
    mid.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    const reason = new Error('user pressed Ctrl-C');
    const custom = new AbortController();
    const p2 = dev.write(0, new Uint8Array(IO_CHUNK * 2), { signal: custom.signal });
    custom.abort(reason);
    await assert.rejects(p2, (e: unknown) => e === reason);
    // Without a signal the same read completes.
    assert.equal((await dev.read(0, IO_CHUNK * 3)).length, IO_CHUNK * 3);
  } finally {
    await dev.close();
  }
});

test('a region of an image file is bounds-checked', async () => {
  const p = join(dir, 'r.img');
  const data = pattern(8192);
  await writeFile(p, data);
  const dev = await openImageFile(p);
  try {
    const r = new RegionDevice(dev, 4096, 2048);
    assert.deepEqual(await r.read(2040, 8), data.slice(6136, 6144));
    await assert.rejects(r.read(2041, 8), IoError);
    assert.throws(() => new RegionDevice(dev, 4096, 8192), UsageError);
  } finally {
    await dev.close();
  }
});
