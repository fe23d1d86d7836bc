import type { Argv, CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface ProvisionArgs {
  device: string;
  profile: string;
  'dry-run'?: boolean;
  yes?: boolean;
  json?: boolean;
  'replace-table'?: boolean;
  image?: string[];
  fs?: string[];
  bmap?: string[];
  'guid-seed'?: string;
  'reformat-pstore'?: boolean;
  backup?: string;
  'discard-records'?: boolean;
  'force-system-disk'?: boolean;
}

export const provisionCommand: CommandModule<object, ProvisionArgs> = {
  command: 'provision <device>',
  describe: 'make a card board-ready from a profile: GPT or MBR table, partition images, formatted pstore partition, kernel command line (idempotent)',
  builder: (c: Argv) =>
    c
      .positional('device', { type: 'string', demandOption: true, describe: 'image, /dev/sdX or usb:…' })
      .option('profile', { type: 'string', demandOption: true, describe: 'board profile name (crashcart profile list) or JSON file' })
      .option('dry-run', { type: 'boolean', describe: 'print the plan and write nothing' })
      .option('yes', { alias: 'y', type: 'boolean', describe: 'do not ask for confirmation' })
      .option('json', { type: 'boolean', describe: 'print the plan and result as JSON' })
      .option('replace-table', { type: 'boolean', describe: 'replace a partition table that differs from the profile (records are backed up first)' })
      .option('image', {
        type: 'string',
        array: true,
        describe: 'NAME=FILE: write FILE (raw, gz, xz, zst, bz2, Android sparse) into partition or raw region NAME (overrides the profile)',
      })
      .option('fs', {
        type: 'string',
        array: true,
        describe: 'NAME=DIR: build a FAT or ext4 file system (type, label and UUID from the profile, else from the partition type) from folder DIR into partition NAME',
      })
      .option('bmap', { type: 'string', array: true, describe: 'NAME=FILE: bmap file for the image of partition or raw region NAME' })
      .option('guid-seed', { type: 'string', describe: 'derive new partition GUIDs from this text (reproducible cards) instead of random ones' })
      .option('reformat-pstore', { type: 'boolean', describe: 'format the pstore partition even when it holds records of the board (backed up first)' })
      .option('backup', { type: 'string', describe: 'folder for pstore records provisioning would destroy (default: ./crashcart-backup-…)' })
      .option('discard-records', { type: 'boolean', describe: 'destroy such records without backing them up' })
      .option('force-system-disk', {
        alias: 'allow-system-disk',
        type: 'boolean',
        describe: 'allow writing to a disk this system uses (mounted, swap, root); inputs stay protected',
      }),
  handler: async (argv) => (await loadCommand(() => import('../commands/provision.js'))).runProvision(argv),
};
