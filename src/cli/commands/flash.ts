/**
 * `crashcart flash IMAGE DEVICE...`: the CLI over flashImage(). Progress is a bar per card on a
 * TTY (stderr), plain phase lines otherwise, or NDJSON events on stdout with --json, ending in
 * a summary object.
 */
import type { FlashArgs } from '../args/flash.js';
import type cliProgress from 'cli-progress';
import type { BlockDevice } from '../../blockdev/block-device.js';
import { formatBytes } from '../../util/format-bytes.js';
import { CrashcartError, ExitCode, exitClassOf, RefusedError, UsageError, type ExitCodeValue } from '../../errors.js';
import { errInfo } from '../../flash/destination.js';
import { flashImage, type FlashEvent, type FlashResult, type FlashTarget, type FlashTargetResult } from '../../flash/flash.js';
import { openImageSource, sourceDecoder, type ImageSource } from '../../flash/source.js';
import { WriteGate } from '../../gate/write-gate.js';
import { confirm, describeDestination } from '../confirm.js';
import { parseMaxTransfer } from '../byte-count.js';
import { ResumeJournal, resumeKey } from '../../flash/resume.js';
import { formatDuration, formatSpeed } from '../../flash/progress.js';
import { beginOperation, describeStop, exitCodeFor, InterruptedError, type Operation, type StopReason } from '../cancellation.js';
import { diag } from '../diagnostics.js';
import { loadProgressBars, startSpinner, type ProgressBars, type Spinner } from '../progress.js';
import type { ReconnectEvent } from '../../blockdev/reconnect.js';
import { describeReconnectEvent, logReconnectEvent, reconnectTimeoutMs } from '../reconnect-events.js';

interface Opened {
  spec: string;
  device?: BlockDevice;
  error?: unknown;
}

function failedResult(spec: string, e: unknown): FlashTargetResult {
  return {
    device: spec,
    kind: 'image',
    size: 0,
    ok: false,
    phase: 'failed',
    bytesWritten: 0,
    verified: false,
    seconds: 0,
    error: errInfo(e),
  };
}

class Reporter {
  private bars?: cliProgress.MultiBar;
  private bar = new Map<number, cliProgress.SingleBar>();
  private readonly tty: boolean;
  constructor(
    private readonly json: boolean,
    private readonly names: string[],
    /** Loaded only on a terminal (see ../progress.ts). */
    private readonly lib: ProgressBars | undefined,
  ) {
    this.tty = lib !== undefined;
  }

  line(obj: object): void {
    process.stdout.write(JSON.stringify(obj) + '\n');
  }

  log(msg: string): void {
    if (this.json) this.line({ type: 'message', message: msg });
    else if (this.bars) this.bars.log(msg + '\n');
    else diag(msg.startsWith('warning: ') ? 'warning' : 'info', msg, { plain: true });
  }

  /** A destination's reader went away or came back. */
  reconnect(target: number, e: ReconnectEvent): void {
    if (this.json) this.line({ ...e, target });
    else if (this.bars) this.bars.log(describeReconnectEvent(e) + '\n');
    else logReconnectEvent(e);
  }

  event(e: FlashEvent): void {
    if (this.json) {
      this.line(e);
      return;
    }
    if (e.type === 'warning') return this.log(`warning: ${e.message}`);
    if (e.type === 'retry') return this.log(`${e.device}: retry ${e.attempt} at offset ${e.offset} in ${e.delayMs} ms: ${e.error}`);
    if (e.type === 'source' || e.type === 'checkpoint') return;
    if (e.type === 'phase') {
      if (e.phase === 'failed') this.log(`${e.device}: FAILED: ${e.message ?? ''}`);
      else if (!this.tty && e.phase !== 'preflight') this.log(`${e.device}: ${e.phase}`);
      return;
    }
    if (!this.tty) return;
    if (!this.bars) {
      this.bars = new this.lib!.MultiBar(
        {
          format: '{device} |{bar}| {pct} {phase} {done} {speed} ETA {etaf}',
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          barsize: 30,
          stream: process.stderr,
        },
        this.lib!.Presets.shades_classic,
      );
    }
    let b = this.bar.get(e.target);
    const total = e.total ?? 0;
    const payload = {
      device: this.names[e.target].padEnd(Math.max(...this.names.map((n) => n.length))),
      phase: e.phase.padEnd(9),
      pct: total > 0 ? `${Math.floor((e.bytes / total) * 100)}%`.padStart(4) : '   ?',
      done: formatBytes(e.bytes).padStart(9),
      speed: formatSpeed(e.speed).padStart(10),
      etaf: formatDuration(e.eta),
    };
    if (!b) {
      b = this.bars.create(Math.max(1, total), Math.min(e.bytes, Math.max(1, total)), payload);
      this.bar.set(e.target, b);
    } else {
      b.setTotal(Math.max(1, total));
      b.update(Math.min(e.bytes, Math.max(1, total)), payload);
    }
  }

