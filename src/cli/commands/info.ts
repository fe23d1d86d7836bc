import type { InfoArgs } from '../args/info.js';
import type { BlockDevice } from '../../blockdev/block-device.js';
import { formatBytes } from '../../util/format-bytes.js';
import { openDevice } from '../../blockdev/open-device.js';
import { BadInputError, NoPstoreError, UsageError } from '../../errors.js';
import { readPartitionTable } from '../../partition/partition-table.js';
import type { PartitionTable } from '../../partition/types.js';
import { locatePstoreRegion } from '../../pstore/locate-region.js';
import { scanSignatures } from '../../pstore/scan.js';
import type { UsbOpenOptions } from '../../reader/open-usb.js';
import { isUsbSelector } from '../../reader/selector.js';
import { hex4 } from '../../usb/transport.js';

export interface DeviceInfoReport {
  device: string;
  kind: string;
  vendor?: string;
  model?: string;
  serial?: string;
  size: number;
  blockSize: number;
  blocks: number;
  /** Medium write-protected (USB: MODE SENSE WP bit); null where the backend cannot tell. */
  writeProtected: boolean | null;
  usb?: {
    port: string;
    id: string;
    lun: number;
    luns: number;
    inquiry: { vendor: string; product: string; revision: string };
    transferBytes: number;
  };
  partitionTable:
    | (Pick<PartitionTable, 'kind' | 'sectorSize' | 'diskGuid' | 'diskSignature' | 'warnings'> & {
        partitions: { number: number; start: number; size: number; name?: string; type?: string; uuid?: string }[];
      })
    | null;
  partitionTableError?: string;
  pstore: {
    found: boolean;
    region?: { description: string; offset: number; size: number; partition?: number };
    signatures?: { total: number; byType: Record<string, number>; endian?: string };
    error?: string;
  };
}

/**
 * Opens a device for reading: `usb…` selectors (including bare `usb`) go to the USB driver. The USB
 * stack (open-usb.js, usb-device.js) is loaded for a USB device only, here and in deviceInfo.
 */
export async function openForInfo(spec: string, usb: UsbOpenOptions = {}): Promise<BlockDevice> {
  if (isUsbSelector(spec)) return (await import('../../reader/open-usb.js')).openUsbDevice(spec, { ...usb, write: false });
  return openDevice(spec, { write: false });
}

export async function deviceInfo(dev: BlockDevice): Promise<DeviceInfoReport> {
  const r: DeviceInfoReport = {
    device: dev.info.name,
    kind: dev.info.kind,
    ...(dev.info.vendor ? { vendor: dev.info.vendor } : {}),
    ...(dev.info.model ? { model: dev.info.model } : {}),
    ...(dev.info.serial ? { serial: dev.info.serial } : {}),
    size: dev.size,
    blockSize: dev.blockSize,
    blocks: Math.floor(dev.size / dev.blockSize),
    writeProtected: null,
    partitionTable: null,
    pstore: { found: false },
  };
  // Every UsbBlockDevice reports kind 'usb'.
  const UsbBlockDevice = dev.info.kind === 'usb' ? (await import('../../blockdev/usb-device.js')).UsbBlockDevice : undefined;
  if (UsbBlockDevice && dev instanceof UsbBlockDevice) {
    const t = dev.scsi.bot.transport.device;
    const q = dev.state.inquiry;
    r.writeProtected = dev.state.writeProtected;
    r.usb = {
      port: t.portPath,
      id: `${hex4(t.vendorId)}:${hex4(t.productId)}`,
      lun: dev.scsi.lun,
      luns: dev.state.maxLun + 1,
      inquiry: { vendor: q.vendor, product: q.product, revision: q.revision },
      transferBytes: dev.transferBytes,
    };
  }
  try {
    const t = await readPartitionTable(dev);
    if (t) {
      r.partitionTable = {
        kind: t.kind,
        sectorSize: t.sectorSize,
        ...(t.diskGuid ? { diskGuid: t.diskGuid } : {}),
        ...(t.diskSignature ? { diskSignature: t.diskSignature } : {}),
        warnings: t.warnings,
        partitions: t.partitions.map((p) => ({
          number: p.number,
          start: p.start,
          size: p.size,
          ...(p.name ? { name: p.name } : {}),
          ...(p.typeGuid ? { type: p.typeGuid } : p.type !== undefined ? { type: `0x${p.type.toString(16).padStart(2, '0')}` } : {}),
          ...(p.uuid ? { uuid: p.uuid } : {}),
        })),
      };
    }
  } catch (e) {
    if (!(e instanceof BadInputError)) throw e;
    r.partitionTableError = e.message;
  }
  try {
    const region = await locatePstoreRegion(dev);
    const sigs = await scanSignatures(region.source);
    const byType: Record<string, number> = {};
    for (const s of sigs) byType[s.type] = (byType[s.type] ?? 0) + 1;
    const endians = [...new Set(sigs.map((s) => s.endian))];
    r.pstore = {
      found: sigs.length > 0,
      region: { description: region.description, offset: region.offset, size: region.size, ...(region.partition ? { partition: region.partition.number } : {}) },
      signatures: { total: sigs.length, byType, ...(endians.length === 1 ? { endian: endians[0] } : {}) },
    };
  } catch (e) {
    if (!(e instanceof NoPstoreError) && !(e instanceof UsageError) && !(e instanceof BadInputError)) throw e;
    r.pstore = { found: false, error: e.message };
  }
  return r;
}

