/**
 * Hints for readers without a profile, or whose profile lacks a quirk: what crashcart saw a reader
 * do that a reader profile (`hw-profiles/readers`) would make the default. crashcart already copes
 * on the fly (safe defaults); the hint names the quirk to add, once per reader and quirk. Also
 * says when a flush was skipped because the reader has no SYNCHRONIZE CACHE.
 */
import type { UsbDeviceEvent } from '../blockdev/usb-device.js';
import type { ReaderQuirks } from '../usb/quirk-types.js';
import { hex4, type UsbDeviceInfo } from '../usb/transport.js';

export interface QuirkHint {
  /** The reader profile quirk that would help, or `null` for a notice without one. */
  quirk: keyof ReaderQuirks | null;
  /** `vvvv:pppp` of the reader (with `revision` for a profile's bcdDevice range). */
  reader: string;
  revision: string;
  message: string;
}

/** Turns the events of one opened reader into hints, each at most once. */
export class QuirkHinter {
  private readonly said = new Set<string>();
  private readonly reader: string;
  private readonly revision: string;
  constructor(
    private readonly device: UsbDeviceInfo,
    private readonly quirks: ReaderQuirks,
    private readonly emit: (h: QuirkHint) => void,
  ) {
    this.reader = `${hex4(device.vendorId)}:${hex4(device.productId)}`;
    this.revision = hex4(device.revision);
  }

  private hint(key: string, quirk: keyof ReaderQuirks | null, what: string, profile?: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    const suffix = profile
      ? `; a reader profile in hw-profiles/readers matching ${this.reader} (bcdDevice ${this.revision}) with "quirks": { ${profile} } makes that the default`
      : '';
    this.emit({ quirk, reader: this.reader, revision: this.revision, message: `reader ${this.reader} (${this.device.product || 'unnamed'}): ${what}${suffix}` });
  }

  onEvent(e: UsbDeviceEvent): void {
    const q = this.quirks;
    switch (e.type) {
      case 'ignore-residue-detected':
        if (!q.ignoreResidue)
          this.hint('residue', 'ignoreResidue', 'reports a wrong data residue (Linux IGNORE_RESIDUE); crashcart ignores residues from now on', '"ignoreResidue": true');
        return;
      case 'transfer-size-fallback':
        if (!q.maxSectors)
          this.hint(
            'max-sectors',
            'maxSectors',
            `large transfers timed out; crashcart fell back to ${e.toBytes / 1024} KiB per command (Linux MAX_SECTORS_64)`,
            '"maxSectors": 64',
          );
        return;
      case 'write-protect-unknown':
        if (e.why === 'timeout' && !q.noWriteProtectDetect)
          this.hint(
            'wp',
            'noWriteProtectDetect',
            'did not answer MODE SENSE (reset after the timeout); the card is taken as writable (Linux NO_WP_DETECT)',
            '"noWriteProtectDetect": true',
          );
        return;
      case 'sync-cache-unsupported':
        if (e.why === 'timeout')
          this.hint(
            'sync',
            'noSynchronizeCache',
            'did not answer SYNCHRONIZE CACHE (reset after the timeout); flushes are skipped, the written data is in the reader',
            '"noSynchronizeCache": true',
          );
        else this.hint('sync', null, 'has no SYNCHRONIZE CACHE (05/20/00): flushes are skipped (best effort), the written data is in the reader');
        return;
      case 'capacity-beyond-end':
        if (!q.capacityOffByOne && e.lba === e.blocks - 1)
          this.hint(
            'capacity',
            'capacityOffByOne',
            `refused the last block (LBA ${e.lba}) of the ${e.blocks} it reported: READ CAPACITY probably gives the block count, not the last block (Linux FIX_CAPACITY)`,
            '"capacityOffByOne": true',
          );
        return;
      default:
        return;
    }
  }
}
