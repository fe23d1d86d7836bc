/**
 * Interrupting the real command line (`node bin/crashcart …`, built) in the middle of a flash or
 * a read with SIGINT, SIGTERM and SIGHUP: the exit code of the signal, an "interrupted"
 * summary, a resume journal / ddrescue map with a position past 0, and running the command
 * again (flash --resume, read unchanged) ends with exactly the source, byte for byte.
 *
 * The destination/source is a `slow:` device (test/cli/helpers/slow-device.ts, preloaded with
 * --import): every transfer takes 100 ms and reports itself on stderr, so the signal is sent
 * after the Nth transfer has completed, not after a sleep.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseRescueMap } from '../../src/flash/ddrescue-map.js';

const BIN = resolve('bin/crashcart');
const PRELOAD = pathToFileURL(resolve('dist/test/cli/helpers/slow-device.js')).href;
const MiB = 1024 * 1024;
const IMAGE_SIZE = 8 * MiB;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'crashcart-interrupt-test-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** An image that compresses well but is not all one byte: random 4 KiB blocks among zeros. */
async function makeImage(dir: string): Promise<{ path: string; sha: string }> {
  const img = new Uint8Array(IMAGE_SIZE);
  for (let off = 0; off < IMAGE_SIZE; off += 16 * 1024) img.set(randomBytes(4096), off);
  const path = join(dir, 'src.img');
  await writeFile(path, img);
  return { path, sha: sha(img) };
}

interface Run {
  child: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
  /** Resolves once `pred` holds for what arrived so far. */
  until(pred: (r: Run) => boolean, what: string): Promise<void>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', PRELOAD, BIN, ...args], {
    env: { ...process.env, CI: '', CRASHCART_TEST_TRACE: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  const waiters: { pred: (r: Run) => boolean; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.pred(run)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const run: Run = {
    child,
    stdout: '',
    stderr: '',
    until(pred, what) {
      if (pred(run)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        waiters.push({ pred, resolve });
        void run.done.then(() => reject(new Error(`the command ended before ${what}:\n${run.stderr}\n${run.stdout}`)));
      });
    },
    done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    run.stdout += d;
    check();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    run.stderr += d;
    check();
  });
  return run;
}

async function runToEnd(args: string[], env: Record<string, string>) {
  const r = start(args, env);
  const { code } = await r.done;
  return { code, stdout: r.stdout, stderr: r.stderr };
}

const completed = (op: 'read' | 'write', n: number) => (r: Run) => new RegExp(`^\\[slow\\] ${op} ${n}$`, 'm').test(r.stderr);
const jsonLines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
/** The summary of an interrupted --json run: the line before the closing error object, which carries the signal's exit code and its class. */
const interruptedSummary = (stdout: string, code: number): Record<string, unknown> => {
  const lines = jsonLines(stdout);
  const error = lines.pop();
  assert.deepEqual([error?.type, error?.exitCode, error?.class], ['error', code, 'interrupted']);
  return lines.pop() ?? {};
};
const noStackTrace = (stderr: string) => {
  assert.doesNotMatch(stderr, /^\s+at .+:\d+:\d+\)?$/m, 'no stack trace');
  assert.doesNotMatch(stderr, /internal error/);
};

interface Journal {
  image: string;
  device: string;
  offset: number;
}
async function journal(state: string): Promise<Journal[]> {
  return JSON.parse(await readFile(join(state, 'crashcart', 'resume.json'), 'utf8')) as Journal[];
}

