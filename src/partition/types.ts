/** Partition-table data shared by the GPT and MBR parsers. Offsets and sizes are in bytes. */

export interface Partition {
  /** Linux partition number: GPT entry index + 1; MBR slots 1–4, logical partitions 5+. */
  number: number;
  /** Byte offset of the first byte. */
  start: number;
  /** Size in bytes. */
  size: number;
  /** First and last logical block (inclusive), in the table's sector size. */
  firstLba: number;
  lastLba: number;
  /** GPT partition name (UTF-16LE in the table). */
  name?: string;
  /** GPT partition type GUID, uppercase (as sfdisk prints it). */
  typeGuid?: string;
  /** MBR partition type byte (0x83 Linux, 0x0c FAT32 LBA, …). */
  type?: number;
  /**
   * Linux PARTUUID: the GPT unique partition GUID (uppercase), or for MBR "SSSSSSSS-NN"
   * (disk signature, partition number, lowercase hex) as the kernel spells it.
   */
  uuid?: string;
  /** GPT attribute bits that are set (0 required, 1 no-block-IO, 2 legacy BIOS bootable, 48–63 type-specific). */
  attributeBits?: number[];
  /** MBR boot flag (0x80). */
  bootable?: boolean;
  /** MBR: a logical partition inside an extended one. */
  logical?: boolean;
  /** MBR: the extended partition container itself. */
  extended?: boolean;
}

/** A used slot of a boot sector's table, as stored (LBAs absolute for sector 0). */
export interface MbrSlotInfo {
  /** 0–3. */
  slot: number;
  bootable: boolean;
  type: number;
  firstLba: number;
  sectors: number;
}

export interface PartitionTable {
  kind: 'gpt' | 'mbr';
  /** Logical sector size the table is laid out in (512, or 4096 for GPT on 4Kn). */
  sectorSize: number;
  /** Sorted by number. */
  partitions: Partition[];
  /** Non-fatal problems found while parsing, human-readable. */
  warnings: string[];
  /** GPT disk GUID, uppercase. */
  diskGuid?: string;
  /** GPT: which header the partitions were read from. */
  header?: 'primary' | 'backup';
  /** MBR disk signature (bytes 440–443) as 8 lowercase hex digits. */
  diskSignature?: string;
  /** GPT: the used slots of sector 0 — the protective MBR's 0xEE slot, or a hybrid MBR's slots. */
  mbrSlots?: MbrSlotInfo[];
}
