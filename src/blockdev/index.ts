export type { BlockDevice, BlockDeviceInfo, IoOptions } from './block-device.js';
export { readRange, writeRange } from './io.js';
export { MemoryDevice, type MemoryDeviceOptions } from './memory-device.js';
export { ImageFileDevice, openImageFile, type ImageFileOptions } from './image-file-device.js';
export {
  OsBlockDevice,
  openOsBlockDevice,
  systemDiskCheck,
  describeBlockNode,
  parseMountinfo,
  parseProcMounts,
  parseProcSwaps,
  type OsBlockDeviceOptions,
  type SystemPaths,
  type SystemDiskReport,
  type MountUse,
  type BlockNodeInfo,
} from './os-block-device.js';
export { RegionDevice } from './region-device.js';
export { openDevice, registerDeviceOpener, unregisterDeviceOpener, type DeviceOpener, type OpenDeviceOptions } from './open-device.js';
export { formatBytes } from './device-util.js';
