/**
 * Typed errors shared by every layer. Each carries the process exit code the CLI maps it to,
 * so a script can tell "no pstore region" from "I/O error" from "bad arguments".
 */
export const ExitCode = {
  OK: 0,
  /** Unexpected internal failure. */
  INTERNAL: 1,
  /** Bad command line or arguments that contradict each other. */
  USAGE: 2,
  /** Reading or writing the device failed (short read, EIO, device gone). */
  IO: 3,
  /** No pstore/blk region or no valid zone was found where we looked. */
  NO_PSTORE: 4,
  /** The device refused a write (write-protect switch, opened read-only). */
  WRITE_PROTECTED: 5,
  /** The input is not what it claims to be (corrupt table, truncated image, bad profile). */
  BAD_INPUT: 6,
  /** `crashcart wait` gave up: the awaited event did not happen within --timeout. */
  TIMEOUT: 7,
  /** The user cancelled (Ctrl-C, declined a prompt). */
  CANCELLED: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class CrashcartError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(message: string, exitCode: ExitCodeValue = ExitCode.INTERNAL, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

export class UsageError extends CrashcartError {
  constructor(message: string) {
    super(message, ExitCode.USAGE);
  }
}

export class IoError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.IO, options);
  }
}

export class WriteProtectedError extends CrashcartError {
  constructor(message: string) {
    super(message, ExitCode.WRITE_PROTECTED);
  }
}

export class BadInputError extends CrashcartError {
  constructor(message: string) {
    super(message, ExitCode.BAD_INPUT);
  }
}

export class NoPstoreError extends CrashcartError {
  constructor(message: string) {
    super(message, ExitCode.NO_PSTORE);
  }
}

/** A wait (card insertion/removal) ran out of time. */
export class WaitTimeoutError extends CrashcartError {
  constructor(message: string) {
    super(message, ExitCode.TIMEOUT);
  }
}

export class CancelledError extends CrashcartError {
  constructor(message = 'cancelled') {
    super(message, ExitCode.CANCELLED);
  }
}
