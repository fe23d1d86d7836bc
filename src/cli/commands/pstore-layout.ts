import type { LayoutArgs } from '../args/pstore-layout.js';
import { openDevice } from '../../blockdev/open-device.js';
import { parseByteSize } from '../../partition/select-region.js';
import { UsageError } from '../../errors.js';
import { blkdevFor, boardCmdline } from '../../pstore/board-cmdline.js';
import type { Layout } from '../../pstore/layout.js';
import { locatePstoreRegion } from '../../pstore/locate-region.js';
import { planGeometry } from '../../pstore/plan-geometry.js';
import { resolveGeometryInputs } from '../geometry-options.js';

/** Groups consecutive equal-sized zones of one type for printing. */
export function zoneTable(layout: Layout): string[] {
  const rows: string[] = [];
  const hex = (n: number) => `0x${n.toString(16)}`;
  for (let i = 0; i < layout.zones.length;) {
    const z = layout.zones[i];
    let j = i;
    while (j + 1 < layout.zones.length && layout.zones[j + 1].type === z.type && layout.zones[j + 1].size === z.size) j++;
    const n = j - i + 1;
    const name = n === 1 ? `${z.type} ${z.index}` : `${z.type} ${z.index}..${layout.zones[j].index}`;
    rows.push(`  ${name.padEnd(18)} ${hex(z.offset).padStart(10)}  ${String(n).padStart(5)} × ${String(z.size).padStart(9)} bytes  (data ${z.size - 12} bytes each)`);
    i = j + 1;
  }
  return rows;
}

export async function runLayout(a: LayoutArgs): Promise<void> {
  const inputs = resolveGeometryInputs(a);
  let size: number;
  let blkdev = inputs.params.blkdev?.value;
  let description: string;
  if (a['region-size'] !== undefined) {
    if (a.device) throw new UsageError('give a device or --region-size, not both');
    size = parseByteSize(a['region-size'], 'region size');
    description = `a region of ${size} bytes`;
  } else if (a.device) {
    const dev = await openDevice(a.device);
    try {
      const r = await locatePstoreRegion(dev, { selector: inputs.selector, blkdev, purpose: 'write' });
      size = r.size;
      description = r.description;
      blkdev ??= blkdevFor(r.partition);
    } finally {
      await dev.close();
    }
  } else throw new UsageError('give a device or --region-size');
  const g = planGeometry(size, inputs.params);
  const cmdline = boardCmdline(g.layout, blkdev ?? blkdevFor(), inputs.params);
  if (a.json) {
    process.stdout.write(JSON.stringify({ region: { size, description }, geometry: g.values, layout: g.layout, cmdline, assumptions: g.assumptions }, null, 2) + '\n');
  } else {
    const out = (s = '') => process.stdout.write(s + '\n');
    out(`region   ${description}`);
    out(`uses     ${g.layout.totalSize} bytes; ${g.layout.kmsgCount} kmsg zones, ${g.layout.ftraceCount} ftrace zones; ${g.layout.unusedBytes} bytes never used`);
    out();
    out(`  ${'zone'.padEnd(18)} ${'offset'.padStart(10)}  count`);
    for (const row of zoneTable(g.layout)) out(row);
    out();
    out('boot the board with:');
    out(`  ${cmdline}`);
    for (const w of [...g.assumptions, ...g.layout.warnings]) out(`note: ${w}`);
    for (const e of g.layout.errors) out(`error: the kernel rejects this geometry: ${e}`);
  }
  if (g.layout.errors.length) throw new UsageError(`the kernel would refuse this geometry: ${g.layout.errors.join('; ')}`);
}
