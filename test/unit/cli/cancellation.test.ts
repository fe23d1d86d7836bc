/**
 * The cancellation path in-process: signals (delivered with process.emit, so the test runner
 * itself is not signalled) abort the running operation and are remembered; a second one before
 * the resume state is saved does not quit; a closed output stops the operation as EPIPE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beginOperation, exitCodeFor, installCancellation, InterruptedError, outputBroken, resetOutputState } from '../../../src/cli/cancellation.js';
import { CancelledError, ExitCode } from '../../../src/errors.js';

test('exit codes: one per stop reason, all in the ExitCode table', () => {
  assert.equal(exitCodeFor('SIGINT'), 130);
  assert.equal(exitCodeFor('SIGTERM'), 143);
  assert.equal(exitCodeFor('SIGHUP'), 129);
  assert.equal(exitCodeFor('EPIPE'), 141);
  assert.deepEqual([ExitCode.CANCELLED, ExitCode.TERMINATED, ExitCode.HANGUP, ExitCode.BROKEN_PIPE], [130, 143, 129, 141]);
  const e = new InterruptedError('stopped', 'SIGTERM');
  assert.ok(e instanceof CancelledError);
  assert.equal(e.exitCode, 143);
  assert.equal(e.reason, 'SIGTERM');
});

test('a signal aborts the operation once and is remembered; a second one before saved() does not quit', () => {
  const uninstall = installCancellation();
  const op = beginOperation();
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
  try {
    assert.equal(op.signal.aborted, false);
    process.emit('SIGTERM', 'SIGTERM');
    assert.equal(op.signal.aborted, true);
    assert.equal((op.signal.reason as Error).name, 'AbortError');
    assert.equal(op.stoppedBy, 'SIGTERM');
    process.emit('SIGINT', 'SIGINT');
    assert.equal(op.stoppedBy, 'SIGTERM', 'the first signal decides the exit code');
    assert.match(writes.join(''), /terminated \(SIGTERM\): stopping at a safe point/);
    assert.match(writes.join(''), /finishing safely — crashcart quits as soon as the resume point is saved/);
  } finally {
    process.stderr.write = orig;
    op.end();
    uninstall();
  }
  assert.equal(process.listenerCount('SIGTERM'), 0, 'handlers removed after main');
});

test('a closed output (EPIPE) during an operation stops it like a signal', () => {
  const uninstall = installCancellation();
  const op = beginOperation();
  try {
    // stderr here: the test runner pipes its report to stdout, and an error there would unpipe it.
    process.stderr.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    assert.equal(op.signal.aborted, true);
    assert.equal(op.stoppedBy, 'EPIPE');
    assert.equal(outputBroken(), true);
  } finally {
    op.end();
    uninstall();
    resetOutputState();
  }
});
