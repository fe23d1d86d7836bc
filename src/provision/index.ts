/** Provisioning cards from board profiles: plan (read-only), then apply. */
export {
  planProvision,
  applyProvision,
  releaseProvision,
  profilePstoreInputs,
  type ProvisionOptions,
  type ProvisionPlan,
  type ProvisionResult,
  type ApplyOptions,
  type TableAction,
  type PlannedPartition,
  type PlannedImage,
  type PlannedFilesystem,
  type PlannedPstore,
  type RecordsAtRisk,
} from './provision.js';
export { inspectImage, writeImage, type Bmap, type ImageInfo, type ImageSpec, type SourceFormat } from './image-source.js';
export { buildCmdline } from './cmdline.js';
export { buildFilesystem, createWorkDir, removeWorkDir, type BuiltFilesystem, type FsRequest } from './fs-build.js';
