import type { Argv, CommandModule } from 'yargs';
import { loadCommand } from './load-command.js';

export interface ProfileArgs {
  name?: string;
  file?: string;
  json?: boolean;
}

export const profileCommand: CommandModule = {
  command: 'profile',
  describe: 'board profiles (hw-profiles/boards): list, show, validate',
  builder: (c: Argv) =>
    c
      .command(
        'list',
        'list the bundled board profiles',
        (d) => d.option('json', { type: 'boolean', describe: 'print the list as JSON' }),
        async (argv) => (await loadCommand(() => import('../commands/profile.js'))).runList(argv),
      )
      .command(
        'show <name>',
        'show a profile: partitions, pstore geometry, ABI and the kernel command line',
        (d) =>
          d
            .positional('name', { type: 'string', demandOption: true, describe: 'bundled profile name or JSON file' })
            .option('json', { type: 'boolean', describe: 'print the validated profile as JSON' }),
        async (argv) => (await loadCommand(() => import('../commands/profile.js'))).runShow(argv),
      )
      .command(
        'validate <file>',
        'check a profile file and list every problem with its field path',
        (d) =>
          d
            .positional('file', { type: 'string', demandOption: true, describe: 'profile JSON file (or a bundled name)' })
            .option('json', { type: 'boolean', describe: 'print the result as JSON' }),
        async (argv) => (await loadCommand(() => import('../commands/profile.js'))).runValidate(argv),
      )
      .demandCommand(1, 'name a profile subcommand'),
  handler: () => undefined,
};
