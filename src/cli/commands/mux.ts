import type { MuxArgs } from '../args/mux.js';
import { UsageError } from '../../errors.js';
import { controlMux, type MuxReport } from '../../mux/mux-control.js';
import { MUX_MODES, USB_SD_MUX_VARIANTS, type MuxMode, type UsbSdMuxVariant } from '../../mux/usb-sd-mux.js';

const ACTIONS = [...MUX_MODES, 'status'] as const;
type MuxAction = (typeof ACTIONS)[number];

export function formatMuxReport(r: MuxReport, action: MuxAction): string {
  const kind = r.variant === 'sdwire' ? `SDWire${r.reader ? `, card in reader ${r.reader}` : ', its reader not found on the same hub'}` : `USB-SD-Mux ${r.variant}`;
  const what = `${r.selector} (${kind}${r.serial ? `, serial ${r.serial}` : ''})`;
  return action === 'status' ? `${r.mode}\t${what}\n` : `switched to ${r.mode}: ${what}\n`;
}

export async function runMux(a: MuxArgs): Promise<void> {
  const action = a.action.toLowerCase() as MuxAction;
  if (!ACTIONS.includes(action)) throw new UsageError(`mux: unknown action ${JSON.stringify(a.action)} (one of ${ACTIONS.join(', ')})`);
  if (a.variant !== undefined && !USB_SD_MUX_VARIANTS.includes(a.variant as UsbSdMuxVariant)) throw new UsageError(`--variant must be one of ${USB_SD_MUX_VARIANTS.join(', ')}`);
  const r = await controlMux(a.selector, action as MuxMode | 'status', { variant: a.variant as UsbSdMuxVariant | undefined });
  process.stdout.write(a.json ? JSON.stringify(r, null, 2) + '\n' : formatMuxReport(r, action));
}
