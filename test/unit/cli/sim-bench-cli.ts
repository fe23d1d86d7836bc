/**
 * The real command line (src/cli/main.ts) in a child process, with `usb:` devices on a simulated
 * bench instead of the USB stack: one reader on port 1-5 (serial C1, address 3) whose
 * `unplugAt.n`-th command with opcode `unplugAt.opcode` unplugs it; `back` says what is plugged in
 * 20 ms later at address 8: the same card, another one (`other`), or nothing (`none`).
 * The bench comes as JSON in CRASHCART_TEST_BENCH; the arguments are crashcart's.
 */
import '../../../src/cli/usb-support.js';
import { main } from '../../../src/cli/main.js';
import { registerUsbDeviceOpener } from '../../../src/reader/register.js';
import { FAST_BOT, FAST_SCSI } from '../../sim/helpers.js';
import { MemoryCard, SimHost, SimReader } from '../../sim/sim-reader.js';

interface Bench {
  blocks: number;
  unplugAt: { opcode: number; n: number };
  back: 'same' | 'other' | 'none';
}

const bench = JSON.parse(process.env.CRASHCART_TEST_BENCH ?? '{}') as Bench;
const card = new MemoryCard(bench.blocks, 512, { pattern: true });
const host = new SimHost([]);
let count = 0;
const first: SimReader = new SimReader({
  ports: [5],
  serial: 'C1',
  address: 3,
  luns: [card],
  onCbw: (cbw) => {
    if (cbw.cdb[0] !== bench.unplugAt.opcode || ++count !== bench.unplugAt.n) return;
    first.vanish();
    host.readers.length = 0;
    if (bench.back === 'none') return;
    const next = bench.back === 'same' ? card : new MemoryCard(bench.blocks, 512);
    setTimeout(() => host.readers.push(new SimReader({ ports: [5], serial: 'C1', address: 8, luns: [next] })), 20);
  },
});
host.readers.push(first);
// Replaces the opener over the real USB stack that usb-support.ts registered.
registerUsbDeviceOpener({ host, profiles: [], bot: FAST_BOT, scsi: FAST_SCSI, sysfs: { sysRoot: '/nonexistent' }, reconnectPollMs: 5 });
process.exitCode = await main(process.argv.slice(2));
// The card as the command left it, for the test to compare.
if (process.env.CRASHCART_TEST_CARD_OUT) (await import('node:fs')).writeFileSync(process.env.CRASHCART_TEST_CARD_OUT, card.data);
