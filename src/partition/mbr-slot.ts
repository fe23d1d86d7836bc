/**
 * One 16-byte MBR table slot, encoded as fdisk and sgdisk write it (CHS in the 255-head,
 * 63-sector geometry, LBA start and length), and an empty boot sector with its signature. Shared
 * by the MBR writer (mbr-write.ts) and the protective or hybrid MBR in front of a GPT
 * (hybrid-mbr.ts).
 */

/** CHS address of an LBA in the 255-head, 63-sector geometry fdisk uses; past 1023 cylinders the "too large" marker. */
export function chs(lba: number): [number, number, number] {
  if (lba >= 1024 * 255 * 63) return [0xfe, 0xff, 0xff];
  const c = Math.floor(lba / (255 * 63));
  const h = Math.floor(lba / 63) % 255;
  const s = (lba % 63) + 1;
  return [h, s | ((c >> 2) & 0xc0), c & 0xff];
}

/** One 16-byte table slot at `o`: status, CHS first, type, CHS last, LBA start, sectors. */
export function setSlot(sector: Uint8Array, slot: number, e: { bootable?: boolean; type: number; firstLba: number; lastLba: number }, base: number): void {
  const o = 446 + slot * 16;
  const dv = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  sector[o] = e.bootable ? 0x80 : 0;
  sector.set(chs(e.firstLba), o + 1);
  sector[o + 4] = e.type;
  sector.set(chs(e.lastLba), o + 5);
  dv.setUint32(o + 8, e.firstLba - base, true);
  dv.setUint32(o + 12, e.lastLba - e.firstLba + 1, true);
}

export function bootSector(size: number): Uint8Array {
  const s = new Uint8Array(size);
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}
