import type { ExtractArgs } from '../args/pstore-extract.js';
import { openDevice } from '../../blockdev/open-device.js';
import { NoPstoreError } from '../../errors.js';
import { extractPstore } from '../../pstore/extract.js';
import { writeExtraction } from '../../pstore/extract-writer.js';
import { WriteGate } from '../../gate/write-gate.js';
import { parseKernelVersion } from '../../pstore/kernel-version.js';
import { locatePstoreRegion } from '../../pstore/locate-region.js';
import { parseKaslrOffset } from '../../pstore/param-limits.js';
import { loadSymbolFile } from '../../symbols/index.js';
import { resolveGeometryInputs } from '../geometry-options.js';
import { printExtractionSummary } from '../print-extraction.js';
import { withSpinner } from '../progress.js';

export async function runExtract(a: ExtractArgs): Promise<void> {
  const inputs = resolveGeometryInputs(a);
  const kernelVersion = a['kernel-version'] !== undefined ? parseKernelVersion(a['kernel-version']) : undefined;
  const kaslrSlide = a['kaslr-offset'] !== undefined ? parseKaslrOffset(a['kaslr-offset']) : undefined;
  // Bounded read: a decompression bomb or oversize file is a BadInputError (exit 6), not an OOM.
  const symbols = a.symbols ? await loadSymbolFile(a.symbols) : null;
  const dev = await openDevice(a.device, { write: false });
  try {
    const region = await locatePstoreRegion(dev, {
      selector: inputs.selector,
      blkdev: inputs.params.blkdev?.value,
      sectorOffset: inputs.params.sector_offset?.value,
      sectorCount: inputs.params.sector_count?.value,
    });
    const x = await withSpinner(`reading pstore zones from ${region.description}`, !!a.json, () =>
      extractPstore(region.source, { params: inputs.params, abi: inputs.abi, symbols, kaslrSlide, androidPmsg: a['pmsg-android'], kernelVersion }),
    );
    x.warnings.unshift(...region.warnings);
    if (!x.zones.some((z) => z.state !== 'empty')) {
      throw new NoPstoreError(`no pstore/blk zone found in ${region.description} of ${a.device} with this geometry (all ${x.zones.length} zones lack a signature)`);
    }
    const gate = new WriteGate();
    await gate.addInput(dev, 'the device being read');
    await gate.checkLocation(a.output, 'output folder');
    const index = await writeExtraction(x, a.output, { device: a.device, offset: region.offset, size: region.size, description: region.description }, { replace: a.replace });
    if (a.json) process.stdout.write(JSON.stringify(index, null, 2) + '\n');
    else printExtractionSummary(index, a.output);
  } finally {
    await dev.close();
  }
}
