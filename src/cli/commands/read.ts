/**
 * `crashcart read DEVICE -o FILE`: copies a card (or a byte range) to an image, ddrescue style,
 * and prints the SHA-256 of what was read (`sha256sum` format) on stdout.
 */
import type cliProgress from 'cli-progress';
import { loadProgressBars } from '../progress.js';
import type { Argv } from 'yargs';
import { openDevice } from '../../blockdev/open-device.js';
import { formatBytes } from '../../util/format-bytes.js';
import { CrashcartError, ExitCode, UsageError } from '../../errors.js';
import { ReadCancelledError, readDevice, type ReadEvent, type ReadResult } from '../../flash/read.js';
import { diag } from '../diagnostics.js';
import { beginOperation, describeStop, exitCodeFor, InterruptedError } from '../cancellation.js';
import { formatDuration, formatSpeed } from '../../flash/progress.js';

export interface ReadArgs {
  device: string;
  output: string;
  offset?: string;
  size?: string;
  retries?: number;
  map?: string;
  json?: boolean;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  s: 512,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1e6,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1e9,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1e12,
};

/** "4096", "0x1000", "4K", "4KiB", "8s" (512-byte sectors), "1.5G". */
export function parseByteCount(s: string, what: string): number {
  const t = s.trim();
  const hex = /^0x([0-9a-f]+)$/i.exec(t);
  let v: number;
  if (hex) v = parseInt(hex[1], 16);
  else {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(t);
    if (!m || !(m[2].toLowerCase() in UNITS)) throw new UsageError(`${what}: "${s}" is not a byte count (use e.g. 4096, 0x1000, 512K, 2MiB, 8s)`);
    v = Number(m[1]) * UNITS[m[2].toLowerCase()];
  }
  if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`${what}: "${s}" is not a whole number of bytes`);
  return v;
}

export function readCommand(y: Argv) {
  return y.command(
    'read <device>',
    'copy a card (or a byte range of it) to an image file; unreadable sectors go into a ddrescue map',
    (c) =>
      c
        .positional('device', { type: 'string', demandOption: true, describe: '/dev/sdX, usb:… or an image file' })
        .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'image file to write' })
        .option('offset', { type: 'string', describe: 'first byte to read (4096, 0x1000, 512K, 8s…)' })
        .option('size', { type: 'string', describe: 'bytes to read (default: to the end)' })
        .option('retries', { type: 'number', default: 3, describe: 'retries per chunk and per sector before a sector counts as bad' })
        .option('map', { type: 'string', describe: 'ddrescue mapfile (default OUTPUT.map); an existing one with OUTPUT retries only the unfinished areas' })
        .option('json', { type: 'boolean', describe: 'NDJSON progress events and a summary object on stdout' }),
    async (argv) => {
      await runRead(argv);
    },
  );
}

export async function runRead(a: ReadArgs): Promise<void> {
  const offset = a.offset !== undefined ? parseByteCount(a.offset, '--offset') : undefined;
  const size = a.size !== undefined ? parseByteCount(a.size, '--size') : undefined;
  if (a.retries !== undefined && (!Number.isSafeInteger(a.retries) || a.retries < 0)) throw new UsageError('--retries must be a non-negative integer');
  const json = a.json === true;
  const bars = await loadProgressBars(json);
  const dev = await openDevice(a.device, { write: false });
  let bar: cliProgress.SingleBar | undefined;
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
