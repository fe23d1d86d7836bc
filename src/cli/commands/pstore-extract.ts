import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { openDevice } from '../../blockdev/open-device.js';
import { NoPstoreError, UsageError } from '../../errors.js';
import { extractPstore } from '../../pstore/extract.js';
import { writeExtraction } from '../../pstore/extract-writer.js';
import { locatePstoreRegion } from '../../pstore/locate-region.js';
import { loadSymbolTable } from '../../pstore/symbols.js';
import type { GeometryArgs } from '../geometry-options.js';
import { resolveGeometryInputs, withGeometryOptions } from '../geometry-options.js';
import { printExtractionSummary } from '../print-extraction.js';
import { withSpinner } from '../progress.js';

interface ExtractArgs extends GeometryArgs {
  device: string;
  output: string;
  json?: boolean;
  symbols?: string;
  'kaslr-offset'?: string;
  'pmsg-android'?: boolean;
}

export function pstoreExtractCommand(y: Argv) {
  return y.command(
    'extract <device>',
    'extract pstore/blk records as the kernel would show them in /sys/fs/pstore',
    (c) =>
      withGeometryOptions(c)
        .positional('device', { type: 'string', demandOption: true, describe: 'image file, /dev/sdX or usb:… device' })
        .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'folder for the records and index.json' })
        .option('json', { type: 'boolean', describe: 'print index.json to stdout instead of a summary' })
        .option('symbols', { type: 'string', describe: 'System.map or /proc/kallsyms dump (optionally .gz) of the crashed kernel, for ftrace', group: 'ftrace:' })
        .option('kaslr-offset', { type: 'string', describe: 'KASLR slide of the crashed boot (hex); inferred from dmesg when printed there', group: 'ftrace:' })
        .option('pmsg-android', { type: 'boolean', describe: 'also write a decoded view of Android logger records found in pmsg' }),
    async (argv) => {
      await runExtract(argv as unknown as ExtractArgs);
    },
  );
}

export async function runExtract(a: ExtractArgs): Promise<void> {
  const inputs = resolveGeometryInputs(a);
  let symbols = null;
  if (a.symbols) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(a.symbols);
    } catch (e) {
      throw new UsageError(`--symbols ${a.symbols}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    symbols = loadSymbolTable(bytes);
  }
  let kaslrSlide: bigint | undefined;
  if (a['kaslr-offset'] !== undefined) {
    if (!/^(0x)?[0-9a-f]+$/i.test(a['kaslr-offset'])) throw new UsageError('--kaslr-offset must be a hex number like 0x1e000000');
    kaslrSlide = BigInt(a['kaslr-offset'].startsWith('0x') ? a['kaslr-offset'] : `0x${a['kaslr-offset']}`);
  }
  const dev = await openDevice(a.device, { write: false });
  try {
    const region = await locatePstoreRegion(dev, {
      selector: inputs.selector,
      blkdev: inputs.params.blkdev?.value,
      sectorOffset: inputs.params.sector_offset?.value,
      sectorCount: inputs.params.sector_count?.value,
    });
    const x = await withSpinner(`reading pstore zones from ${region.description}`, !!a.json, () =>
      extractPstore(region.source, { params: inputs.params, abi: inputs.abi, symbols, kaslrSlide, androidPmsg: a['pmsg-android'] }),
    );
    x.warnings.unshift(...region.warnings);
    if (!x.zones.some((z) => z.state !== 'empty')) {
      throw new NoPstoreError(`no pstore/blk zone found in ${region.description} of ${a.device} with this geometry (all ${x.zones.length} zones lack a signature)`);
    }
    const index = await writeExtraction(x, a.output, { device: a.device, offset: region.offset, size: region.size, description: region.description });
    if (a.json) process.stdout.write(JSON.stringify(index, null, 2) + '\n');
    else printExtractionSummary(index, a.output);
  } finally {
    await dev.close();
  }
}
