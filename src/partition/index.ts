export type { Partition, PartitionTable } from './types.js';
export { readPartitionTable } from './partition-table.js';
export { parseGpt, decodeGptHeader, type GptHeader, type GptParseOptions } from './gpt.js';
export { parseMbr, readMbrEntries, hasBootSignature, isProtectiveMbr, EXTENDED_TYPES, GPT_PROTECTIVE_TYPE, type MbrEntry } from './mbr.js';
export { formatGuid, guidEquals, isGuid, isZeroGuid } from './guid.js';
export {
  parseBlkdevSpec,
  parseByteSize,
  selectRegion,
  regionSelectorFromOptions,
  findPartitionByName,
  type BlkdevSpec,
  type RegionSelector,
  type RegionOptions,
  type SelectedRegion,
} from './select-region.js';
