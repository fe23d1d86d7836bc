/**
 * The KASLR slide of a crashed boot, from what its dmesg prints (see `inferKaslrSlide()`).
 */
import type { SymbolTable } from './table.js';

/**
 * KASLR slide of the boot that wrote `dmesgText`, or null when the text does not tell.
 *
 *  1. `Kernel Offset: 0x<off> from 0x<base>` (x86 and arm64 panic output, `dump_kernel_offset()` /
 *     `dump_kernel_offset` notifier) gives the slide directly; `Kernel Offset: disabled` gives 0.
 *     If several lines disagree, null.
 *  2. Failing that, and given a `table` with link-time (or otherwise known) core addresses:
 *     backtrace lines that print a raw address next to its symbol, e.g.
 *     `[<c0063b94>] (cpu_startup_entry+0x1b8/0x1e0)` (ARM) or `[<ffffffff8107c1a5>] foo+0x55/0x70`
 *     (older x86/arm64), each give `raw − (symbol + offset)`; the value is returned when at least
 *     two lines agree and they are a strict majority of all such lines, or when there is exactly
 *     one such line. Module symbols (`[mod]` after the symbol) are not used. The result is the
 *     slide relative to the addresses the table was loaded with, so pass it to `withSlide()` on
 *     a table loaded without slide.
 *
 * x86 oopses print `RIP: 0010:symbol+0x…/0x…` without the raw address, so that line alone does
 * not give a slide.
 */
export function inferKaslrSlide(dmesgText: string, table?: SymbolTable | null): bigint | null {
  const offsets = new Set<bigint>();
  let disabled = false;
  for (const m of dmesgText.matchAll(/Kernel Offset: (?:0x([0-9a-fA-F]+) from 0x[0-9a-fA-F]+|(disabled))/g)) {
    if (m[2]) disabled = true;
    else offsets.add(BigInt('0x' + m[1]));
  }
  if (disabled) offsets.add(0n);
  if (offsets.size === 1) return [...offsets][0];
  if (offsets.size > 1) return null;
  if (!table) return null;

  const mask = (1n << BigInt(table.bits)) - 1n;
  const votes = new Map<bigint, number>();
  let total = 0;
  const re = /\[<([0-9a-fA-F]{8,16})>\][ \t]*\(?([A-Za-z_.$][\w.$]*)\+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)\)?/g;
  for (const m of dmesgText.matchAll(re)) {
    const after = (m.index ?? 0) + m[0].length;
    if (/^[ \t]*\[/.test(dmesgText.slice(after, after + 8))) continue; // `[module]`
    const at = table.coreAddressOf(m[2]);
    if (at === null) continue;
    const raw = BigInt('0x' + m[1]);
    const linked = (at - table.slide + BigInt('0x' + m[3])) & mask;
    const slide = (raw - linked) & mask;
    total++;
    votes.set(slide, (votes.get(slide) ?? 0) + 1);
  }
  if (total === 0) return null;
  let best: bigint | null = null;
  let bestVotes = 0;
  for (const [s, v] of votes) {
    if (v > bestVotes) {
      best = s;
      bestVotes = v;
    }
  }
  if (total === 1) return best;
  return bestVotes >= 2 && bestVotes * 2 > total ? best : null;
}
