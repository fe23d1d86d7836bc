/**
 * The bytes of the Bulk-Only Transport on the wire (BOT 1.0): the 31-byte Command Block Wrapper,
 * the 13-byte Command Status Wrapper and the class-specific control requests. Shared by the host
 * engine (bot.ts) and the simulated reader of the tests.
 */
export const CBW_SIGNATURE = 0x43425355;
export const CSW_SIGNATURE = 0x53425355;
export const CBW_LENGTH = 31;
export const CSW_LENGTH = 13;
/** Class-specific requests (interface recipient). */
export const BOMS_RESET = 0xff;
export const GET_MAX_LUN = 0xfe;
/** Highest LUN a BOT device may report. */
export const MAX_LUN_LIMIT = 15;

export type CswStatus = 0 | 1 | 2;

export interface Cbw {
  tag: number;
  dataTransferLength: number;
  directionIn: boolean;
  lun: number;
  cdb: Uint8Array;
}

export interface Csw {
  signature: number;
  tag: number;
  residue: number;
  status: number;
}

/** Encodes a 31-byte Command Block Wrapper. */
export function encodeCbw(c: Cbw): Uint8Array {
  if (c.cdb.length < 1 || c.cdb.length > 16) throw new RangeError(`CDB length ${c.cdb.length} not in 1..16`);
  if (!Number.isInteger(c.lun) || c.lun < 0 || c.lun > MAX_LUN_LIMIT) throw new RangeError(`LUN ${c.lun} not in 0..15`);
  if (!Number.isInteger(c.dataTransferLength) || c.dataTransferLength < 0 || c.dataTransferLength > 0xffffffff) {
    throw new RangeError(`data transfer length ${c.dataTransferLength} out of range`);
  }
  const b = new Uint8Array(CBW_LENGTH);
  const v = new DataView(b.buffer);
  v.setUint32(0, CBW_SIGNATURE, true);
  v.setUint32(4, c.tag >>> 0, true);
  v.setUint32(8, c.dataTransferLength, true);
  b[12] = c.directionIn ? 0x80 : 0x00;
  b[13] = c.lun & 0x0f;
  b[14] = c.cdb.length;
  b.set(c.cdb, 15);
  return b;
}

/** Decodes a CBW; undefined when it is not exactly 31 bytes with the right signature. */
export function decodeCbw(b: Uint8Array): Cbw | undefined {
  if (b.length !== CBW_LENGTH) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== CBW_SIGNATURE) return undefined;
  const len = b[14] & 0x1f;
  if (len < 1 || len > 16) return undefined;
  return {
    tag: v.getUint32(4, true),
    dataTransferLength: v.getUint32(8, true),
    directionIn: (b[12] & 0x80) !== 0,
    lun: b[13] & 0x0f,
    cdb: b.slice(15, 15 + len),
  };
}

export function encodeCsw(c: Csw): Uint8Array {
  const b = new Uint8Array(CSW_LENGTH);
  const v = new DataView(b.buffer);
  v.setUint32(0, c.signature >>> 0, true);
  v.setUint32(4, c.tag >>> 0, true);
  v.setUint32(8, c.residue >>> 0, true);
  b[12] = c.status & 0xff;
  return b;
}

/** Decodes 13 bytes into CSW fields without judging them; undefined for any other length. */
export function decodeCsw(b: Uint8Array): Csw | undefined {
  if (b.length !== CSW_LENGTH) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { signature: v.getUint32(0, true), tag: v.getUint32(4, true), residue: v.getUint32(8, true), status: b[12] };
}
