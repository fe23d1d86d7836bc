/** crashcart as a library: every layer's public API, from block devices to pstore extraction. */
export * from './errors.js';
export * from './blockdev/index.js';
export { formatBytes } from './util/format-bytes.js';
export * from './partition/index.js';
/** The write gate every write goes through, and non-clobbering output files. */
export { WriteGate, SYSTEM_DISK_FLAG, footprintOf, type WriteGateOptions } from './gate/write-gate.js';
export { createExclusive, replaceFile, prepareOutputDir, createRunDir, writeNewFile } from './gate/outputs.js';
export { footprintsConflict, type Footprint, type StorageUnit } from './host/block-topology.js';
export { parseCmdline, splitCmdline } from './pstore/cmdline.js';
export { parseKconfig } from './pstore/kconfig.js';
export type { PstoreParams, Sourced, ParamSource } from './pstore/params.js';
export { mergeParams } from './pstore/params.js';
export type { Abi, AbiHint, Endian, KmsgLayoutName, ZoneType } from './pstore/abi.js';
export type { Layout, Zone } from './pstore/layout.js';
export { computeLayout, normaliseSizes } from './pstore/layout.js';
export type { EffectiveGeometry } from './pstore/geometry.js';
export { resolveGeometry } from './pstore/geometry.js';
export type { RegionSource } from './pstore/region-source.js';
export { deviceSource, memorySource } from './pstore/region-source.js';
export type { LocatedRegion, LocateOptions } from './pstore/locate-region.js';
export { locatePstoreRegion } from './pstore/locate-region.js';
export type { DecodeResult, DecodedRecord, ZoneReport } from './pstore/decode.js';
export { decodeRegion } from './pstore/decode.js';
export type { Extraction, ExtractOptions } from './pstore/extract.js';
export { extractPstore } from './pstore/extract.js';
export type { ExtractionIndex } from './pstore/extract-writer.js';
export { buildIndex, writeExtraction } from './pstore/extract-writer.js';
export { SymbolTable, loadSymbolTable, inferKaslrSlide } from './symbols/index.js';
export { detectAndDecompress } from './pstore/codecs/index.js';
export type { BoardProfile } from './profile/board-profile.js';
export { loadProfile, listProfiles } from './profile/board-profile.js';
export { layoutPartitions, minimumDeviceSize, writeGpt, compareGpt } from './partition/gpt-write.js';
export { planClear, applyClear } from './pstore/clear.js';
export { planFormat, applyFormat } from './pstore/format.js';
export { boardCmdline } from './pstore/board-cmdline.js';
/** Flashing and reading cards: sources, decompression, bmap, verification. */
export * as flash from './flash/index.js';
/** Provisioning a card from a board profile. */
export * as provision from './provision/index.js';
export { openUsbDevice, findCards } from './reader/open-usb.js';
export { listReaders, probeReader } from './reader/readers.js';
export { parseUsbSelector, resolveUsbSelector } from './reader/selector.js';
export { registerUsbDeviceOpener } from './reader/register.js';
/** SD multiplexers (USB-SD-Mux, SDWire): switch the card between host and board. */
export { controlMux, readerBesideMux, type MuxControlOptions, type MuxReport } from './mux/mux-control.js';
export { SdWire, sdwireBitmodeValue, type SdWireState } from './mux/sdwire.js';
export { UsbSdMux, type MuxMode, type MuxState, type UsbSdMuxVariant } from './mux/usb-sd-mux.js';
