/**
 * Errors of the USB transport and the Bulk-Only Transport layer. They extend the shared
 * typed errors so the CLI maps them to the right exit code.
 */
import { CrashcartError, ExitCode, IoError } from '../errors.js';

/** How a single USB transfer failed, independent of the binding that reported it. */
export type TransferErrorKind = 'stall' | 'timeout' | 'babble' | 'disconnected' | 'cancelled' | 'io';

/** A USB transfer (bulk or control) failed. `kind` drives the BOT state machine. */
export class UsbTransferError extends IoError {
  readonly kind: TransferErrorKind;
  constructor(kind: TransferErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, { ...options, failure: kind === 'disconnected' ? 'gone' : kind === 'cancelled' ? 'cancelled' : 'transient' });
    this.kind = kind;
  }
}

/** The reader is gone (unplugged, powered off, re-enumerated under a new address). */
export class DeviceGoneError extends IoError {
  constructor(message = 'USB device disconnected', options?: { cause?: unknown }) {
    super(message, { ...options, failure: 'gone' });
  }
}

/**
 * A Bulk-Only Transport exchange failed at the transport level (invalid or missing CSW, phase
 * error, timeout, babble). `recovered` tells whether reset recovery brought the device back to a
 * state where the next command can be sent; `reason` is what went wrong.
 */
export type BotFailure = 'phase-error' | 'invalid-csw' | 'timeout' | 'babble' | 'cbw-failed' | 'csw-failed' | 'data-failed';

export class BotTransportError extends IoError {
  readonly reason: BotFailure;
  readonly recovered: boolean;
  constructor(reason: BotFailure, recovered: boolean, message: string, options?: { cause?: unknown }) {
    super(message, { ...options, failure: recovered ? 'transient' : 'gone' });
    this.reason = reason;
    this.recovered = recovered;
  }
}

/** A command the device never answered, after which reset recovery brought it back (a hang, not a gone device). */
export function isRecoveredTimeout(e: unknown): e is BotTransportError {
  return e instanceof BotTransportError && e.reason === 'timeout' && e.recovered;
}

/** The OS refused access to the device node; the message says how to grant it. */
export class UsbAccessError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.IO, options);
  }
}

/** Another driver or process holds the interface. */
export class UsbBusyError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.IO, options);
  }
}

/** The platform or binding cannot do what was asked (no WinUSB driver, detach off Linux…). */
export class UsbNotSupportedError extends CrashcartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.IO, options);
  }
}
