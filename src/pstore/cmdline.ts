import { UsageError } from '../errors.js';
import { checkTextLength, CMDLINE_MAX_BYTES } from '../input-limits.js';
import { checkCpus, checkKernelInt, checkKernelSizeKiB, checkSectors } from './param-limits.js';
import type { PstoreParams, Sourced } from './params.js';

/**
 * Splits a kernel command line the way the kernel's next_arg() does: whitespace separates
 * parameters, double quotes may surround a value (or the whole parameter).
 */
export function splitCmdline(cmdline: string): { key: string; value: string | undefined }[] {
  const out: { key: string; value: string | undefined }[] = [];
  let i = 0;
  const s = cmdline;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i])) i++;
    if (i >= s.length) break;
    let inQuote = false;
    let tok = '';
    while (i < s.length && (inQuote || !/\s/.test(s[i]))) {
      if (s[i] === '"') inQuote = !inQuote;
      else tok += s[i];
      i++;
    }
    const eq = tok.indexOf('=');
    if (eq < 0) out.push({ key: tok, value: undefined });
    else out.push({ key: tok.slice(0, eq), value: tok.slice(eq + 1) });
  }
  return out;
}

/** Parses an integer the way kstrtol(.., 0, ..) does: decimal, 0x hex, leading 0 octal, optional sign. */
export function parseKernelLong(text: string, name: string): number {
  const t = text.trim();
  const m = /^([+-]?)(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$/i.exec(t);
  if (!m) throw new UsageError(`${name}=${text}: not an integer`);
  const body = m[2];
  let v: number;
  if (/^0x/i.test(body)) v = parseInt(body.slice(2), 16);
  else if (body.length > 1 && body.startsWith('0')) v = parseInt(body.slice(1), 8);
  else v = parseInt(body, 10);
  return m[1] === '-' ? -v : v;
}

/** Kernel parameter names treat '-' and '_' alike. */
function normKey(key: string): string {
  return key.replace(/-/g, '_').toLowerCase();
}

/**
 * Extracts pstore-related parameters from a kernel command line (or just a list of
 * `pstore_blk.*` / `pstore.*` parameters). Unknown parameters are ignored.
 */
export function parseCmdline(cmdline: string): PstoreParams {
  checkTextLength(cmdline, CMDLINE_MAX_BYTES, 'kernel command line');
  const p: PstoreParams = {};
  const src = <T>(value: T): Sourced<T> => ({ value, source: 'cmdline' });
  for (const { key, value } of splitCmdline(cmdline)) {
    const k = normKey(key);
    if (value === undefined) continue;
    switch (k) {
      case 'pstore_blk.kmsg_size':
      case 'pstore_blk.pmsg_size':
      case 'pstore_blk.console_size':
      case 'pstore_blk.ftrace_size':
        p[k.slice('pstore_blk.'.length) as 'kmsg_size'] = src(checkKernelSizeKiB(parseKernelLong(value, key), key));
        break;
      case 'pstore_blk.max_reason':
        p.max_reason = src(checkKernelInt(parseKernelLong(value, key), key));
        break;
      case 'pstore_blk.blkdev':
        p.blkdev = src(value);
        break;
      case 'pstore.compress':
        p.compress = src(value);
        break;
      case 'mmcpstore.sector_offset':
        p.sector_offset = src(checkSectors(parseKernelLong(value, key), key, 0));
        break;
      case 'mmcpstore.sector_count':
        p.sector_count = src(checkSectors(parseKernelLong(value, key), key, 1));
        break;
      case 'nr_cpus':
      case 'possible_cpus': {
        // The kernel ignores values <= 0; larger ones cannot exceed NR_CPUS (at most 8192).
        const n = parseKernelLong(value, key);
        if (n > 0) p.cpus = src(checkCpus(n, key));
        break;
      }
      default:
        break;
    }
  }
  return p;
}