export function formatDeviceInfo(r: DeviceInfoReport): string {
  const lines: string[] = [];
  const add = (k: string, v: string) => lines.push(`${k.padEnd(11)}${v}`);
  const model = [r.vendor, r.model].filter(Boolean).join(' ');
  add('device', `${r.device}${model ? ` (${model}${r.serial ? `, serial ${r.serial}` : ''})` : ''}`);
  add('capacity', `${r.size} bytes (${formatBytes(r.size)}), ${r.blocks} blocks of ${r.blockSize} bytes`);
  add('write', r.writeProtected === null ? 'protection unknown for this kind of device' : r.writeProtected ? 'write-protected' : 'writable');
  if (r.usb) {
    const q = r.usb.inquiry;
    add(
      'reader',
      `usb:${r.usb.port} ${r.usb.id}, slot ${r.usb.lun} of ${r.usb.luns}, INQUIRY "${q.vendor}" "${q.product}" "${q.revision}", ${formatBytes(r.usb.transferBytes)} per command`,
    );
  }
  const t = r.partitionTable;
  if (r.partitionTableError) add('partitions', `unreadable: ${r.partitionTableError}`);
  else if (!t) add('partitions', 'none (no partition table)');
  else {
    add('partitions', `${t.kind.toUpperCase()}${t.diskGuid ? ` ${t.diskGuid}` : ''}${t.diskSignature ? ` signature ${t.diskSignature}` : ''}, ${t.partitions.length} partition(s)`);
    for (const p of t.partitions) {
      lines.push(
        `  ${String(p.number).padStart(3)}  offset ${String(p.start).padStart(12)}  size ${String(p.size).padStart(12)} (${formatBytes(p.size)})${p.name ? `  "${p.name}"` : ''}${p.type ? `  ${p.type}` : ''}`,
      );
    }
    for (const w of t.warnings) lines.push(`  warning: ${w}`);
  }
  const ps = r.pstore;
  if (ps.error) add('pstore', `not found: ${ps.error}`);
  else if (ps.found && ps.region && ps.signatures) {
    const types = Object.entries(ps.signatures.byType)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ');
    add('pstore', `${ps.region.description}`);
    lines.push(`           ${ps.signatures.total} zone signature(s): ${types}${ps.signatures.endian ? `, ${ps.signatures.endian === 'le' ? 'little' : 'big'}-endian` : ''}`);
  } else add('pstore', `no pstore/blk zone signatures in ${ps.region?.description ?? 'the device'}`);
  return lines.join('\n') + '\n';
}

export async function runInfo(a: InfoArgs): Promise<void> {
  const dev = await openForInfo(a.device);
  try {
    const r = await deviceInfo(dev);
    if (a.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else process.stdout.write(formatDeviceInfo(r));
  } finally {
    await dev.close();
  }
}
