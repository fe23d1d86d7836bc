/**
 * Decoded view of Android logger records in a pmsg buffer (Android's liblog, pmsg_writer). liblog writes each
 * entry as a packed android_pmsg_log_header_t {u8 magic 'l'; u16 len; u16 uid; u16 pid}
 * followed by android_log_header_t {u8 id; u16 tid; u32 sec; u32 nsec} and the payload;
 * `len` counts both headers and the payload. Text buffers carry `prio, tag\0, message\0`.
 * A wrapped buffer starts mid-entry, so the parser resynchronises on the next plausible header.
 */
const PMSG_HDR = 7;
const LOG_HDR = 11;
const LOG_IDS = ['main', 'radio', 'events', 'system', 'crash', 'stats', 'security', 'kernel'];
const PRIO = ['?', '?', 'V', 'D', 'I', 'W', 'E', 'F', 'S'];
const BINARY_IDS = new Set([2, 5, 6]);

export interface AndroidPmsgView {
  records: number;
  /** Bytes that could not be parsed as entries (e.g. the cut-off entry at a wrap point). */
  skippedBytes: number;
  text: string;
}

function u16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function plausibleAt(b: Uint8Array, i: number): number {
  if (b[i] !== 0x6c || i + PMSG_HDR + LOG_HDR > b.length) return 0;
  const len = u16(b, i + 1);
  if (len < PMSG_HDR + LOG_HDR || i + len > b.length) return 0;
  const id = b[i + PMSG_HDR];
  if (id >= LOG_IDS.length) return 0;
  const nsec = u32(b, i + PMSG_HDR + 7);
  if (nsec >= 1_000_000_000) return 0;
  return len;
}

function stamp(sec: number, nsec: number): string {
  const d = new Date(sec * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(Math.floor(nsec / 1e6), 3)}`;
}

export function decodeAndroidPmsg(buf: Uint8Array): AndroidPmsgView {
  const lines: string[] = [];
  let i = 0;
  let skipped = 0;
  let records = 0;
  while (i < buf.length) {
    const len = plausibleAt(buf, i);
    if (!len) {
      i++;
      skipped++;
      continue;
    }
    const uid = u16(buf, i + 3);
    const pid = u16(buf, i + 5);
    const id = buf[i + PMSG_HDR];
    const tid = u16(buf, i + PMSG_HDR + 1);
    const sec = u32(buf, i + PMSG_HDR + 3);
    const nsec = u32(buf, i + PMSG_HDR + 7);
    const payload = buf.subarray(i + PMSG_HDR + LOG_HDR, i + len);
    const head = `${stamp(sec, nsec)} ${String(uid).padStart(5)} ${String(pid).padStart(5)} ${String(tid).padStart(5)}`;
    if (BINARY_IDS.has(id) || payload.length === 0) {
      lines.push(`${head} [${LOG_IDS[id]}] binary ${Buffer.from(payload).toString('hex')}`);
    } else {
      const prio = PRIO[payload[0]] ?? '?';
      const rest = Buffer.from(payload.subarray(1)).toString('utf8');
      const nul = rest.indexOf('\0');
      const tag = nul >= 0 ? rest.slice(0, nul) : rest;
      const msg = nul >= 0 ? rest.slice(nul + 1).replace(/\0+$/, '') : '';
      for (const line of msg.split('\n')) lines.push(`${head} ${prio} ${tag.padEnd(8)}: ${line}`);
    }
    records++;
    i += len;
  }
  return { records, skippedBytes: skipped, text: records ? lines.join('\n') + '\n' : '' };
}
