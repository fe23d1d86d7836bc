/**
 * Errors of the flash and read pipelines. Exit codes extend the shared table in ../errors.ts
 * so a script can tell the failure classes apart:
 *
 * | code | meaning                                                                   |
 * | ---- | ------------------------------------------------------------------------- |
 * | 2    | usage (bad arguments, no confirmation given)                               |
 * | 3    | device error (I/O failure, card or reader gone)                            |
 * | 5    | device is write-protected                                                  |
 * | 7    | (taken: timeout, ../errors.ts)                                             |
 * | 10   | source error (unreadable, corrupt or truncated image, bmap mismatch)       |
 * | 11   | verification failure (read-back differs from the image)                    |
 * | 12   | refused for safety (card too small, device mounted or holding the system)   |
 * | 130  | cancelled (Ctrl-C, prompt declined)                                        |
 */
import { CrashcartError, type ExitCodeValue } from '../errors.js';

export const FlashExitCode = {
  SOURCE: 10,
  VERIFY: 11,
  REFUSED: 12,
} as const;

/** The image (or its bmap) cannot be read, is corrupt, truncated, or fails a bmap checksum. */
export class SourceError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, FlashExitCode.SOURCE as unknown as ExitCodeValue, options);
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
    super(message, FlashExitCode.VERIFY as unknown as ExitCodeValue);
    this.ranges = ranges;
  }
}

/** A safety check refused the destination before anything was written. */
export class RefusedError extends CrashcartError {
  constructor(message: string) {
    super(message, FlashExitCode.REFUSED as unknown as ExitCodeValue);
  }
}

/**
 * The destination stopped answering in the middle of a write (reader unplugged, card pulled).
 * `resumeOffset` is the image offset up to which everything is known to be written and
 * flushed; `--resume` continues there.
 */
export class DeviceGoneDuringFlashError extends CrashcartError {
  readonly resumeOffset: number;
  constructor(message: string, resumeOffset: number, options?: { cause?: unknown }) {
    super(message, 3, options);
    this.resumeOffset = resumeOffset;
  }
}
