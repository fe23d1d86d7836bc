/**
 * Diagnostics on stderr: lines for people (`crashcart: …`), or with `--log-format json` one
 * JSON object per line (schemas/v1/log.schema.json) for an orchestrator's log collector:
 * `level`, `message`, and for errors the exit `code` and its `class` (see EXIT_CLASS).
 */
import { exitClassOf } from '../errors.js';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'error' | 'warning' | 'info';

let format: LogFormat = 'text';

export function setLogFormat(f: LogFormat): void {
  format = f;
}

/** True with --log-format json: no progress bars or spinners either (they are not JSON). */
export function jsonLogs(): boolean {
  return format === 'json';
}

/**
 * The format named on the command line (`--log-format json` / `--log-format=json`), read before
 * yargs parses so that a parse failure is reported in it too; yargs checks the value.
 */
export function logFormatFromArgv(argv: readonly string[]): LogFormat {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') break;
    const v = argv[i] === '--log-format' ? argv[i + 1] : argv[i].startsWith('--log-format=') ? argv[i].slice('--log-format='.length) : undefined;
    if (v === 'json') return 'json';
  }
  return 'text';
}

export interface LogFields {
  /** The exit code an error ends the command with. */
  code?: number;
  /** Written without the `crashcart: ` prefix in text (lines that belong to a command's own report). */
  plain?: boolean;
  [field: string]: unknown;
}

/** Writes one diagnostic; never throws (stderr may be gone). */
export function diag(level: LogLevel, message: string, fields: LogFields = {}): void {
  const { plain, ...rest } = fields;
  const line =
    format === 'json'
      ? JSON.stringify({ level, message, ...(rest.code !== undefined ? { class: exitClassOf(rest.code) } : {}), ...rest })
      : plain
        ? message
        : `crashcart: ${message}`;
  try {
    process.stderr.write(line + '\n');
  } catch {
    // stderr gone: nothing to say it on.
  }
}
