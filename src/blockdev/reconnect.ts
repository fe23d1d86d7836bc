/**
 * What a device that can go away and come back (a card in a USB reader) reports while it does, and
 * what its opener needs to know about it: how long to wait, whom to tell, and who admits the device
 * that came back as a write target again (the write gate, which sits above this layer).
 */
import type { BlockDevice, BlockDeviceInfo } from './block-device.js';

/** How the device that came back was recognised: the same port path, or the same USB serial on another port. */
export type ReconnectMatch = 'port' | 'serial';

export type ReconnectEvent =
  | {
      type: 'reader-gone';
      /** The device's name when it went away (`usb:1-1.4@lun=0`). */
      device: string;
      /** Port path and bus address the reader had. */
      port: string;
      address: number;
      /** Why it counts as gone (the error the last command ended with). */
      error: string;
      /** How long it is waited for. */
      timeoutMs: number;
    }
  | {
      type: 'reader-back';
      device: string;
      /** Port path and bus address it came back at. */
      port: string;
      address: number;
      previousPort: string;
      previousAddress: number;
      match: ReconnectMatch;
      /** Time from going away to being checked and reopened. */
      afterMs: number;
    };

export interface ReconnectOptions {
  /** Wait this long for the device to come back; 0 fails at once (as without this option). */
  timeoutMs: number;
  onEvent?: (e: ReconnectEvent) => void;
  /**
   * Admits the reopened device before anything is written to it (the write gate checks it again);
   * a rejection ends the operation with that error. `previous` is the device as it was before it
   * went away.
   */
  admit?: (dev: BlockDevice, previous: BlockDeviceInfo) => Promise<void>;
}
