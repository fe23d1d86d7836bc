// Reader quirk scenarios for the programmable FunctionFS reader (usb-ffs.vmtest.ts). Each models
// a device class of Linux's drivers/usb/storage/unusual_devs.h: the device's VID:PID (so that
// crashcart's reader profile for it applies), what the simulated target does wrong, and the
// usb-storage.quirks flags the kernel gets for it.
import type { Fault, SimReaderOptions } from '../sim/sim-reader.js';

export interface QuirkScenario {
  name: string;
  vendorId: string;
  productId: string;
  /** bcdDevice (4 hex digits). */
  revision?: string;
  serial: string;
  reader?: SimReaderOptions;
  faults?: Fault[];
  /** Further LUNs (null = empty slot). */
  extraLuns?: (string | null)[];
  /** usb-storage quirks parameter (VID:PID:flags), as unusual_devs.h gives the device. */
  kernelQuirks?: string;
  /** 'read': crashcart must read the card whatever the kernel does. */
  expect?: 'read';
  /** Record the bus (usbmon) during the scenario: `expect` the hosts' bulk-IN transfers to end with this status, e.g. -75 (-EOVERFLOW, babble). */
  usbmonStatus?: number;
  /**
   * false: the kernel's read is not taken, only crashcart's (with `expect: 'read'`); for a scenario
   * whose kernel side is known and slow (see the scenario).
   */
  kernel?: false;
  /**
   * A write scenario: crashcart flashes one image (verified) and the kernel writes another (dd,
   * direct I/O); after each, the card must hold what was written.
   */
  write?: true;
  /** The unusual_devs.h entry the scenario follows. */
  source: string;
}

const MANY = 1_000_000;

