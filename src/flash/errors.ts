/**
 * Errors of the flash and read pipelines. Their exit codes are in the one table in ../errors.ts
 * (SOURCE 10, VERIFY 11, REFUSED 12, IO 3 for a device gone mid-write).
 */
import { CrashcartError, deviceFailureOf, ExitCode, ioExitCode } from '../errors.js';

/** The flash codes of the shared table, under their old names. */
export const FlashExitCode = {
  SOURCE: ExitCode.SOURCE,
  VERIFY: ExitCode.VERIFY,
  REFUSED: ExitCode.REFUSED,
} as const;

/** The image (or its bmap) cannot be read, is corrupt, truncated, or fails a bmap checksum. */
export class SourceError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.SOURCE, options);
  }
}

/** A byte range read back from the device differs from what was written. */
export interface MismatchRange {
  /** Device byte offset of the first byte of the range. */
  start: number;
  /** Exclusive end. */
  end: number;
  /** True when the range was narrowed to the exact differing bytes (source re-read). */
  exact: boolean;
}

export class VerificationError extends CrashcartError {
  readonly ranges: MismatchRange[];
  constructor(message: string, ranges: MismatchRange[]) {
    super(message, ExitCode.VERIFY);
    this.ranges = ranges;
  }
}

export { RefusedError } from '../errors.js';

/**
 * The destination stopped answering in the middle of a write (reader unplugged, card pulled).
 * `resumeOffset` is the image offset up to which everything is known to be written and
 * flushed; `--resume` continues there.
 */
export class DeviceGoneDuringFlashError extends CrashcartError {
  readonly resumeOffset: number;
  constructor(message: string, resumeOffset: number, options?: { cause?: unknown }) {
    // A bad block that outlived its retries is the card's fault, anything else the way to it.
    super(message, ioExitCode(deviceFailureOf(options?.cause)), options);
    this.resumeOffset = resumeOffset;
  }
}