async function flashInterrupted(t: { after: (fn: () => void) => void }, sig: NodeJS.Signals, opts: { json: boolean; twice?: boolean }) {
  const dir = tempDir(t);
  const img = await makeImage(dir);
  const card = join(dir, 'card.img');
  await writeFile(card, new Uint8Array(IMAGE_SIZE).fill(0xa5));
  const env = { XDG_STATE_HOME: join(dir, 'state') };
  const args = ['flash', img.path, `slow:${card}`, '--yes', '--no-bmap', ...(opts.json ? ['--json'] : [])];

  const r = start(args, env);
  // The first MiB is held back; after the 3rd write two more MiB are on the card.
  await r.until(completed('write', 3), 'the third write');
  r.child.kill(sig);
  if (opts.twice) {
    // Separate deliveries (two pending signals of one kind would merge into one).
    await r.until((x) => /stopping at a safe point/.test(x.stderr), 'the first signal was taken');
    r.child.kill(sig);
  }
  const { code } = await r.done;
  noStackTrace(r.stderr);
  const expected = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 }[sig as 'SIGINT' | 'SIGTERM' | 'SIGHUP'];
  assert.equal(code, expected, r.stderr);
  let offset: number;
  if (opts.json) {
    const summary = interruptedSummary(r.stdout, expected) as unknown as {
      type: string;
      status: string;
      signal: string;
      exitCode: number;
      targets: { ok: boolean; error?: { resumeOffset?: number } }[];
    };
    assert.equal(summary.type, 'summary');
    assert.equal(summary.status, 'interrupted');
    assert.equal(summary.signal, sig);
    assert.equal(summary.exitCode, expected);
    assert.equal(summary.targets[0].ok, false);
    offset = summary.targets[0].error?.resumeOffset ?? 0;
  } else {
    assert.match(r.stdout, /STOPPED +slow:.*written and flushed up to offset \d+/);
    assert.match(r.stdout, /(interrupted|terminated|hung up) \(SIG[A-Z]+\): stopped at a safe point/);
    assert.match(r.stderr, /stopped at a safe point; run the same command with --resume to continue/);
    offset = Number(/flushed up to offset (\d+)/.exec(r.stdout)?.[1]);
  }
  assert.ok(offset >= 3 * MiB, `resume offset ${offset} covers the three completed writes`);
  const entries = await journal(env.XDG_STATE_HOME);
  assert.equal(entries.length, 1);
  assert.equal(entries[0].offset, offset, 'the journal holds the last completed position');

  // Run it again with --resume: only the rest is written, and the card is the image.
  const again = await runToEnd([...args.filter((a) => a !== '--json'), '--resume', '--json'], { ...env, CRASHCART_TEST_DELAY_MS: '0' });
  assert.equal(again.code, 0, again.stderr);
  const s2 = jsonLines(again.stdout).pop() as { status: string; targets: { resumedFrom?: number; bytesWritten: number; verified: boolean }[] };
  assert.equal(s2.status, 'ok');
  assert.equal(s2.targets[0].resumedFrom, offset);
  assert.ok(s2.targets[0].bytesWritten < IMAGE_SIZE, 'resumed, not rewritten');
  assert.equal(s2.targets[0].verified, true);
  assert.equal(sha(await readFile(card)), img.sha, 'the card equals the image byte for byte');
  assert.deepEqual(await journal(env.XDG_STATE_HOME), [], 'journal entry cleared once done');
  return { stderr: r.stderr };
}

test('flash --json interrupted by SIGINT: exit 130, interrupted summary, journal; --resume finishes the exact image', async (t) => {
  await flashInterrupted(t, 'SIGINT', { json: true });
});

test('flash interrupted by SIGTERM (human output): exit 143, STOPPED line, journal; --resume finishes the exact image', async (t) => {
  await flashInterrupted(t, 'SIGTERM', { json: false });
});

test('flash: a second SIGINT while winding down does not lose the journal', async (t) => {
  const { stderr } = await flashInterrupted(t, 'SIGINT', { json: true, twice: true });
  assert.match(stderr, /quits as soon as the resume point is saved|quitting now \(the resume point is saved\)/);
});

async function readInterrupted(t: { after: (fn: () => void) => void }, sig: NodeJS.Signals, opts: { json: boolean }) {
  const dir = tempDir(t);
  const img = await makeImage(dir);
  const out = join(dir, 'out.img');
  const args = ['read', `slow:${img.path}`, '-o', out, ...(opts.json ? ['--json'] : [])];
  const r = start(args, {});
  await r.until(completed('read', 3), 'the third read');
  r.child.kill(sig);
  const { code } = await r.done;
  noStackTrace(r.stderr);
  const expected = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 }[sig as 'SIGINT' | 'SIGTERM' | 'SIGHUP'];
  assert.equal(code, expected, r.stderr);
  if (opts.json) {
    const summary = interruptedSummary(r.stdout, expected) as unknown as { type: string; status: string; signal: string; position: number; mapSaved: boolean; exitCode: number };
    assert.equal(summary.type, 'summary');
    assert.equal(summary.status, 'interrupted');
    assert.equal(summary.signal, sig);
    assert.equal(summary.exitCode, expected);
    assert.equal(summary.mapSaved, true);
    assert.ok(summary.position >= 3 * MiB);
  } else {
    assert.match(r.stderr, /\(SIG[A-Z]+\): stopped at offset \d+; .* read so far; what was read is in .*, the map in .*\.map/);
  }
  const map = parseRescueMap(await readFile(`${out}.map`, 'utf8'));
  assert.ok(map.currentPos >= 3 * MiB, `map position ${map.currentPos} past the three completed reads`);
  assert.equal(map.blocks[0].status, '+');
  assert.equal(map.blocks[0].size, map.currentPos);
  assert.equal((await stat(out)).size, IMAGE_SIZE);

  const again = await runToEnd([...args.filter((a) => a !== '--json'), '--json'], { CRASHCART_TEST_DELAY_MS: '0' });
  assert.equal(again.code, 0, again.stderr);
  const s2 = jsonLines(again.stdout).pop() as { status: string; resumed: boolean; bytesRead: number; sha256: string };
  assert.equal(s2.status, 'ok');
  assert.equal(s2.resumed, true);
  assert.equal(s2.bytesRead, IMAGE_SIZE - map.currentPos, 'only the rest was read');
  assert.equal(s2.sha256, img.sha);
  assert.equal(sha(await readFile(out)), img.sha, 'the output equals the source byte for byte');
}

