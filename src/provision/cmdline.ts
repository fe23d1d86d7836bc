/** The board's kernel command line from a profile: kept apart from provisioning so that showing a profile loads none of the flash pipeline. */
import type { BoardProfile } from '../profile/board-profile.js';
import { boardCmdline } from '../pstore/board-cmdline.js';
import { splitCmdline } from '../pstore/cmdline.js';
import type { Layout } from '../pstore/layout.js';
import type { PstoreParams } from '../pstore/params.js';

/** The board's kernel command line: the profile's own parameters, then every pstore parameter explicit. */
export function buildCmdline(profile: BoardProfile, layout: Layout, blkdev: string, params: PstoreParams): string {
  const quote = (v: string) => (/\s/.test(v) ? `"${v}"` : v);
  const own = splitCmdline(profile.cmdline ?? '')
    .filter(({ key }) => !/^(pstore_blk|pstore)\./i.test(key.replace(/-/g, '_')))
    .map(({ key, value }) => (value === undefined ? key : `${key}=${quote(value)}`));
  let pstore = boardCmdline(layout, blkdev, params);
  if (profile.pstore?.backend === 'mmcpstore') pstore = pstore.replace(/ ?pstore_blk\.best_effort=y/, '');
  return [...own, pstore].join(' ').trim();
}
