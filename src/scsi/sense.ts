/**
 * Sense data (fixed 70h/71h and descriptor 72h/73h formats) and its translation into typed
 * errors.
 */
import { IoError, WriteProtectedError, type DeviceFailure } from '../errors.js';

export const SenseKey = {
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  BLANK_CHECK: 0x8,
  VENDOR_SPECIFIC: 0x9,
  COPY_ABORTED: 0xa,
  ABORTED_COMMAND: 0xb,
  VOLUME_OVERFLOW: 0xd,
  MISCOMPARE: 0xe,
} as const;

const SENSE_KEY_NAMES = [
  'no sense',
  'recovered error',
  'not ready',
  'medium error',
  'hardware error',
  'illegal request',
  'unit attention',
  'data protect',
  'blank check',
  'vendor specific',
  'copy aborted',
  'aborted command',
  'reserved',
  'volume overflow',
  'miscompare',
  'completed',
];

/** Additional sense strings (Linux drivers/scsi/constants.c wording) for the codes readers use. */
const ASC_STRINGS: Record<number, string> = {
  0x0000: 'No additional sense information',
  0x0401: 'Logical unit is in process of becoming ready',
  0x0402: 'Logical unit not ready, initializing command required',
  0x0403: 'Logical unit not ready, manual intervention required',
  0x0c00: 'Write error',
  0x1100: 'Unrecovered read error',
  0x1400: 'Recorded entity not found',
  0x2000: 'Invalid command operation code',
  0x2100: 'Logical block address out of range',
  0x2400: 'Invalid field in cdb',
  0x2500: 'Logical unit not supported',
  0x2600: 'Invalid field in parameter list',
  0x2700: 'Write protected',
  0x2701: 'Hardware write protected',
  0x2702: 'Logical unit software write protected',
  0x2800: 'Not ready to ready change, medium may have changed',
  0x2900: 'Power on, reset, or bus device reset occurred',
  0x2901: 'Power on occurred',
  0x2902: 'Scsi bus reset occurred',
  0x2903: 'Bus device reset function occurred',
  0x2904: 'Device internal reset',
  0x2a09: 'Capacity data has changed',
  0x3a00: 'Medium not present',
  0x3a01: 'Medium not present - tray closed',
  0x3a02: 'Medium not present - tray open',
};

export interface SenseData {
  /** Response code: 70h/71h fixed, 72h/73h descriptor. */
  responseCode: number;
  /** True for 71h/73h (deferred error). */
  deferred: boolean;
  key: number;
  asc: number;
  ascq: number;
  /** INFORMATION field when valid (the failing LBA for medium errors). */
  information?: bigint;
}

/**
 * Parses sense data. Returns undefined when the buffer holds no recognisable sense (empty, or an
 * unknown response code): the caller treats a failed command with no sense as a hardware error.
 */
export function parseSense(b: Uint8Array): SenseData | undefined {
  if (b.length < 1) return undefined;
  const code = b[0] & 0x7f;
  if (code === 0x70 || code === 0x71) {
    if (b.length < 3) return undefined;
    const sense: SenseData = {
      responseCode: code,
      deferred: code === 0x71,
      key: b[2] & 0x0f,
      asc: b.length > 12 ? b[12] : 0,
      ascq: b.length > 13 ? b[13] : 0,
    };
    if (b[0] & 0x80 && b.length >= 7) {
      sense.information = BigInt(new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(3, false));
    }
    return sense;
  }
  if (code === 0x72 || code === 0x73) {
    if (b.length < 4) return undefined;
    const sense: SenseData = { responseCode: code, deferred: code === 0x73, key: b[1] & 0x0f, asc: b[2], ascq: b[3] };
    // Walk the descriptors for an INFORMATION descriptor (type 00h, VALID bit in byte 2).
    const end = Math.min(b.length, 8 + (b.length > 7 ? b[7] : 0));
    for (let at = 8; at + 2 <= end;) {
      const type = b[at];
      const len = b[at + 1];
      if (type === 0x00 && len >= 0x0a && at + 12 <= b.length && b[at + 2] & 0x80) {
        sense.information = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at + 4, false);
      }
      at += 2 + len;
    }
    return sense;
  }
  return undefined;
}

/** `02/3A/00` style triple. */
export function senseCode(s: Pick<SenseData, 'key' | 'asc' | 'ascq'>): string {
  const h = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
  return `${s.key.toString(16).toUpperCase()}/${h(s.asc)}/${h(s.ascq)}`;
}

/** Human-readable description: "not ready: Medium not present (2/3A/00)". */
export function describeSense(s: Pick<SenseData, 'key' | 'asc' | 'ascq'>): string {
  const text = ASC_STRINGS[(s.asc << 8) | s.ascq] ?? ASC_STRINGS[s.asc << 8];
  const asc = text ?? `additional sense ${s.asc.toString(16).padStart(2, '0')}h/${s.ascq.toString(16).padStart(2, '0')}h`;
  return `${SENSE_KEY_NAMES[s.key & 0x0f]}: ${asc} (${senseCode(s)})`;
}

