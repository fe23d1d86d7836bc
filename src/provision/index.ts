/** Provisioning cards from board profiles: plan (read-only), then apply. */
export {
  planProvision,
  applyProvision,
  profilePstoreInputs,
  type ProvisionOptions,
  type ProvisionPlan,
  type ProvisionResult,
  type ApplyOptions,
  type TableAction,
  type PlannedPartition,
  type PlannedImage,
  type PlannedPstore,
  type RecordsAtRisk,
} from './provision.js';
export { inspectImage, writeImage, type Bmap, type ImageInfo, type ImageSpec, type SourceFormat } from './image-source.js';
export { buildCmdline } from './cmdline.js';
