/**
 * SCSI command descriptor blocks used with USB card readers (SPC/SBC layouts, big-endian fields)
 * and parsers of their responses.
 */

export const Op = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  INQUIRY: 0x12,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  PREVENT_ALLOW_MEDIUM_REMOVAL: 0x1e,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  SYNCHRONIZE_CACHE_10: 0x35,
  MODE_SENSE_10: 0x5a,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  SERVICE_ACTION_IN_16: 0x9e,
} as const;

export const SA_READ_CAPACITY_16 = 0x10;
export const INQUIRY_LENGTH = 36;
export const SENSE_LENGTH = 18;
/** Linux asks MODE SENSE(6) for all pages with 192 bytes (Windows' length); readers expect it. */
export const MODE_SENSE_ALL_PAGES_LENGTH = 192;

function u16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}
function u32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, false);
}
function u64(b: Uint8Array, at: number, v: bigint): void {
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, v, false);
}

function checkCount(blocks: number, max: number): void {
  if (!Number.isInteger(blocks) || blocks < 0 || blocks > max) throw new RangeError(`transfer length ${blocks} blocks not in 0..${max}`);
}
function checkLba(lba: bigint, max: bigint): void {
  if (lba < 0n || lba > max) throw new RangeError(`LBA ${lba} out of range for this CDB`);
}

export const cdb = {
  testUnitReady(): Uint8Array {
    return new Uint8Array(6);
  },
  requestSense(allocationLength = SENSE_LENGTH): Uint8Array {
    const c = new Uint8Array(6);
    c[0] = Op.REQUEST_SENSE;
    c[4] = allocationLength;
    return c;
  },
  inquiry(allocationLength = INQUIRY_LENGTH): Uint8Array {
    const c = new Uint8Array(6);
    c[0] = Op.INQUIRY;
    u16(c, 3, allocationLength);
    return c;
  },
  readCapacity10(): Uint8Array {
    const c = new Uint8Array(10);
    c[0] = Op.READ_CAPACITY_10;
    return c;
  },
  readCapacity16(allocationLength = 32): Uint8Array {
    const c = new Uint8Array(16);
    c[0] = Op.SERVICE_ACTION_IN_16;
    c[1] = SA_READ_CAPACITY_16;
    u32(c, 10, allocationLength);
    return c;
  },
  read10(lba: bigint, blocks: number): Uint8Array {
    checkLba(lba, 0xffffffffn);
    checkCount(blocks, 0xffff);
    const c = new Uint8Array(10);
    c[0] = Op.READ_10;
    u32(c, 2, Number(lba));
    u16(c, 7, blocks);
    return c;
  },
  write10(lba: bigint, blocks: number): Uint8Array {
    const c = cdb.read10(lba, blocks);
    c[0] = Op.WRITE_10;
    return c;
  },
  read16(lba: bigint, blocks: number): Uint8Array {
    checkLba(lba, 0xffffffffffffffffn);
    checkCount(blocks, 0xffffffff);
    const c = new Uint8Array(16);
    c[0] = Op.READ_16;
    u64(c, 2, lba);
    u32(c, 10, blocks);
    return c;
  },
  write16(lba: bigint, blocks: number): Uint8Array {
    const c = cdb.read16(lba, blocks);
    c[0] = Op.WRITE_16;
    return c;
  },
  synchronizeCache10(): Uint8Array {
    const c = new Uint8Array(10);
    c[0] = Op.SYNCHRONIZE_CACHE_10;
    return c;
  },
  /** MODE SENSE(6), current values, page 3Fh (all pages) by default. */
  modeSense6(page = 0x3f, allocationLength = MODE_SENSE_ALL_PAGES_LENGTH): Uint8Array {
    const c = new Uint8Array(6);
    c[0] = Op.MODE_SENSE_6;
    c[2] = page & 0x3f;
    c[4] = allocationLength;
    return c;
  },
  modeSense10(page = 0x3f, allocationLength = MODE_SENSE_ALL_PAGES_LENGTH): Uint8Array {
    const c = new Uint8Array(10);
    c[0] = Op.MODE_SENSE_10;
    c[2] = page & 0x3f;
    u16(c, 7, allocationLength);
    return c;
  },
  preventAllowMediumRemoval(prevent: boolean): Uint8Array {
    const c = new Uint8Array(6);
    c[0] = Op.PREVENT_ALLOW_MEDIUM_REMOVAL;
    c[4] = prevent ? 1 : 0;
    return c;
  },
  /** START STOP UNIT: start=true spins up / readies; loej with start=false ejects. */
  startStopUnit(start: boolean, opts: { loadEject?: boolean; immediate?: boolean } = {}): Uint8Array {
    const c = new Uint8Array(6);
    c[0] = Op.START_STOP_UNIT;
    c[1] = opts.immediate ? 1 : 0;
    c[4] = (opts.loadEject ? 2 : 0) | (start ? 1 : 0);
    return c;
  },
};

export interface InquiryData {
  /** Peripheral qualifier: 0 = connected, 3 = LUN not supported. */
  qualifier: number;
  /** Peripheral device type: 0 = direct access block device. */
  deviceType: number;
  removable: boolean;
  version: number;
  responseFormat: number;
  vendor: string;
  product: string;
  revision: string;
}

function ascii(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < Math.min(to, b.length); i++) {
    const ch = b[i];
    s += ch >= 0x20 && ch < 0x7f ? String.fromCharCode(ch) : ' ';
  }
  return s.trim();
}

/** Parses standard INQUIRY data (at least the first 5 bytes; the strings may be cut short). */
export function parseInquiry(b: Uint8Array): InquiryData {
  if (b.length < 5) throw new RangeError(`INQUIRY data too short (${b.length} bytes)`);
  return {
    qualifier: b[0] >> 5,
    deviceType: b[0] & 0x1f,
    removable: (b[1] & 0x80) !== 0,
    version: b[2],
    responseFormat: b[3] & 0x0f,
    vendor: ascii(b, 8, 16),
    product: ascii(b, 16, 32),
    revision: ascii(b, 32, 36),
  };
}

export interface CapacityData {
  /** Last addressable LBA as reported. */
  lastLba: bigint;
  blockSize: number;
}

export function parseReadCapacity10(b: Uint8Array): CapacityData {
  if (b.length < 8) throw new RangeError(`READ CAPACITY(10) data too short (${b.length} bytes)`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { lastLba: BigInt(v.getUint32(0, false)), blockSize: v.getUint32(4, false) };
}

export function parseReadCapacity16(b: Uint8Array): CapacityData {
  if (b.length < 12) throw new RangeError(`READ CAPACITY(16) data too short (${b.length} bytes)`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { lastLba: v.getBigUint64(0, false), blockSize: v.getUint32(8, false) };
}

/** The WP bit of a MODE SENSE(6) or (10) parameter header. */
export function parseModeSenseWriteProtect(b: Uint8Array, ten: boolean): boolean {
  const at = ten ? 3 : 2;
  if (b.length <= at) throw new RangeError(`MODE SENSE header too short (${b.length} bytes)`);
  return (b[at] & 0x80) !== 0;
}
