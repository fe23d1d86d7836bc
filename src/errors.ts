/**
 * Typed errors shared by every layer. Each carries the process exit code the CLI maps it to,
 * so a script can tell "no pstore region" from "I/O error" from "bad arguments"; each code
 * belongs to one class (EXIT_CLASS) so an orchestrator can tell a lab fault from a bad card
 * from a bad image from a mistake in the command line.
 */
export const ExitCode = {
  /** Done. */
  OK: 0,
  /** Unexpected internal failure. */
  INTERNAL: 1,
  /** Bad command line or arguments that contradict each other (also: no confirmation given). */
  USAGE: 2,
  /** Reaching the device failed: reader or card gone, USB or transport error, a transient fault that outlived its retries. */
  IO: 3,
  /** No pstore/blk region or no valid zone was found where we looked. */
  NO_PSTORE: 4,
  /** The device refused a write (write-protect switch, opened read-only). */
  WRITE_PROTECTED: 5,
  /** The input is not what it claims to be (corrupt table, truncated image, bad profile). */
  BAD_INPUT: 6,
  /** `crashcart wait` gave up: the awaited event did not happen within --timeout. */
  TIMEOUT: 7,
  /** The card could not read or write a block (SCSI medium error, EIO, blocks left unreadable) or refused an address inside its stated size. */
  MEDIUM: 8,
  /** A program crashcart runs on the host (mkfs.vfat, mcopy, mke2fs, …) is not installed. */
  TOOL_MISSING: 9,
  /** flash: the image (or its bmap) is unreadable, corrupt or truncated, or fails a bmap checksum. */
  SOURCE: 10,
  /** flash: the read-back differs from the image. */
  VERIFY: 11,
  /** A write refused for safety (card too small, device mounted or holding the system, ...). */
  REFUSED: 12,
  /**
   * The reader or card went away mid-operation and what came back is not the same card (other
   * capacity, block size or contents): nothing more was written to it.
   */
  CARD_CHANGED: 13,
  /** Interrupted by SIGHUP (128 + 1): stopped at a safe point, resumable. */
  HANGUP: 129,
  /** The user cancelled: Ctrl-C / SIGINT (128 + 2), or declined a prompt. */
  CANCELLED: 130,
  /** stdout or stderr was closed under us (EPIPE, e.g. `| head -1`): 128 + SIGPIPE (13). */
  BROKEN_PIPE: 141,
  /** Interrupted by SIGTERM (128 + 15): stopped at a safe point, resumable. */
  TERMINATED: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What kind of fault an exit code reports, for an orchestrator deciding whom to blame:
 * `infrastructure` — the lab (reader gone, USB error, timeout: retry elsewhere or fix the bench);
 * `media` — the card (write protect, medium errors, bad blocks, a read-back that differs);
 * `image` — the input files (corrupt or truncated image, table or profile);
 * `usage` — the command line (bad arguments, a write refused for safety, not confirmed);
 * `result` — the command worked and the answer is "no" (no pstore region);
 * `interrupted` — a signal or a closed output stopped it; `internal` — a bug; `ok`.
 */
export type ExitClass = 'ok' | 'internal' | 'usage' | 'infrastructure' | 'media' | 'image' | 'result' | 'interrupted';

export const EXIT_CLASS: Readonly<Record<ExitCodeValue, ExitClass>> = {
  [ExitCode.OK]: 'ok',
  [ExitCode.INTERNAL]: 'internal',
  [ExitCode.USAGE]: 'usage',
  [ExitCode.IO]: 'infrastructure',
  [ExitCode.NO_PSTORE]: 'result',
  [ExitCode.WRITE_PROTECTED]: 'media',
  [ExitCode.BAD_INPUT]: 'image',
  [ExitCode.TIMEOUT]: 'infrastructure',
  [ExitCode.MEDIUM]: 'media',
  [ExitCode.TOOL_MISSING]: 'infrastructure',
  [ExitCode.SOURCE]: 'image',
  [ExitCode.VERIFY]: 'media',
  [ExitCode.REFUSED]: 'usage',
  [ExitCode.CARD_CHANGED]: 'infrastructure',
  [ExitCode.HANGUP]: 'interrupted',
  [ExitCode.CANCELLED]: 'interrupted',
  [ExitCode.BROKEN_PIPE]: 'interrupted',
  [ExitCode.TERMINATED]: 'interrupted',
};

/** The class of an exit code (`internal` for a code outside the table). */
export function exitClassOf(code: number): ExitClass {
  return (EXIT_CLASS as Record<number, ExitClass>)[code] ?? 'internal';
}

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

/**
 * What a device failure means to whoever retries or resumes, set by the backend that saw it
 * (part of the BlockDevice contract): the card or reader is gone (resume after re-insertion),
 * a transient condition (retry), a medium error (retry, then a bad block), an access outside
 * the device, or a transfer cancelled under us. Undefined: final.
 */
export type DeviceFailure = 'gone' | 'transient' | 'medium' | 'out-of-range' | 'cancelled';

export class IoError extends CrashcartError {
  readonly failure?: DeviceFailure;
  constructor(message: string, options?: { cause?: unknown; failure?: DeviceFailure }) {
    super(message, ioExitCode(options?.failure ?? deviceFailureOf(options?.cause)), options);
    if (options?.failure) this.failure = options.failure;
  }
}

/** The exit code of a device failure: the card's own fault (medium, out of range) or the way to it (everything else). */
export function ioExitCode(failure: DeviceFailure | undefined): ExitCodeValue {
  return failure === 'medium' || failure === 'out-of-range' ? ExitCode.MEDIUM : ExitCode.IO;
}

/** The failure kind of `e`, or of the first error in its cause chain that has one. */
export function deviceFailureOf(e: unknown): DeviceFailure | undefined {
  for (let cur = e, depth = 0; cur && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (cur instanceof IoError && cur.failure) return cur.failure;
  }
  return undefined;
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

/**
 * The write gate refused a target before anything was written: it is an input, a disk this
 * system uses or an existing output. One class and one exit
 * code for every command.
 */
export class RefusedError extends CrashcartError {
  constructor(message: string) {
    super(message, ExitCode.REFUSED);
  }
}

/**
 * A reader or card that went away came back as a different card (capacity, block size, reader, or
 * the bytes last read or written differ). The operation stopped before touching it.
 */
export class CardChangedError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.CARD_CHANGED, options);
  }
}

/** A host program is missing; the message names the Debian package that provides it. */
export class ToolMissingError extends CrashcartError {
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
    purpose: string,
  ) {
    super(`${tool} is not installed; it is needed ${purpose} (Debian package ${debianPackage}: apt-get install ${debianPackage})`, ExitCode.TOOL_MISSING);
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
  constructor(message = 'cancelled', exitCode: ExitCodeValue = ExitCode.CANCELLED) {
    super(message, exitCode);
  }
}