  stop(): void {
    this.bars?.stop();
    this.bars = undefined;
  }
}

function printSummary(r: FlashResult, pre: FlashTargetResult[], stoppedBy?: StopReason): void {
  const out = process.stdout;
  const img = r.image;
  out.write(`image: ${img.path} (${img.format}, ${formatBytes(img.size)}${img.bmap ? `, bmap ${img.bmap.path}: ${formatBytes(img.bmap.mappedBytes)} mapped` : ''})\n`);
  if (img.sha256) out.write(`image sha256: ${img.sha256}\n`);
  for (const t of [...r.targets, ...pre]) {
    if (t.ok) {
      const speed = t.seconds > 0 ? `, ${formatSpeed(t.bytesWritten / t.seconds)}` : '';
      out.write(
        `  ok      ${t.device}: ${formatBytes(t.bytesWritten)} written${t.resumedFrom ? ` (resumed at ${t.resumedFrom})` : ''}${t.verified ? ', verified' : ', not verified'}${speed}\n`,
      );
    } else if (stoppedBy && t.error?.name === 'CancelledError') {
      const at = t.error.resumeOffset;
      out.write(`  STOPPED ${t.device}: ${at ? `written and flushed up to offset ${at} (${formatBytes(at)}); --resume continues there` : 'nothing flushed yet'}\n`);
    } else {
      out.write(`  FAILED  ${t.device}: ${t.error?.message ?? 'failed'}\n`);
    }
  }
  if (stoppedBy) out.write(`${describeStop(stoppedBy)}: stopped at a safe point\n`);
  const ok = [...r.targets, ...pre].filter((t) => t.ok).length;
  const all = r.targets.length + pre.length;
  out.write(`${ok} of ${all} destination(s) succeeded in ${formatDuration(r.seconds)}\n`);
}

function checkArgs(a: FlashArgs): string[] {
  const specs = a.devices ?? [];
  if (specs.length === 0) throw new UsageError('name at least one destination device');
  if (a.retries !== undefined && (!Number.isSafeInteger(a.retries) || a.retries < 0)) throw new UsageError('--retries must be a non-negative integer');
  return specs;
}

async function openSource(a: FlashArgs, spinner: Spinner | undefined): Promise<ImageSource> {
  try {
    return await openImageSource(a.image, { bmap: a.bmap === undefined ? undefined : a.bmap === false ? false : String(a.bmap) });
  } catch (e) {
    spinner?.fail();
    throw e;
  }
}

/**
 * Opens every destination through the gate; a destination that cannot be opened keeps its error.
 * USB readers wait `reconnectMs` for their reader to come back, telling `onReconnect`.
 */
async function openDestinations(
  gate: WriteGate,
  specs: string[],
  opened: Opened[],
  maxTransferBytes: number | undefined,
  reconnectMs: number,
  onReconnect: (target: number, e: ReconnectEvent) => void,
): Promise<void> {
  for (const spec of specs) {
    const target = opened.length;
    try {
      const reconnect = { timeoutMs: reconnectMs, onEvent: (e: ReconnectEvent) => onReconnect(target, e) };
      opened.push({ spec, device: await gate.openDevice(spec, { maxTransferBytes, reconnect }) });
    } catch (e) {
      opened.push({ spec, error: e });
    }
  }
}

/**
 * The destinations to flash, and results for those that could not be opened. A refusal (a
 * mistake in the command line) stops everything, as does having no usable destination.
 */
function sortOpened(opened: Opened[], specs: string[], reporter: Reporter): { usable: Opened[]; pre: FlashTargetResult[] } {
  const usable = opened.filter((o) => o.device);
  const pre = opened.filter((o) => !o.device).map((o) => failedResult(o.spec, o.error));
  for (const p of pre) reporter.log(`${p.device}: ${p.error?.message}`);
  if (usable.length === 0) {
    const first = opened[0].error;
    if (specs.length === 1) throw first;
    throw new CrashcartError(`none of the ${specs.length} destinations can be written`, (first as CrashcartError)?.exitCode ?? ExitCode.IO);
  }
  return { usable, pre };
}

