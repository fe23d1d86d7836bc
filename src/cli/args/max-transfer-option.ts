/** `--max-transfer` on flash and read (parsed by ../byte-count.ts when the command runs). */
export const MAX_TRANSFER_OPTION = {
  type: 'string',
  describe: 'bytes per USB command (e.g. 1M); default: the reader profile, else 1 MiB on SuperSpeed and 120 KiB below, as Linux usb-storage',
} as const;
