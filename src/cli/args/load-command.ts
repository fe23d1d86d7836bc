/**
 * A command's implementation (src/cli/commands/) is imported only when that command runs, after
 * yargs has parsed and checked its arguments: `--help`, `--version` and a usage error load none
 * of the library, the `usb` native module, codecs or progress libraries. The definitions in this
 * folder hold the options only and import nothing but types and each other.
 *
 * Every command that runs gets USB reader support with it (../usb-support.ts): `usb:` devices
 * open through `openDevice`, and a signal hands the readers crashcart holds back to the kernel.
 */
export async function loadCommand<M>(load: () => Promise<M>): Promise<M> {
  await import('../usb-support.js');
  return load();
}
