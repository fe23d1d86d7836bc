/**
 * The one cancellation path of the command line: SIGINT, SIGTERM and SIGHUP, and a closed
 * stdout/stderr (EPIPE), for every command.
 *
 * A command that can stop safely (flash, read) runs its work inside an {@link Operation}:
 *
 *  1. The first signal aborts `operation.signal` (the library functions take it) and is
 *     remembered. The work stops at its next safe point: a flash flushes the card and records
 *     the last completed offset in the resume journal; a read syncs its output and saves its
 *     ddrescue map. The command closes its devices (a USB reader goes back to its kernel
 *     driver), prints an "interrupted" summary and throws {@link InterruptedError}, whose exit
 *     code is that of the signal: 130 SIGINT, 143 SIGTERM, 129 SIGHUP, 141 EPIPE.
 *  2. A second signal never loses that state: it is noted, and crashcart quits at once only
 *     after the command called `operation.saved()` (journal or map on disk). Until then the
 *     work winds down as in 1.
 *
 * Outside an operation (argument parsing, a confirmation prompt, commands without a safe
 * stopping point) a signal runs the registered cleanups — the USB layer hands every claimed
 * reader back to the kernel, bounded in time — and exits with the signal's code; a second
 * signal during those cleanups exits at once.
 *
 * stdout/stderr errors (EPIPE when `crashcart … --json | head -1` closes the pipe) never
 * print a stack trace: inside an operation they stop it as a signal would; otherwise the
 * process ends quietly with {@link ExitCode.BROKEN_PIPE}.
 */
import { CancelledError, ExitCode, type ExitCodeValue } from '../errors.js';
import { diag } from './diagnostics.js';

export type StopReason = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'EPIPE';
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export function exitCodeFor(reason: StopReason): ExitCodeValue {
  switch (reason) {
    case 'SIGINT':
      return ExitCode.CANCELLED;
    case 'SIGTERM':
      return ExitCode.TERMINATED;
    case 'SIGHUP':
      return ExitCode.HANGUP;
    case 'EPIPE':
      return ExitCode.BROKEN_PIPE;
  }
}

/** "interrupted (SIGINT)", "terminated (SIGTERM)", … for messages. */
export function describeStop(reason: StopReason): string {
  switch (reason) {
    case 'SIGINT':
      return 'interrupted (SIGINT)';
    case 'SIGTERM':
      return 'terminated (SIGTERM)';
    case 'SIGHUP':
      return 'hung up (SIGHUP)';
    case 'EPIPE':
      return 'output closed (EPIPE)';
  }
}

/** The operation was stopped by a signal (or a closed output) at a safe point. */
export class InterruptedError extends CancelledError {
  constructor(
    message: string,
    readonly reason: StopReason,
  ) {
    super(message, exitCodeFor(reason));
  }
}

export interface Operation {
  /** Aborted by the first stop signal; pass it to the library. */
  readonly signal: AbortSignal;
  /** What stopped the operation, once something did. */
  readonly stoppedBy: StopReason | undefined;
  /** The resume state (journal, map) is on disk: a requested forced quit may happen now. */
  saved(): void;
  /** The operation is over (devices closed); later signals take the plain path again. */
  end(): void;
}

type Cleanup = (reason: StopReason) => Promise<void>;

interface State {
  op?: OperationImpl;
  /** main() calls in progress (tests call it in-process several times). */
  installed: number;
  exiting: boolean;
  outputBroken: boolean;
}

const state: State = { installed: 0, exiting: false, outputBroken: false };
const cleanups = new Set<Cleanup>();
/** Upper bound for the cleanups before exiting on a signal (in-flight transfers time out first). */
const CLEANUP_LIMIT_MS = 25_000;
/** Shorter bound for a forced quit (the resume state is already saved). */
const FORCE_CLEANUP_LIMIT_MS = 3_000;

function log(line: string): void {
  if (!state.outputBroken) diag('warning', line);
}

/** Runs before the process exits on a signal outside an operation, or on a forced quit. */
export function registerExitCleanup(fn: Cleanup): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

async function runCleanups(reason: StopReason, limitMs: number): Promise<void> {
  const limit = new Promise<void>((resolve) => setTimeout(resolve, limitMs).unref());
  await Promise.race([Promise.allSettled([...cleanups].map((c) => c(reason))), limit]);
}

function exitNow(code: number): never {
  process.exit(code);
}

let quitReport: ((reason: StopReason) => void) | undefined;

/** Called once when a signal ends the process here rather than through main's return (the --json error object). */
export function onQuit(report: ((reason: StopReason) => void) | undefined): void {
  quitReport = report;
}

function quit(reason: StopReason, limitMs: number): void {
  if (state.exiting) exitNow(exitCodeFor(reason));
  state.exiting = true;
  void runCleanups(reason, limitMs).finally(() => {
    quitReport?.(reason);
    exitNow(exitCodeFor(reason));
  });
}