/** A command ended in CHECK CONDITION; `sense` is what REQUEST SENSE returned. */
export class ScsiCommandError extends IoError {
  readonly sense: SenseData;
  /** Opcode of the failed command. */
  readonly opcode: number;
  /** What this sense means to retry and resume logic (see DeviceFailure); subclasses set it. */
  static readonly failure: DeviceFailure | undefined = undefined;
  constructor(sense: SenseData, opcode: number, message?: string) {
    super(message ?? `SCSI command 0x${opcode.toString(16).padStart(2, '0')} failed: ${describeSense(sense)}`, { failure: new.target.failure });
    this.sense = sense;
    this.opcode = opcode;
  }
}

/** No card in the slot (02/3A or 06/3A). */
export class NoMediumError extends ScsiCommandError {
  static override readonly failure = 'gone';
}
/** 06/28: a card was inserted or swapped since the last command. */
export class MediumChangedError extends ScsiCommandError {
  static override readonly failure = 'gone';
}
/** 06/29 and other unit attentions (reset, power on, parameters changed). */
export class UnitAttentionError extends ScsiCommandError {
  static override readonly failure = 'transient';
}
/** 02/04/xx and other NOT READY conditions except "no medium". */
export class NotReadyError extends ScsiCommandError {
  static override readonly failure = 'transient';
  /** 02/04/01: worth waiting for. */
  get becomingReady(): boolean {
    return this.sense.asc === 0x04 && this.sense.ascq === 0x01;
  }
  /** 02/04/02: needs START STOP UNIT. */
  get needsStart(): boolean {
    return this.sense.asc === 0x04 && this.sense.ascq === 0x02;
  }
}
/** Sense key 3: the card could not read or write a block. */
export class MediumError extends ScsiCommandError {
  static override readonly failure = 'medium';
  /** The failing LBA when the device reported it. */
  get lba(): bigint | undefined {
    return this.sense.information;
  }
}
/** 05/21/00. */
export class LbaOutOfRangeError extends ScsiCommandError {
  static override readonly failure = 'out-of-range';
}
/** 05/25/00: the reader has no such slot. */
export class LunNotSupportedError extends ScsiCommandError {}
/** Other ILLEGAL REQUEST; `unsupportedCommand` for 05/20/00. */
export class IllegalRequestError extends ScsiCommandError {
  get unsupportedCommand(): boolean {
    return this.sense.asc === 0x20;
  }
}
export class HardwareError extends ScsiCommandError {}
export class AbortedCommandError extends ScsiCommandError {
  static override readonly failure = 'transient';
}

/** The card refused a write (7/27/xx, the SD adapter's lock switch or a read-only LUN). */
export class MediumWriteProtectedError extends WriteProtectedError {
  readonly sense: SenseData;
  readonly opcode: number;
  constructor(sense: SenseData, opcode: number) {
    super(`card is write-protected: ${describeSense(sense)}`);
    this.sense = sense;
    this.opcode = opcode;
  }
}

/**
 * Typed error for a CHECK CONDITION. `undefined` sense (device failed the command but had
 * nothing to say) becomes a HardwareError, as Linux does to avoid retry loops.
 */
export function senseToError(sense: SenseData | undefined, opcode: number): ScsiCommandError | MediumWriteProtectedError {
  const s = sense ?? { responseCode: 0x70, deferred: false, key: SenseKey.HARDWARE_ERROR, asc: 0, ascq: 0 };
  if (!sense || (s.key === SenseKey.NO_SENSE && s.asc === 0 && s.ascq === 0)) {
    return new HardwareError(s, opcode, `SCSI command 0x${opcode.toString(16).padStart(2, '0')} failed without sense data`);
  }
  if ((s.key === SenseKey.NOT_READY || s.key === SenseKey.UNIT_ATTENTION) && s.asc === 0x3a) {
    return new NoMediumError(s, opcode, `no card in the slot (${senseCode(s)})`);
  }
  switch (s.key) {
    case SenseKey.NOT_READY:
      return new NotReadyError(s, opcode);
    case SenseKey.MEDIUM_ERROR: {
      const where = s.information !== undefined ? ` at LBA ${s.information}` : '';
      return new MediumError(s, opcode, `medium error${where}: ${describeSense(s)}`);
    }
    case SenseKey.HARDWARE_ERROR:
      return new HardwareError(s, opcode);
    case SenseKey.ILLEGAL_REQUEST:
      if (s.asc === 0x21) return new LbaOutOfRangeError(s, opcode, `logical block address out of range (${senseCode(s)})`);
      if (s.asc === 0x25) return new LunNotSupportedError(s, opcode, `logical unit not supported (${senseCode(s)})`);
      return new IllegalRequestError(s, opcode);
    case SenseKey.UNIT_ATTENTION:
      if (s.asc === 0x28) return new MediumChangedError(s, opcode, `medium may have changed (${senseCode(s)})`);
      return new UnitAttentionError(s, opcode);
    case SenseKey.DATA_PROTECT:
      if (s.asc === 0x27) return new MediumWriteProtectedError(s, opcode);
      return new ScsiCommandError(s, opcode);
    case SenseKey.ABORTED_COMMAND:
      return new AbortedCommandError(s, opcode);
    default:
      return new ScsiCommandError(s, opcode);
  }
}
