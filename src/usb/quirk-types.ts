/**
 * What a reader does wrong, as the transport and SCSI layers need to know it (each flag named
 * after its Linux usb-storage counterpart). Which readers have which quirks is the reader
 * layer's business (src/reader/reader-profiles.ts).
 */
export interface ReaderQuirks {
  /** Largest transfer per command in logical blocks (Linux MAX_SECTORS_64 ⇒ 64). */
  maxSectors?: number;
  /** Never send READ CAPACITY(16) (NO_READ_CAPACITY_16). */
  noReadCapacity16?: boolean;
  /** READ CAPACITY reports the block count instead of the last LBA (FIX_CAPACITY). */
  capacityOffByOne?: boolean;
  /** Ignore dCSWDataResidue (IGNORE_RESIDUE). */
  ignoreResidue?: boolean;
  /** Accept a CSW tag mismatch (BULK_IGNORE_TAG). */
  ignoreTag?: boolean;
  /** Use LUN 0 only, whatever Get Max LUN says (SINGLE_LUN). */
  singleLun?: boolean;
  /** Do not read the WP bit with MODE SENSE; assume writable (NO_WP_DETECT). */
  noWriteProtectDetect?: boolean;
  /** Split I/O touching the last 8 blocks into single-block commands. Default true. */
  lastSectorBug?: boolean;
  /** REQUEST SENSE after SYNCHRONIZE CACHE (SENSE_AFTER_SYNC). */
  senseAfterSync?: boolean;
  /** Never send SYNCHRONIZE CACHE. */
  noSynchronizeCache?: boolean;
}
