import type { ExtractionIndex } from '../pstore/extract-writer.js';

const out = (s = '') => process.stdout.write(s + '\n');

/** Human-readable summary of an extraction (the --json output is index.json itself). */
export function printExtractionSummary(ix: ExtractionIndex, dir: string): void {
  const g = ix.geometry;
  out(`region    ${ix.region.description}`);
  const kib = (p: { value: number; source: string }) => `${p.value} KiB (${p.source})`;
  out(
    `geometry  kmsg ${kib(g.kmsg_size)}, pmsg ${kib(g.pmsg_size)}, console ${kib(g.console_size)}, ftrace ${kib(g.ftrace_size)}` +
      (g.ftrace_size.value > 0 ? `, cpus ${g.cpus.value} (${g.cpus.source})` : ''),
  );
  const cpuNote = g.cpuDetection?.note;
  if (cpuNote && g.cpuDetection!.decision !== 'ambiguous' && g.cpuDetection!.decision !== 'none') out(`          ${cpuNote}`);
  out(`          ${g.kmsgZones} kmsg zones, ${g.ftraceZones} ftrace zones, ${g.abi.endian === 'le' ? 'little' : 'big'}-endian ${g.abi.layout} (${g.abi.layoutSource})`);
  if (ix.kernel.readingVersion || ix.kernel.writer) {
    out(
      `kernel    ${[ix.kernel.writer ? `written by ${ix.kernel.writer.era} (${ix.kernel.writer.because})` : '', ix.kernel.readingVersion ? `read back by ${ix.kernel.readingVersion}` : ''].filter(Boolean).join('; ')}`,
    );
  }
  out(`counters  oops ${ix.counters.oops}, panic ${ix.counters.panic}; next dump goes to kmsg zone ${ix.nextKmsgZone}`);
  out();
  if (ix.records.length === 0) out('no records (the region is empty or erased)');
  for (const r of ix.records) {
    const what =
      r.type === 'dmesg'
        ? `${r.reasonName} #${r.counter}${r.time?.iso ? ` at ${r.time.iso}` : ''}, ${r.compressed ? (r.decodedFile ? `${r.algorithm} ${r.storedBytes} bytes, kept encoded as that kernel shows it` : r.algorithm ? `${r.algorithm} ${r.storedBytes} → ${r.outputBytes} bytes` : `undecodable, ${r.storedBytes} bytes kept`) : `${r.outputBytes} bytes`}`
        : `${r.outputBytes} bytes`;
    out(`  ${r.file.padEnd(28)} ${what}${r.kernelVisible ? '' : '  [not shown by the kernel]'}`);
  }
  for (const f of ix.extraFiles) out(`  ${f.file.padEnd(28)} ${f.description}`);
  const bad = ix.zones.filter((z) => z.rawFile);
  for (const z of bad) out(`  ${z.rawFile!.padEnd(28)} ${z.state}: ${z.problem}`);
  if (ix.warnings.length) {
    out();
    for (const w of ix.warnings) out(`warning: ${w}`);
  }
  out();
  out(`${ix.records.length} record(s) written to ${dir}/ (index.json describes them)`);
}
