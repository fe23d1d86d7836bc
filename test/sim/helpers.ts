/** Shared setup for tests that drive the simulated reader. */
import { UsbBlockDevice, type UsbBlockDeviceOptions, type UsbDeviceEvent } from '../../src/blockdev/usb-device.js';
import { BotDriver, type BotEvent } from '../../src/usb/bot.js';
import { SimReader, type SimReaderOptions } from './sim-reader.js';

/** BOT timings for tests: no settle pauses (the simulated device answers at once). */
export const FAST_BOT = { resetSettleMs: 0, portResetSettleMs: 0 } as const;
export const FAST_SCSI = { readyPollMs: 1, becomingReadyTimeoutMs: 2_000 } as const;

export function botOver(sim: SimReader, events: BotEvent[] = []): BotDriver {
  return new BotDriver(sim, { ...FAST_BOT, onEvent: (e) => events.push(e) });
}

export async function openSim(simOpts: SimReaderOptions = {}, devOpts: UsbBlockDeviceOptions = {}): Promise<{ sim: SimReader; dev: UsbBlockDevice; events: UsbDeviceEvent[] }> {
  const sim = new SimReader(simOpts);
  const events: UsbDeviceEvent[] = [];
  const dev = await UsbBlockDevice.open(sim, {
    ...devOpts,
    bot: { ...FAST_BOT, ...devOpts.bot },
    scsi: { ...FAST_SCSI, ...devOpts.scsi },
    onEvent: (e) => events.push(e),
  });
  return { sim, dev, events };
}

export function pattern(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