/** A target per usable destination, resuming where the journal says when --resume is given; with their journal keys. */
async function planTargets(a: FlashArgs, usable: Opened[], source: ImageSource, journal: ResumeJournal, reporter: Reporter): Promise<{ targets: FlashTarget[]; keys: string[] }> {
  const targets: FlashTarget[] = [];
  const keys: string[] = [];
  for (const o of usable) {
    const dev = o.device as BlockDevice;
    const key = resumeKey(source, dev);
    keys.push(key);
    let resumeFrom: number | undefined;
    if (a.resume) {
      const entry = await journal.get(key);
      if (entry) resumeFrom = entry.offset;
      else reporter.log(`${dev.info.name}: no interrupted flash of this image recorded for this card; writing it from the start`);
    }
    targets.push({ device: dev, ...(resumeFrom !== undefined ? { resumeFrom } : {}) });
  }
  return { targets, keys };
}

async function confirmTargets(a: FlashArgs, source: ImageSource, targets: FlashTarget[]): Promise<void> {
  await confirm('Continue?', a.yes === true, [
    `About to ERASE and write ${source.path} (${source.format}${source.bmap ? `, bmap ${source.bmap.path}` : ''}) to:`,
    ...targets.map((t) => `  ${describeDestination(t.device)}${t.resumeFrom ? ` — resuming at ${formatBytes(t.resumeFrom)}` : ''}`),
  ]);
}

function startLine(source: ImageSource, targets: FlashTarget[]): object {
  return {
    type: 'start',
    image: source.path,
    format: source.format,
    decoder: sourceDecoder(source),
    bmap: source.bmap?.path ?? null,
    devices: targets.map((t) => ({
      name: t.device.info.name,
      model: t.device.info.model ?? null,
      serial: t.device.info.serial ?? null,
      size: t.device.size,
      resumeFrom: t.resumeFrom ?? 0,
    })),
  };
}

/**
 * Keeps the resume journal in step with the flash: every checkpoint is recorded as it comes,
 * and at the end the outcome decides — done → forgotten; stopped, gone or failed verification →
 * where --resume continues (0 after a verification failure in the first chunk: from the start).
 * Journal errors are collected, not thrown: the flash itself is what matters.
 */
class JournalFollower {
  private readonly writes: Promise<void>[] = [];
  private error: unknown;
  private readonly note = (e: unknown) => void (this.error ??= e);

  constructor(
    readonly journal: ResumeJournal,
    private readonly realPath: string,
    private readonly keys: string[],
  ) {}

  checkpoint(target: number, device: string, offset: number): void {
    this.writes.push(this.journal.set(this.keys[target], this.realPath, device, offset).catch(this.note));
  }

  async settle(result: FlashResult): Promise<void> {
    await Promise.all(this.writes);
    for (let i = 0; i < result.targets.length; i++) {
      const t = result.targets[i];
      const at = t.error?.resumeOffset;
      if (t.ok) await this.journal.clear(this.keys[i]).catch(this.note);
      else if (at !== undefined && at > 0) await this.journal.set(this.keys[i], this.realPath, t.device, at).catch(this.note);
      else if (at === 0) await this.journal.clear(this.keys[i]).catch(this.note);
    }
  }

  warnIfFailed(reporter: Reporter): void {
    if (this.error !== undefined) reporter.log(`warning: the resume journal ${this.journal.path} could not be updated: ${(this.error as Error)?.message ?? String(this.error)}`);
  }
}

/** Runs flashImage, with events to the reporter and checkpoints to the journal. */
async function flashWithProgress(a: FlashArgs, source: ImageSource, targets: FlashTarget[], op: Operation, reporter: Reporter, journal: JournalFollower): Promise<FlashResult> {
  try {
    return await flashImage(source, targets, {
      verify: a.verify !== false,
      retries: a.retries ?? 5,
      signal: op.signal,
      onEvent: (e) => {
        if (a.json !== true && e.type === 'phase' && e.phase === 'failed' && op.stoppedBy) reporter.log(`${e.device}: stopped`);
        else reporter.event(e);
        if (e.type === 'checkpoint') journal.checkpoint(e.target, e.device, e.offset);
      },
    });
  } finally {
    reporter.stop();
  }
}

