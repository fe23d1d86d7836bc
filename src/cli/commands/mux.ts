import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { controlMux, type MuxReport } from '../../mux/mux-control.js';
import { MUX_MODES, USB_SD_MUX_VARIANTS, type MuxMode, type UsbSdMuxVariant } from '../../mux/usb-sd-mux.js';

interface MuxArgs {
  selector: string;
  action: string;
  variant?: string;
  json?: boolean;
}

const ACTIONS = [...MUX_MODES, 'status'] as const;
type MuxAction = (typeof ACTIONS)[number];

export function formatMuxReport(r: MuxReport, action: MuxAction): string {
  const what = `${r.selector} (USB-SD-Mux ${r.variant}${r.serial ? `, serial ${r.serial}` : ''})`;
  return action === 'status' ? `${r.mode}\t${what}\n` : `switched to ${r.mode}: ${what}\n`;
}

export const muxCommand: CommandModule<object, MuxArgs> = {
  command: 'mux <selector> <action>',
  describe: 'switch an SD mux (USB-SD-Mux) between host and DUT, or say where its card is: host | dut | off | status',
  builder: (c) =>
    c
      .positional('selector', { type: 'string', demandOption: true, describe: 'the mux: usb:PORT, usb:serial=…, usb:VID:PID, or usb for the only one' })
      .positional('action', { type: 'string', demandOption: true, describe: 'host (card to this machine), dut (card to the board), off, status' })
      .option('variant', { type: 'string', describe: 'USB-SD-Mux generation when INQUIRY does not tell: classic | fast' })
      .option('json', { type: 'boolean', describe: 'print the result as JSON' }),
  handler: async (a) => {
    const action = a.action.toLowerCase() as MuxAction;
    if (!ACTIONS.includes(action)) throw new UsageError(`mux: unknown action ${JSON.stringify(a.action)} (one of ${ACTIONS.join(', ')})`);
    if (a.variant !== undefined && !USB_SD_MUX_VARIANTS.includes(a.variant as UsbSdMuxVariant)) throw new UsageError(`--variant must be one of ${USB_SD_MUX_VARIANTS.join(', ')}`);
    const r = await controlMux(a.selector, action as MuxMode | 'status', { variant: a.variant as UsbSdMuxVariant | undefined });
    process.stdout.write(a.json ? JSON.stringify(r, null, 2) + '\n' : formatMuxReport(r, action));
  },
};