test('read --json interrupted by SIGINT: exit 130, interrupted summary, map; the same command continues to the exact image', async (t) => {
  await readInterrupted(t, 'SIGINT', { json: true });
});

test('read interrupted by SIGHUP (human output): exit 129, map; the same command continues to the exact image', async (t) => {
  await readInterrupted(t, 'SIGHUP', { json: false });
});

test('read --json interrupted by SIGTERM: exit 143', async (t) => {
  await readInterrupted(t, 'SIGTERM', { json: true });
});

test('flash --json with stdout closed early (| head -c 1): exit 141, stopped at a safe point, no stack trace', async (t) => {
  const dir = tempDir(t);
  const img = await makeImage(dir);
  const card = join(dir, 'card.img');
  await writeFile(card, new Uint8Array(IMAGE_SIZE).fill(0xa5));
  const env = { XDG_STATE_HOME: join(dir, 'state') };
  const r = start(['flash', img.path, `slow:${card}`, '--yes', '--no-bmap', '--json'], env);
  await r.until((x) => x.stdout.length > 0, 'the first output');
  // What `head -c 1` does: take a byte, then close the pipe.
  r.child.stdout.destroy();
  const { code } = await r.done;
  noStackTrace(r.stderr);
  assert.equal(code, 141, r.stderr);
  assert.match(r.stderr, /output closed \(EPIPE\)/);
});

test('a command without a safe stopping point, stdout closed before it prints: exit 141, no stack trace', async () => {
  // The pipe is closed before node has even started, so the one write `profile list` makes fails.
  const r = start(['profile', 'list'], {});
  r.child.stdout.destroy();
  const { code } = await r.done;
  noStackTrace(r.stderr);
  assert.equal(code, 141, r.stderr);
});

test('a command without a safe stopping point (wait) takes the same path: SIGHUP exits 129 after the cleanups', async () => {
  const r = start(['wait', 'usb:9-9', '--timeout', '60'], {});
  await r.until((x) => /waiting until a card is present/.test(x.stderr), 'wait started');
  r.child.kill('SIGHUP');
  const { code } = await r.done;
  noStackTrace(r.stderr);
  assert.equal(code, 129, r.stderr);
  assert.match(r.stderr, /hung up \(SIGHUP\)/);
});

test('pstore format interrupted by SIGTERM: exit 143, interrupted summary, what was written is flushed; the same command finishes the region', async (t) => {
  const dir = tempDir(t);
  const card = join(dir, 'card.img');
  await writeFile(card, new Uint8Array(IMAGE_SIZE).fill(0xa5));
  const args = ['pstore', 'format', `slow:${card}`, '--kmsg-size', '64', '--pmsg-size', '0', '--console-size', '0', '--ftrace-size', '0', '--yes', '--discard-records', '--json'];
  const r = start(args, {});
  await r.until(completed('write', 3), 'the third write');
  r.child.kill('SIGTERM');
  const { code } = await r.done;
  noStackTrace(r.stderr);
  assert.equal(code, 143, r.stderr);
  const summary = interruptedSummary(r.stdout, 143) as unknown as { type: string; status: string; signal: string; exitCode: number };
  assert.deepEqual([summary.type, summary.status, summary.signal, summary.exitCode], ['summary', 'interrupted', 'SIGTERM', 143]);
  assert.match(r.stderr, /format terminated \(SIGTERM\): stopped between writes/);
  const after = await readFile(card);
  assert.ok(
    after.subarray(0, 3 * MiB).every((b) => b === 0),
    'the completed writes are on the card',
  );
  assert.ok(
    after.subarray(after.length - MiB).every((b) => b === 0xa5),
    'stopped before the end',
  );
  const again = await runToEnd(args, { CRASHCART_TEST_DELAY_MS: '0' });
  assert.equal(again.code, 0, again.stderr);
  assert.ok(
    (await readFile(card)).every((b) => b === 0),
    'the region is formatted',
  );
});

test('a command whose work stops without settling (a lost completion) exits 1 as an internal error, never 0', async (t) => {
  const dir = tempDir(t);
  const { path } = await makeImage(dir);
  for (const args of [
    ['info', `slow:${path}`],
    ['read', `slow:${path}`, '-o', join(dir, 'out.img'), '--json'],
  ]) {
    const r = await runToEnd(args, { CRASHCART_TEST_HANG: '1' });
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /internal error: the command stopped before it finished/);
  }
});