/** The summary (JSON line or text) of a finished or stopped flash. */
function summarize(result: FlashResult, pre: FlashTargetResult[], stoppedBy: StopReason | undefined, json: boolean, reporter: Reporter, journalPath: string): void {
  const status = stoppedBy ? 'interrupted' : result.ok && pre.length === 0 ? 'ok' : 'failed';
  const exitCode = stoppedBy ? exitCodeFor(stoppedBy) : result.ok && pre.length ? (pre[0].error?.exitCode ?? ExitCode.IO) : result.exitCode;
  if (json)
    reporter.line({
      type: 'summary',
      status,
      ...(stoppedBy ? { signal: stoppedBy, journal: journalPath } : {}),
      ...result,
      targets: [...result.targets, ...pre],
      ok: result.ok && pre.length === 0,
      exitCode,
      class: exitClassOf(exitCode),
    });
  else printSummary(result, pre, stoppedBy);
}

/** Ends the command as the outcome says: interrupted, failed (with the exit code that sums it up) or, returning, done. */
function throwForOutcome(result: FlashResult, pre: FlashTargetResult[], specs: string[], stoppedBy: StopReason | undefined): void {
  if (stoppedBy) {
    const resumable = result.targets.some((t) => (t.error?.resumeOffset ?? 0) > 0);
    throw new InterruptedError(
      `flash ${describeStop(stoppedBy)}: stopped at a safe point; ${resumable ? 'run the same command with --resume to continue' : 'nothing was flushed yet: flash again'}`,
      stoppedBy,
    );
  }
  const failed = [...result.targets, ...pre].filter((t) => !t.ok);
  if (failed.length > 0) {
    let code: ExitCodeValue = result.ok ? (pre[0].error?.exitCode ?? ExitCode.IO) : result.exitCode;
    if (!result.ok && pre.length > 0 && pre.some((p) => p.error?.exitCode !== code)) code = ExitCode.IO;
    const msg =
      failed.length === 1 && specs.length === 1
        ? (failed[0].error?.message ?? 'flash failed')
        : `${failed.length} of ${specs.length} destinations failed: ${failed.map((f) => f.device).join(', ')}`;
    throw new CrashcartError(msg, code);
  }
}

export async function runFlash(a: FlashArgs): Promise<void> {
  const specs = checkArgs(a);
  const maxTransferBytes = parseMaxTransfer(a['max-transfer']);
  const reconnectMs = reconnectTimeoutMs(a['reconnect-timeout']);
  const json = a.json === true;
  const spinner = await startSpinner(`opening ${a.image}`, json);
  const source = await openSource(a, spinner);
  const opened: Opened[] = [];
  let op: Operation | undefined;
  try {
    if (spinner) spinner.text = 'checking destinations';
    const gate = new WriteGate({ allowSystemDisk: a['force-system-disk'] });
    await gate.addInput(source.path, 'the image being flashed');
    await gate.addInput(source.bmap?.path, 'the bmap of the image');
    // Events come only while the flash runs, after the reporter exists.
    let reporterRef: Reporter | undefined;
    await openDestinations(gate, specs, opened, maxTransferBytes, reconnectMs, (target, e) => reporterRef?.reconnect(target, e));
    spinner?.stop();
    // A refusal is a mistake in the command line: write nothing at all, to any card.
    const refused = opened.find((o) => o.error instanceof RefusedError);
    if (refused) throw refused.error;
    const reporter = new Reporter(
      json,
      opened.map((o) => o.device?.info.name ?? o.spec),
      await loadProgressBars(json),
    );
    reporterRef = reporter;
    const { usable, pre } = sortOpened(opened, specs, reporter);

    const journal = new ResumeJournal(undefined, gate);
    await gate.checkPath(journal.path, 'resume journal');
    const { targets, keys } = await planTargets(a, usable, source, journal, reporter);
    await confirmTargets(a, source, targets);

    // From here a signal stops the flash at a safe point (see ../cancellation.ts).
    op = beginOperation();
    if (json) reporter.line(startLine(source, targets));
    const follower = new JournalFollower(journal, source.realPath, keys);
    const result = await flashWithProgress(a, source, targets, op, reporter, follower);
    await follower.settle(result);
    follower.warnIfFailed(reporter);
    const stoppedBy = result.ok ? undefined : op.stoppedBy;
    summarize(result, pre, stoppedBy, json, reporter, journal.path);
    op.saved();
    throwForOutcome(result, pre, specs, stoppedBy);
  } finally {
    for (const o of opened) await o.device?.close().catch(() => undefined);
    await source.close().catch(() => undefined);
    op?.end();
  }
}