export const QUIRK_SCENARIOS: QuirkScenario[] = [
  {
    name: 'fix-capacity',
    vendorId: '0421',
    productId: '005d',
    revision: '0001',
    serial: '01',
    reader: { capacityReportsCount: true },
    kernelQuirks: '0421:005d:c',
    source: 'UNUSUAL_DEV(0x0421, 0x005d, 0x0001, 0x0600, "Nokia", "Nokia 3110c", … US_FL_FIX_CAPACITY)',
  },
  {
    name: 'ignore-residue',
    vendorId: '03ee',
    productId: '6906',
    revision: '0003',
    serial: '02',
    faults: [{ type: 'wrong-residue', opcode: 0x28, residue: 4096, times: MANY }],
    kernelQuirks: '03ee:6906:r',
    source: 'UNUSUAL_DEV(0x03ee, 0x6906, 0x0003, 0x0003, "VIA Technologies Inc.", "Mitsumi multi cardreader", … US_FL_IGNORE_RESIDUE)',
  },
  {
    name: 'max-lun-stall',
    vendorId: '1d6b',
    productId: '0106',
    serial: '03',
    reader: { maxLunStalls: true },
    expect: 'read',
    source: 'BOT 3.2: a single-LUN device may STALL Get Max LUN (usb_stor_Bulk_max_lun treats it as LUN 0)',
  },
  {
    name: 'multi-lun-empty-slot',
    vendorId: '1d6b',
    productId: '0107',
    serial: '04',
    extraLuns: [null],
    expect: 'read',
    source: 'multi-slot readers with empty slots (02/3A on the empty LUN)',
  },
  {
    name: 'phase-error-once',
    vendorId: '1d6b',
    productId: '0108',
    serial: '05',
    faults: [{ type: 'phase-error', opcode: 0x28, times: 1 }],
    expect: 'read',
    // the kernel's reset recovery of the same reader took 110 s of VM time and read the card in one
    // run, gave up probing in another: recorded, not repeated in every CI run
    kernel: false,
    source: 'BOT 6.7: phase error → reset recovery (usb_stor_Bulk_transport returns USB_STOR_TRANSPORT_ERROR, the command is retried)',
  },
  {
    name: 'max-sectors-64',
    vendorId: '058f',
    productId: '6387',
    revision: '0141',
    serial: '07',
    faults: [{ type: 'timeout', phase: 'data', opcode: 0x28, minLength: 32 * 1024 + 1, times: MANY }],
    kernelQuirks: '058f:6387:m',
    source: 'UNUSUAL_DEV(0x058f, 0x6387, 0x0141, 0x0141, "Alcor Micro Corp.", "USB Mass Storage Device", … US_FL_MAX_SECTORS_64): larger READs hang',
  },
  {
    name: 'stall-data-in',
    vendorId: '1d6b',
    productId: '0109',
    serial: '08',
    faults: [{ type: 'stall-data-in', opcode: 0x28, minLength: 16 * 1024, afterBytes: 4096, times: 1 }],
    expect: 'read',
    source: 'BOT 6.7.2: the device STALLs bulk-in within a READ (usb_stor_Bulk_transport clears the halt and reads the CSW; the command is retried)',
  },
  {
    name: 'stall-data-out',
    vendorId: '1d6b',
    productId: '010e',
    serial: '0d',
    faults: [{ type: 'stall-data-out', opcode: 0x2a, minLength: 16 * 1024, times: 1 }],
    write: true,
    source: 'BOT 6.7.3: the device STALLs bulk-out within a WRITE (usb_stor_Bulk_transport clears the halt and reads the CSW; the command is retried)',
  },
  {
    name: 'sync-cache-hang',
    vendorId: '1d6b',
    productId: '010f',
    serial: '0e',
    // never answers SYNCHRONIZE CACHE (no CSW until a reset); the kernel does not send it to a USB
    // disk without US_FL_WRITE_CACHE (it takes the write cache as off), crashcart asks once at the end
    // of a flash, waits its 30 s, resets the reader and skips later flushes
    faults: [{ type: 'timeout', phase: 'csw', opcode: 0x35, times: MANY }],
    write: true,
    source: 'a reader that hangs on SYNCHRONIZE CACHE (scsiglue.c: usb-storage sends it only with US_FL_WRITE_CACHE; crashcart asks once)',
  },
  {
    name: 'stall-csw',
    vendorId: '1d6b',
    productId: '010a',
    serial: '09',
    faults: [{ type: 'stall-csw', opcode: 0x28, minLength: 16 * 1024, times: 1 }],
    expect: 'read',
    source: 'BOT 6.7.2/6.6.1: the CSW read STALLs once (usb_stor_Bulk_transport clears the halt and reads the CSW again)',
  },
  {
    name: 'no-wp-detect',
    vendorId: '046b',
    productId: 'ff40',
    serial: '06',
    reader: { noModeSense: true },
    kernelQuirks: '046b:ff40:w',
    source: 'UNUSUAL_DEV(0x046b, 0xff40, 0x0100, 0x0100, "AMI", "Virtual Floppy", … US_FL_NO_WP_DETECT)',
  },
  {
    name: 'slow-media',
    vendorId: '1d6b',
    productId: '010b',
    serial: '0a',
    // each driver's first READs take 2 s (the kernel waits up to its 30 s SCSI timeout, crashcart as long)
    faults: [{ type: 'delay', ms: 2000, opcode: 0x28, times: 2 }],
    expect: 'read',
    source: 'slow media: READs answered after 2 s; neither driver may reset the reader (sd_mod SD_TIMEOUT 30 s, crashcart BOT 30 s)',
  },
  {
    name: 'babble-once',
    vendorId: '1d6b',
    productId: '010c',
    serial: '0b',
    faults: [{ type: 'babble', opcode: 0x28, minLength: 16 * 1024, extra: 512, times: 1 }],
    expect: 'read',
    usbmonStatus: -75,
    source: 'babble: a READ sends 512 bytes more than dCBWDataTransferLength (BOT 6.7.2 case Hi < Di; the host controller reports -EOVERFLOW)',
  },
  {
    name: 'mode-sense-hang',
    vendorId: '054c',
    productId: '0010',
    revision: '0106',
    serial: '0c',
    faults: [
      { type: 'timeout', phase: 'data', opcode: 0x1a, times: MANY },
      { type: 'timeout', phase: 'data', opcode: 0x5a, times: MANY },
    ],
    kernelQuirks: '054c:0010:slw',
    source:
      'UNUSUAL_DEV(0x054c, 0x0010, 0x0106, 0x0450, "Sony", "DSC-S30/S70/S75/505V/F505/F707/F717/P8", … US_FL_SINGLE_LUN | US_FL_NOT_LOCKABLE | US_FL_NO_WP_DETECT): MODE SENSE never answered',
  },
];
