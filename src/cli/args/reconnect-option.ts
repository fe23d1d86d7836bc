/** `--reconnect-timeout` on flash and read (checked by ../reconnect-events.ts when the command runs). */
export const RECONNECT_TIMEOUT_OPTION = {
  type: 'number',
  default: 15,
  describe:
    'USB readers: seconds to wait for a reader that goes away mid-transfer to come back (same port, or same serial); the card is checked to be the same one and the transfer goes on; 0 fails at once',
} as const;
