/**
 * The Microchip USB2642 card-reader controller's I²C bridge: vendor SCSI command CFh (Microchip
 * "I2C over USB" user guide 50002283A, p. 20) drives the chip's auxiliary I²C bus through the
 * ordinary mass-storage interface — no kernel `sg` device needed. The USB-SD-Mux switches its card
 * with a GPIO expander on that bus.
 *
 * Both commands carry a 16-byte CDB and a 512-byte data stage, as the usbsdmux tool sends them:
 *  - I²C write (action 23h): CF 23 <addr·2> 00 <len hi> <len lo> 00 0…; the bytes to write lead
 *    the 512-byte data-OUT buffer (rest zero),
 *  - I²C write-read (action 22h): CF 22 <addr·2> <addr·2+1> <read len hi> <read len lo>
 *    <write len> <up to 9 write bytes>; a repeated start reads into the 512-byte data-IN buffer.
 */
import { IoError } from '../errors.js';
import type { ScsiLun } from './scsi-lun.js';

export const USB2642_VENDOR_OPCODE = 0xcf;
export const USB2642_I2C_WRITE = 0x23;
export const USB2642_I2C_WRITE_READ = 0x22;
export const USB2642_CDB_LENGTH = 16;
/** Data stage of both commands: the bridge's buffer, always moved in full. */
export const USB2642_I2C_BUFFER = 512;
/** Most bytes a write-read may write before its repeated start (the CDB's payload field). */
export const USB2642_I2C_MAX_WRITE_READ_PREFIX = 9;

function checkAddress(address: number): void {
  if (!Number.isInteger(address) || address < 0 || address > 0x7f) throw new RangeError(`I²C address ${address} is not a 7-bit address`);
}

function checkBytes(bytes: readonly number[], max: number, what: string): void {
  if (bytes.length > max) throw new RangeError(`${what}: ${bytes.length} bytes, at most ${max}`);
  for (const b of bytes) if (!Number.isInteger(b) || b < 0 || b > 0xff) throw new RangeError(`${what}: ${b} is not a byte`);
}

/** CDB and data-OUT buffer of an I²C write of `bytes` to the 7-bit `address`. */
export function i2cWriteCommand(address: number, bytes: readonly number[]): { cdb: Uint8Array; data: Uint8Array } {
  checkAddress(address);
  checkBytes(bytes, USB2642_I2C_BUFFER, 'I²C write');
  const cdb = new Uint8Array(USB2642_CDB_LENGTH);
  cdb[0] = USB2642_VENDOR_OPCODE;
  cdb[1] = USB2642_I2C_WRITE;
  cdb[2] = (address << 1) & 0xff;
  cdb[4] = (bytes.length >> 8) & 0xff;
  cdb[5] = bytes.length & 0xff;
  const data = new Uint8Array(USB2642_I2C_BUFFER);
  data.set(bytes);
  return { cdb, data };
}

/** CDB of an I²C write of `prefix` (e.g. a register number) followed by a read of `readLength` bytes. */
export function i2cWriteReadCommand(address: number, prefix: readonly number[], readLength: number): { cdb: Uint8Array; inLength: number } {
  checkAddress(address);
  checkBytes(prefix, USB2642_I2C_MAX_WRITE_READ_PREFIX, 'I²C write-read prefix');
  if (!Number.isInteger(readLength) || readLength < 1 || readLength > USB2642_I2C_BUFFER) throw new RangeError(`I²C read of ${readLength} bytes not in 1..${USB2642_I2C_BUFFER}`);
  const cdb = new Uint8Array(USB2642_CDB_LENGTH);
  cdb[0] = USB2642_VENDOR_OPCODE;
  cdb[1] = USB2642_I2C_WRITE_READ;
  cdb[2] = (address << 1) & 0xff;
  cdb[3] = ((address << 1) | 1) & 0xff;
  cdb[4] = (readLength >> 8) & 0xff;
  cdb[5] = readLength & 0xff;
  cdb[6] = prefix.length;
  cdb.set(prefix, 7);
  return { cdb, inLength: USB2642_I2C_BUFFER };
}

/** An I²C bus reached through one USB2642 logical unit. */
export interface I2cBus {
  write(address: number, bytes: readonly number[], signal?: AbortSignal): Promise<void>;
  writeRead(address: number, prefix: readonly number[], readLength: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/**
 * The USB2642's auxiliary I²C bus over a SCSI logical unit. The SCSI layer's retry policy applies
 * (a unit attention after a card change is absorbed and the command sent again: register writes
 * are idempotent); a failed I²C transaction surfaces as the typed sense error of its CSW.
 */
export function usb2642I2cBus(lun: ScsiLun, timeoutMs = 3_000): I2cBus {
  return {
    async write(address, bytes, signal) {
      const { cdb, data } = i2cWriteCommand(address, bytes);
      await lun.command(cdb, { data, timeoutMs, signal, absorbMediumChange: true, retryTimeouts: true });
    },
    async writeRead(address, prefix, readLength, signal) {
      const { cdb, inLength } = i2cWriteReadCommand(address, prefix, readLength);
      const r = await lun.command(cdb, { inLength, timeoutMs, signal, absorbMediumChange: true, retryTimeouts: true });
      if (r.data.length < readLength) throw new IoError(`USB2642 I²C read from 0x${address.toString(16)}: ${r.data.length} of ${readLength} bytes came back`);
      return r.data.subarray(0, readLength);
    },
  };
}
