#!/usr/bin/env node
// npm run demo: unpacks a card image written by a real Linux 6.1 kernel (pmsg, console, ftrace
// from 2 CPUs and a deflate-compressed Oops) and extracts it with crashcart into demo-out/pstore.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';

const fixture = 'test/fixtures/kernel/c61-full-deflate';
mkdirSync('demo-out', { recursive: true });
writeFileSync('demo-out/card.img', gunzipSync(readFileSync(`${fixture}/disk.img.gz`)));
const args = ['bin/crashcart', 'pstore', 'extract', 'demo-out/card.img', '-o', 'demo-out/pstore', '--symbols', `${fixture}/kallsyms.gz`];
console.log(`$ crashcart ${args.slice(1).join(' ')}\n`);
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (r.status === 0) {
  console.log('\nFirst lines of the Oops the kernel dumped:\n');
  console.log(
    readFileSync('demo-out/pstore/dmesg-pstore_blk-0', 'utf8')
      .split('\n')
      .filter((l) => /BUG|Oops|RIP/.test(l))
      .slice(0, 4)
      .join('\n'),
  );
}
process.exit(r.status ?? 1);
