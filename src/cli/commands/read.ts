/**
 * `crashcart read DEVICE -o FILE`: copies a card (or a byte range) to an image, ddrescue style,
 * and prints the SHA-256 of what was read (`sha256sum` format) on stdout.
 */
import type { ReadArgs } from '../args/read.js';
import type cliProgress from 'cli-progress';
import { loadProgressBars } from '../progress.js';
import { openDevice } from '../../blockdev/open-device.js';
import { formatBytes } from '../../util/format-bytes.js';
import { CrashcartError, ExitCode, UsageError } from '../../errors.js';
import { ReadCancelledError, readDevice, type ReadEvent, type ReadResult } from '../../flash/read.js';
import { diag } from '../diagnostics.js';
import { beginOperation, describeStop, exitCodeFor, InterruptedError } from '../cancellation.js';
import { formatDuration, formatSpeed } from '../../flash/progress.js';
import { parseByteCount, parseMaxTransfer } from '../byte-count.js';
import type { ReconnectEvent } from '../../blockdev/reconnect.js';
import { logReconnectEvent, reconnectTimeoutMs } from '../reconnect-events.js';

export async function runRead(a: ReadArgs): Promise<void> {
  const offset = a.offset !== undefined ? parseByteCount(a.offset, '--offset') : undefined;
  const size = a.size !== undefined ? parseByteCount(a.size, '--size') : undefined;
  if (a.retries !== undefined && (!Number.isSafeInteger(a.retries) || a.retries < 0)) throw new UsageError('--retries must be a non-negative integer');
  const json = a.json === true;
  const bars = await loadProgressBars(json);
  const maxTransferBytes = parseMaxTransfer(a['max-transfer']);
  let bar: cliProgress.SingleBar | undefined;
  const onReconnect = (e: ReconnectEvent) => {
    if (json) return void process.stdout.write(JSON.stringify(e) + '\n');
    if (bar) (bar.stop(), (bar = undefined));
    logReconnectEvent(e);
  };
  const dev = await openDevice(a.device, { write: false, maxTransferBytes, reconnect: { timeoutMs: reconnectTimeoutMs(a['reconnect-timeout']), onEvent: onReconnect } });
  // A signal stops the read at a safe point: output synced, map saved (see ../cancellation.ts).
  const op = beginOperation();
  try {
    const onEvent = (e: ReadEvent) => {
      if (json) {
        process.stdout.write(JSON.stringify(e) + '\n');
        return;
      }
      if (e.type === 'bad-area') {
        const msg = `unreadable: bytes ${e.start}–${e.end - 1}: ${e.error}`;
        if (bar) (bar.stop(), (bar = undefined));
        diag('warning', msg, { plain: true });
      } else if (e.type === 'progress' && bars) {
        const payload = {
          done: formatBytes(e.bytes).padStart(9),
          speed: formatSpeed(e.speed).padStart(10),
          etaf: formatDuration(e.eta),
          bad: e.badBytes ? ` bad ${formatBytes(e.badBytes)}` : '',
        };
        if (!bar) {
          bar = new bars.SingleBar(
            { format: 'reading |{bar}| {percentage}% {done} {speed} ETA {etaf}{bad}', hideCursor: true, stream: process.stderr, barsize: 30 },
            bars.Presets.shades_classic,
          );
          bar.start(Math.max(1, e.total), e.bytes, payload);
        } else bar.update(e.bytes, payload);
      }
    };
    let r: ReadResult;
    try {
      r = await readDevice(dev, a.output, {
        ...(offset !== undefined ? { offset } : {}),
        ...(size !== undefined ? { size } : {}),
        retries: a.retries ?? 3,
        ...(a.map ? { mapPath: a.map } : {}),
        mapHeader: [`Command line: crashcart read ${a.device} -o ${a.output}${a.offset ? ` --offset ${a.offset}` : ''}${a.size ? ` --size ${a.size}` : ''}`],
        signal: op.signal,
        onEvent,
      });
    } catch (e) {
      if (!(e instanceof ReadCancelledError)) throw e;
      bar?.stop();
      bar = undefined;
      const stoppedBy = op.stoppedBy ?? 'SIGINT';
      const p = e.partial;
      if (json)
        process.stdout.write(JSON.stringify({ type: 'summary', status: 'interrupted', signal: stoppedBy, ...p, exitCode: exitCodeFor(stoppedBy), class: 'interrupted' }) + '\n');
      else
        diag(
          'warning',
          `${describeStop(stoppedBy)}: stopped at offset ${p.position}; ${formatBytes(p.finishedBytes)} of ${formatBytes(p.size)} read so far${p.mapSaved ? `; what was read is in ${p.output}, the map in ${p.mapPath}` : ''}`,
          { plain: true },
        );
      if (p.mapSaved) op.saved();
      throw new InterruptedError(
        `read ${describeStop(stoppedBy)}: ${p.mapSaved ? 'stopped at a safe point; run the same command again to continue' : `the map ${p.mapPath} could not be saved; the next run starts over`}`,
        stoppedBy,
      );
    }
    op.saved();
    bar?.stop();
    bar = undefined;
    if (json)
      process.stdout.write(
        JSON.stringify({
          type: 'summary',
          status: r.badBytes > 0 ? 'failed' : 'ok',
          ...r,
          exitCode: r.badBytes > 0 ? ExitCode.MEDIUM : ExitCode.OK,
          class: r.badBytes > 0 ? 'media' : 'ok',
        }) + '\n',
      );
    else {
      diag(
        'info',
        `read ${formatBytes(r.size)} from ${r.device} at offset ${r.offset}${r.resumed ? ' (continuing from the map)' : ''} in ${formatDuration(r.seconds)}; map: ${r.mapPath}`,
        {
          plain: true,
        },
      );
      if (r.badBytes > 0)
        diag(
          'warning',
          `${formatBytes(r.badBytes)} in ${r.badRanges.length} area(s) could not be read and are zeros in ${r.output}; run the same command again to retry only those`,
          {
            plain: true,
          },
        );
      process.stdout.write(`${r.sha256}  ${r.output}\n`);
    }
    if (r.badBytes > 0) throw new CrashcartError(`${r.badBytes} bytes of ${r.device} could not be read`, ExitCode.MEDIUM);
  } finally {
    bar?.stop();
    await dev.close().catch(() => undefined);
    op.end();
  }
}
