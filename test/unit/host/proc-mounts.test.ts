import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMountinfo, unescapeProc } from '../../../src/host/proc-mounts.js';

test('every octal escape the kernel writes is undone: space, tab, newline, backslash', () => {
  assert.equal(unescapeProc('/mnt/a\\040b\\011c\\012d\\134e'), '/mnt/a b\tc\nd\\e');
  assert.deepEqual(parseMountinfo('40 22 8:33 / /media/x\\134y\\011z rw - vfat /dev/sdc1 rw\n'), [
    { devNum: '8:33', mountPoint: '/media/x\\y\tz', fsType: 'vfat', source: '/dev/sdc1' },
  ]);
});
