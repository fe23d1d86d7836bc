import type { CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface MuxArgs {
  selector: string;
  action: string;
  variant?: string;
  json?: boolean;
}

export const muxCommand: CommandModule<object, MuxArgs> = {
  command: 'mux <selector> <action>',
  describe: 'switch an SD mux (USB-SD-Mux, SDWire) between host and DUT, or say where its card is: host | dut | off | status',
  builder: (c) =>
    c
      .positional('selector', { type: 'string', demandOption: true, describe: 'the mux: usb:PORT, usb:serial=…, usb:VID:PID, or usb for the only one' })
      .positional('action', { type: 'string', demandOption: true, describe: 'host (card to this machine), dut (card to the board), off (USB-SD-Mux only), status' })
      .option('variant', { type: 'string', describe: 'USB-SD-Mux generation when INQUIRY does not tell: classic | fast' })
      .option('json', { type: 'boolean', describe: 'print the result as JSON' }),
  handler: async (argv) => (await loadCommand(() => import('../commands/mux.js'))).runMux(argv),
};
