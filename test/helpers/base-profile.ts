/** A small valid GPT board profile (boot, pstore, rootfs) that profile tests vary field by field. */
export const baseProfile = () => ({
  name: 'test-board',
  partitions: [
    { name: 'boot', type: 'esp', size: '8MiB' },
    { name: 'pstore', type: 'pstore', size: '1MiB' },
    { name: 'rootfs', type: 'linux', size: 'rest' },
  ],
  pstore: { partition: 'pstore', kmsg_size: 16, pmsg_size: 0, console_size: 0, ftrace_size: 0 },
  cmdline: 'pstore_blk.blkdev=/dev/mmcblk0p2 pstore_blk.best_effort=y',
});