class OperationImpl implements Operation {
  private readonly ac = new AbortController();
  stoppedBy: StopReason | undefined;
  private isSaved = false;
  private forceRequested = false;
  private ended = false;

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  stop(reason: StopReason): void {
    if (this.stoppedBy === undefined) {
      this.stoppedBy = reason;
      if (reason === 'EPIPE') log('output closed (EPIPE): stopping at a safe point');
      else log(`${describeStop(reason)}: stopping at a safe point (saving where it stopped, closing the device); a second signal quits once that is saved`);
      this.ac.abort(Object.assign(new DOMException(`${describeStop(reason)}`, 'AbortError'), { stopReason: reason }));
      return;
    }
    if (reason === 'EPIPE') return;
    if (this.isSaved) {
      log(`${describeStop(reason)} again: quitting now (the resume point is saved)`);
      quit(this.stoppedBy, FORCE_CLEANUP_LIMIT_MS);
      return;
    }
    if (!this.forceRequested) log(`${describeStop(reason)} again: finishing safely — crashcart quits as soon as the resume point is saved`);
    this.forceRequested = true;
  }

  saved(): void {
    this.isSaved = true;
    if (this.forceRequested && this.stoppedBy !== undefined) quit(this.stoppedBy, FORCE_CLEANUP_LIMIT_MS);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (state.op === this) state.op = undefined;
  }
}

/** Starts a command's cancellable work. One at a time; `end()` it in a `finally`. */
export function beginOperation(): Operation {
  state.op?.end();
  const op = new OperationImpl();
  state.op = op;
  // A closed output before the work started stops it at once.
  if (state.outputBroken) op.stop('EPIPE');
  return op;
}

/**
 * Runs `work` as an operation whose only state is the device itself (provision, pstore format
 * and clear: running the same command again finishes the job). A stop signal aborts it between
 * writes; what was written is flushed by the library, a JSON summary says "interrupted" when
 * `json`, and InterruptedError carries `message` and the signal's exit code.
 */
export async function runStoppable<T>(work: (signal: AbortSignal) => Promise<T>, o: { json?: boolean; message: (stop: string) => string }): Promise<T> {
  const op = beginOperation();
  op.saved(); // nothing to save: a second signal may quit at once
  try {
    return await work(op.signal);
  } catch (e) {
    if (op.stoppedBy && (e instanceof CancelledError || (e as Error)?.name === 'AbortError')) {
      if (o.json)
        process.stdout.write(JSON.stringify({ type: 'summary', status: 'interrupted', signal: op.stoppedBy, exitCode: exitCodeFor(op.stoppedBy), class: 'interrupted' }) + '\n');
      throw new InterruptedError(o.message(describeStop(op.stoppedBy)), op.stoppedBy);
    }
    throw e;
  } finally {
    op.end();
  }
}

function onSignal(sig: NodeJS.Signals): void {
  const reason = sig as StopReason;
  if (state.op) {
    state.op.stop(reason);
    return;
  }
  if (state.exiting) exitNow(exitCodeFor(reason));
  log(`${describeStop(reason)}`);
  quit(reason, CLEANUP_LIMIT_MS);
}

function onOutputError(err: unknown): void {
  // EPIPE (the reader went away) or any other write error on stdout/stderr: never a stack trace.
  void err;
  state.outputBroken = true;
  if (state.op) state.op.stop('EPIPE');
  else if (state.installed === 0 && !SIGNAL_CODES.has(Number(process.exitCode ?? 0))) process.exitCode = ExitCode.BROKEN_PIPE;
}

/** Exit codes a signal gave; a broken output afterwards does not replace them. */
const SIGNAL_CODES = new Set<number>([ExitCode.HANGUP, ExitCode.CANCELLED, ExitCode.TERMINATED]);

let outputHandlersInstalled = false;

/**
 * Installs the signal handlers for one main() run; returns the uninstaller. The stdout/stderr
 * error handlers stay for the life of the process (an EPIPE can surface after main returned).
 */
export function installCancellation(): () => void {
  if (!outputHandlersInstalled) {
    outputHandlersInstalled = true;
    process.stdout.on('error', onOutputError);
    process.stderr.on('error', onOutputError);
  }
  state.installed++;
  if (state.installed === 1) for (const s of STOP_SIGNALS) process.on(s, onSignal);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    state.installed--;
    if (state.installed === 0) for (const s of STOP_SIGNALS) process.off(s, onSignal);
  };
}

/** True once stdout or stderr failed (EPIPE): main() then exits with BROKEN_PIPE. */
export function outputBroken(): boolean {
  return state.outputBroken;
}

/** For tests: forget a broken output. */
export function resetOutputState(): void {
  state.outputBroken = false;
}
