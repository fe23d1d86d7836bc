import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { BadInputError } from '../../../src/errors.js';
import { formatPS, formatPs, inferKaslrSlide, loadSymbolTable, type SymbolTable } from '../../../src/symbols/index.js';

// dist/test/unit/symbols/ → repository root
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const FIX = `${ROOT}test/fixtures/symbols/`;

const enc = (s: string) => new TextEncoder().encode(s);

// ---- golden: kallsyms of the boot that wrote the ftrace records vs. what the kernel printed ----

const LINE = /^CPU:(\d+) ts:(\d+) ([0-9a-f]+)  ([0-9a-f]+)  (\S+(?: \[\S+\])?) <- (\S+(?: \[\S+\])?)$/;

let real: SymbolTable | null = null;
function realTable(): SymbolTable {
  real ??= loadSymbolTable(readFileSync(`${FIX}c61-kallsyms.gz`));
  return real;
}

test('c61 kallsyms dump: parsed as the kernel table', () => {
  const t = realTable();
  assert.equal(t.stats.format, 'kallsyms');
  assert.equal(t.stats.bits, 64);
  assert.equal(t.stats.kallsymsAll, true);
  assert.equal(t.stats.malformed, 0);
  assert.equal(t.stats.coreSymbols + t.stats.moduleSymbols, 90361);
  assert.deepEqual(t.stats.modules, ['lkdtm', 'pstore_blk', 'pstore_zone', '__builtin__ftrace']);
  // startup_64, _stext and _text share an address; the table (file) order puts startup_64 first.
  assert.equal(t.ps(0xffffffff81000000n), 'startup_64');
  // pstore_blk_exit and cleanup_module alias in the module; the first in symbol-table order wins.
  assert.equal(t.ps(0xffffffffc0007600n), 'pstore_blk_exit [pstore_blk]');
  // Last text symbol of a module: size runs to the (page-aligned) end of the module text.
  assert.equal(t.pS(0xffffffffc0007604n), 'pstore_blk_exit+0x4/0xa00 [pstore_blk]');
  // Per-CPU symbols (absolute, near 0) and addresses between _text areas are not resolved.
  assert.equal(t.ps(0x6000n), '0x6000');
  assert.equal(t.ps(0xffffffff80ffffffn), '0xffffffff80ffffff');
  // ftrace trampolines are listed but never resolved by %pS.
  assert.equal(t.pS(0xffffffffc001d010n), '0xffffffffc001d010');
});

test('c61 ftrace readout: every symbol the kernel resolved is rendered identically', () => {
  const t = realTable();
  const lines = readFileSync(`${FIX}c61-ftrace-pstore_blk-0`, 'latin1').split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, 2728);
  let compared = 0;
  let kernelUnresolved = 0;
  const ours = new Map<string, number>();
  for (const line of lines) {
    const m = LINE.exec(line);
    assert.ok(m, `unparsed readout line: ${line}`);
    const ip = BigInt('0x' + m[3]);
    const parent = BigInt('0x' + m[4]);
    for (const [kernel, mine] of [
      [m[5], formatPs(t, ip)],
      [m[6], formatPS(t, parent)],
    ]) {
      if (kernel.startsWith('0x')) {
        kernelUnresolved++;
        ours.set(`${kernel} -> ${mine}`, (ours.get(`${kernel} -> ${mine}`) ?? 0) + 1);
      } else {
        assert.equal(mine, kernel, line);
        compared++;
      }
    }
  }
  // The reading kernel had pstore_blk elsewhere (or not loaded) and printed its ip raw; the
  // writing boot's kallsyms resolves it.
  assert.equal(kernelUnresolved, 1092);
  assert.equal(compared, 2 * 2728 - 1092);
  assert.deepEqual([...ours], [['0xffffffffc0007310 -> psblk_generic_blk_write [pstore_blk]', 1092]]);
});

test('c61 kallsyms: binary search agrees with a linear scan of the core table', () => {
  const t = realTable();
  const text = gunzipSync(readFileSync(`${FIX}c61-kallsyms.gz`)).toString('latin1');
  const core: [bigint, string][] = [];
  for (const l of text.split('\n')) {
    const f = l.split(/\s+/);
    if (f.length === 3 && f[1] !== 'A') core.push([BigInt('0x' + f[0]), f[2]]);
  }
  const stext = core.find(([, n]) => n === '_stext')![0];
  const end = core.find(([, n]) => n === '_end')![0];
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let k = 0; k < 3000; k++) {
    const addr = stext + BigInt(Math.floor(rnd() * Number(end - stext)));
    let i = core.length - 1;
    while (core[i][0] > addr) i--;
    while (i > 0 && core[i - 1][0] === core[i][0]) i--;
    let j = i + 1;
    while (core[j][0] === core[i][0]) j++;
    const r = t.lookup(addr);
    assert.ok(r);
    assert.deepEqual(r, { name: core[i][1], address: core[i][0], offset: addr - core[i][0], size: core[j][0] - core[i][0] });
  }
});

// ---- synthetic System.map (32-bit) ---------------------------------------------------------------

const SYSTEM_MAP = [
  '00000000 A some_absolute',
  'c0008000 T _text',
  'c0008000 T _stext',
  'c0008000 T stext',
  'c0008040 t __create_page_tables',
  'c0100000 W weak_initcall', // weak: sorts after the strong aliases
  'c0100000 T __do_one_initcall', // more leading underscores: after do_one_initcall
  'c0100000 T do_one_initcall',
  'c0100100 T cpu_startup_entry',
  'c01002e0 T call_cpuidle',
  'c01002f0 t $a', // ARM mapping symbol: dropped by scripts/kallsyms
  'c01002f8 T foo_veneer', // dropped (suffix)
  'c0100300 T _etext',
  'c0180000 R __crc_something',
  'c0180010 R kallsyms_names',
  'c0180020 R kallsyms_token_table',
  'c0200000 D _sdata',
  'c0200040 d some_data',
  'c0300000 T _sinittext',
  'c0300010 T init_fn',
  'c0300100 T _einittext',
  'c0400000 B _end',
  '',
  'garbage line',
  'c0500000 TT bad_type',
  'zz000000 T bad_addr',
  'c0500000 T too many fields here',
  '',
].join('\n');

test('System.map: format, width, filtering and garbage are reported', () => {
  const t = loadSymbolTable(enc(SYSTEM_MAP));
  assert.equal(t.stats.format, 'system.map');
  assert.equal(t.stats.bits, 32);
  assert.equal(t.stats.kallsymsAll, true);
  assert.equal(t.stats.malformed, 4);
  assert.equal(t.stats.lines, 27);
  // some_absolute, $a, foo_veneer, __crc_something, kallsyms_names, kallsyms_token_table
  assert.equal(t.stats.dropped, 6);
  assert.equal(t.stats.coreSymbols, 16);
  assert.deepEqual(t.stats.modules, []);
});

test('System.map: %ps/%pS, aliases ordered like scripts/kallsyms', () => {
  const t = loadSymbolTable(enc(SYSTEM_MAP));
  assert.equal(formatPs(t, 0xc0008000n), 'stext'); // no leading underscore beats _text/_stext
  assert.equal(formatPs(t, 0xc0100000n), 'do_one_initcall');
  assert.equal(formatPS(t, 0xc0100104n), 'cpu_startup_entry+0x4/0x1e0');
  assert.equal(formatPS(t, 0xc0100100n), 'cpu_startup_entry+0x0/0x1e0');
  // $a and foo_veneer are not in the kernel's table: call_cpuidle runs to _etext.
  assert.equal(formatPS(t, 0xc01002f9n), 'call_cpuidle+0x19/0x20');
  assert.equal(formatPS(t, 0xc0200044n), 'some_data+0x4/0xfffc0');
  assert.equal(formatPS(t, 0xc0300020n), 'init_fn+0x10/0xf0');
  // Below _stext, at/after _end, above 32 bits: raw.
  assert.equal(formatPS(t, 0xc0007ffcn), '0xc0007ffc');
  assert.equal(formatPs(t, 0xc0400000n), '0xc0400000');
  assert.equal(formatPs(t, 0x1c0100000n), '0x1c0100000');
  assert.equal(formatPs(t, 0n), '0x0');
  assert.deepEqual(t.lookup(0xc0100104n), { name: 'cpu_startup_entry', address: 0xc0100100n, offset: 4n, size: 0x1e0n });
  assert.equal(t.lookup(0xc0007ffcn), null);
});

test('System.map without CONFIG_KALLSYMS_ALL: only text and init text resolve', () => {
  const t = loadSymbolTable(enc(SYSTEM_MAP), { kallsymsAll: false });
  assert.equal(formatPS(t, 0xc0100104n), 'cpu_startup_entry+0x4/0x1e0');
  // call_cpuidle's successor is now _etext itself (data symbols are not in the table)
  assert.equal(formatPS(t, 0xc01002f9n), 'call_cpuidle+0x19/0x20');
  assert.equal(formatPs(t, 0xc0200044n), '0xc0200044');
  assert.equal(formatPs(t, 0xc0100300n), '0xc0100300'); // _etext itself is outside [_stext, _etext)
  assert.equal(formatPS(t, 0xc0300020n), 'init_fn+0x10/0xf0');
  assert.equal(t.stats.coreSymbols, 13);
});

test('x86-64 System.map: per-CPU symbols linked near 0 do not disturb the kernel range', () => {
  const map = [
    '0000000000000000 D __per_cpu_start',
    '0000000000001000 D cpu_debug_store',
    '000000000002b0a8 D __per_cpu_end',
    '0000000001000000 A phys_startup_64',
    'ffffffff81000000 T _text',
    'ffffffff81000000 T startup_64',
    'ffffffff81000000 T _stext',
    'ffffffff81000100 T foo',
    'ffffffff81000200 T _etext',
    'ffffffff82000000 D _sdata',
    'ffffffff82001000 B _end',
    'ffffffff82001000 R kallsyms_offsets',
  ].join('\n');
  const t = loadSymbolTable(enc(map));
  assert.equal(t.stats.format, 'system.map');
  assert.equal(t.stats.bits, 64);
  assert.equal(t.ps(0xffffffff81000000n), 'startup_64');
  assert.equal(t.pS(0xffffffff81000104n), 'foo+0x4/0x100');
  assert.equal(t.pS(0xffffffff820000ffn), '_sdata+0xff/0x1000');
  assert.equal(t.ps(0x1000n), '0x1000');
  const slid = t.withSlide(0x3c000000n);
  assert.equal(slid.pS(0xffffffffbd000104n), 'foo+0x4/0x100');
});

test('same lines read as a kallsyms dump keep file order for aliases', () => {
  const t = loadSymbolTable(enc(SYSTEM_MAP), { format: 'kallsyms' });
  assert.equal(t.stats.format, 'kallsyms');
  assert.equal(t.stats.dropped, 0);
  assert.equal(formatPs(t, 0xc0008000n), '_text');
  assert.equal(formatPs(t, 0xc0100000n), 'weak_initcall');
});

test('System.map with a KASLR slide: core symbols move, absolute ones do not', () => {
  const slid = loadSymbolTable(enc(SYSTEM_MAP), { slide: 0x1000000n });
  assert.equal(formatPS(slid, 0xc1100104n), 'cpu_startup_entry+0x4/0x1e0');
  assert.equal(formatPS(slid, 0xc0100104n), '0xc0100104');
  const again = loadSymbolTable(enc(SYSTEM_MAP)).withSlide(0x1000000n);
  assert.equal(again.slide, 0x1000000n);
  assert.equal(formatPS(again, 0xc1100104n), 'cpu_startup_entry+0x4/0x1e0');
  assert.equal(again.coreAddressOf('cpu_startup_entry'), 0xc1100100n);
  assert.equal(again.coreAddressOf('some_absolute'), null);
  // 32-bit wrap-around of a negative slide
  const down = loadSymbolTable(enc(SYSTEM_MAP), { slide: -0x100000n });
  assert.equal(formatPs(down, 0xc0000104n), 'cpu_startup_entry');
});

// ---- synthetic /proc/kallsyms with modules (64-bit) ----------------------------------------------

const KALLSYMS = [
  '0000000000000000 A fixed_percpu_data',
  '0000000000001000 A cpu_debug_store',
  'ffffffff81000000 T _stext',
  'ffffffff81000000 T startup_64',
  'ffffffff81000100 T foo',
  'ffffffff81000200 T _etext',
  'ffffffff82000000 D data1',
  'ffffffff82001000 B _end',
  'ffffffffc0000000 t mod_a_first\t[moda]',
  'ffffffffc0000040 t alias_two\t[moda]',
  'ffffffffc0000040 t alias_one\t[moda]',
  'ffffffffc0000100 t mod_a_last\t[moda]',
  'ffffffffc0000030 t $x\t[moda]',
  'ffffffffc0001010 r mod_a_rodata\t[moda]',
  'ffffffffc0002000 d mod_a_data\t[moda]',
  'ffffffffc0010080 t mod_b_fn\t[modb]',
  'ffffffffc0010100 t mod_b_fn2\t[modb]',
  'ffffffffc0010180 r mod_b_ro\t[modb]',
  'ffffffffc0020000 t ftrace_trampoline\t[__builtin__ftrace]',
  'ffffffffc0030000 t bpf_prog_0123456789abcdef_x\t[bpf]',
  'ffffffffc0030100 t bpf_prog_fedcba9876543210_y\t[bpf]',
].join('\n');

test('kallsyms dump: core kernel and modules', () => {
  const t = loadSymbolTable(enc(KALLSYMS));
  assert.equal(t.stats.format, 'kallsyms');
  assert.equal(t.stats.bits, 64);
  assert.equal(t.stats.kallsymsAll, true);
  assert.deepEqual(t.stats.modules, ['moda', 'modb', '__builtin__ftrace', 'bpf']);
  assert.equal(t.ps(0xffffffff81000000n), '_stext');
  assert.equal(t.pS(0xffffffff81000150n), 'foo+0x50/0x100');
  assert.equal(t.pS(0xffffffff82000008n), 'data1+0x8/0x1000');
  assert.equal(t.ps(0xffffffff80fffff0n), '0xffffffff80fffff0');
  assert.equal(t.ps(0x800n), '0x800'); // per-CPU offsets are not kernel addresses
  // module symbols: first alias in symbol-table order, mapping symbols ignored
  assert.equal(t.pS(0xffffffffc0000044n), 'alias_two+0x4/0xc0 [moda]');
  assert.equal(t.pS(0xffffffffc0000030n), 'mod_a_first+0x30/0x40 [moda]');
  // last text symbol: up to the page-aligned text end, not to the rodata symbol
  assert.equal(t.pS(0xffffffffc0000110n), 'mod_a_last+0x10/0xf00 [moda]');
  assert.deepEqual(t.lookup(0xffffffffc0000110n), {
    name: 'mod_a_last',
    address: 0xffffffffc0000100n,
    offset: 0x10n,
    size: 0xf00n,
    module: 'moda',
  });
  // module data: the kernel's size is text end − symbol, wrapped as unsigned long
  assert.equal(t.pS(0xffffffffc0002004n), 'mod_a_data+0x4/0xfffffffffffff000 [moda]');
  // without page alignment evidence the rodata symbol right after the text bounds it
  assert.equal(t.pS(0xffffffffc0010104n), 'mod_b_fn2+0x4/0x80 [modb]');
  // inside modb's first page but below its first symbol: not resolved
  assert.equal(t.pS(0xffffffffc0010010n), '0xffffffffc0010010');
  // between modules
  assert.equal(t.ps(0xffffffffc0005000n), '0xffffffffc0005000');
  // ftrace trampolines: raw; BPF programs: no module name
  assert.equal(t.ps(0xffffffffc0020000n), '0xffffffffc0020000');
  assert.equal(t.ps(0xffffffffc0030010n), 'bpf_prog_0123456789abcdef_x');
  assert.equal(t.pS(0xffffffffc0030010n), 'bpf_prog_0123456789abcdef_x+0x10/0x100');
  assert.equal(t.lookup(0xffffffffc0030010n)?.module, undefined);
});

test('kallsyms dump with a slide: modules keep their addresses', () => {
  const t = loadSymbolTable(enc(KALLSYMS), { slide: 0x200000n });
  assert.equal(t.pS(0xffffffff81200150n), 'foo+0x50/0x100');
  assert.equal(t.pS(0xffffffff81000150n), '0xffffffff81000150');
  assert.equal(t.pS(0xffffffffc0000044n), 'alias_two+0x4/0xc0 [moda]');
  assert.equal(t.ps(0x1000n), '0x1000');
});

test('kallsyms dump: only text listed means no CONFIG_KALLSYMS_ALL', () => {
  const t = loadSymbolTable(enc(['ffffffff81000000 T _stext', 'ffffffff81000100 t bar', 'ffffffff81000400 T _etext'].join('\n')));
  assert.equal(t.stats.kallsymsAll, false);
  assert.equal(t.pS(0xffffffff81000101n), 'bar+0x1/0x300');
  assert.equal(t.pS(0xffffffff81000400n), '0xffffffff81000400');
});

test('table without section markers: resolves from the first to the last symbol', () => {
  const t = loadSymbolTable(enc('1000 T a\n1010 t b\n1040 T c\n'));
  assert.equal(t.stats.bits, 32);
  assert.equal(t.pS(0x1014n), 'b+0x4/0x30');
  assert.equal(t.pS(0x1040n), 'c+0x0/0x0');
  assert.equal(t.ps(0x1041n), '0x1041');
  assert.equal(t.ps(0xfffn), '0xfff');
});

test('gzip input is detected by magic; corrupt gzip and empty tables are rejected', () => {
  const plain = loadSymbolTable(enc(KALLSYMS));
  const gz = loadSymbolTable(gzipSync(enc(KALLSYMS)));
  for (const a of [0xffffffff81000150n, 0xffffffffc0000044n, 0xffffffffc0002004n, 0xffffffffc0010010n]) {
    assert.equal(gz.pS(a), plain.pS(a));
  }
  const broken = gzipSync(enc(KALLSYMS)).subarray(0, 40);
  assert.throws(() => loadSymbolTable(broken), BadInputError);
  assert.throws(() => loadSymbolTable(enc('nothing here\n\n')), BadInputError);
  assert.throws(() => loadSymbolTable(enc('0000000000000000 T _stext\n0000000000000000 T foo\n')), /every address is 0/);
  assert.throws(() => loadSymbolTable(enc(KALLSYMS), { bits: 32 }), BadInputError);
  assert.throws(() => loadSymbolTable(enc(KALLSYMS), { pageSize: 3000 }), BadInputError);
});

test('no table: everything prints raw like an unresolved %ps/%pS', () => {
  assert.equal(formatPs(null, 0xffffffff810d0a70n), '0xffffffff810d0a70');
  assert.equal(formatPS(null, 0xc0063828n), '0xc0063828');
});

// ---- KASLR slide inference -------------------------------------------------------------------------

test('inferKaslrSlide: Kernel Offset lines', () => {
  assert.equal(
    inferKaslrSlide(
      '<0>[   12.3] Kernel panic - not syncing: Fatal exception\n<0>[   12.3] Kernel Offset: 0x1e000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)\n',
    ),
    0x1e000000n,
  );
  assert.equal(inferKaslrSlide('[    1.0] Kernel Offset: 0x3a6f800000 from 0xffff800008000000\n'), 0x3a6f800000n);
  assert.equal(inferKaslrSlide('Kernel Offset: disabled\n'), 0n);
  assert.equal(inferKaslrSlide('Kernel Offset: 0x1000000 from 0xffffffff81000000\nKernel Offset: 0x1000000 from 0xffffffff81000000\n'), 0x1000000n);
  assert.equal(inferKaslrSlide('Kernel Offset: 0x1000000 from 0xffffffff81000000\nKernel Offset: 0x2000000 from 0xffffffff81000000\n'), null);
  assert.equal(inferKaslrSlide('RIP: 0010:lkdtm_EXCEPTION+0x5/0x20 [lkdtm]\n'), null);
  assert.equal(inferKaslrSlide(''), null);
});

test('inferKaslrSlide: raw backtrace addresses paired with symbols', () => {
  const map = loadSymbolTable(enc(SYSTEM_MAP));
  const oops = [
    '[<c11002f4>] (call_cpuidle) from [<c1100104>] (cpu_startup_entry+0x4/0x1e0)',
    '[<c1100104>] (cpu_startup_entry+0x4/0x1e0) from [<c1300020>] (init_fn+0x10/0xf0)',
    '[<deadbeef>] (no_such_symbol+0x4/0x10)',
    '[<c0300020>] (init_fn+0x10/0xf0) [some_module]',
  ].join('\n');
  assert.equal(inferKaslrSlide(oops, map), 0x1000000n);
  assert.equal(inferKaslrSlide(oops), null); // nothing to pair with
  // module symbols are not used (this one would vote for 0 and tie the vote)
  assert.equal(inferKaslrSlide('[<c1100104>] (cpu_startup_entry+0x4/0x1e0)\n[<c0300020>] (init_fn+0x10/0xf0) [some_module]\n', map), 0x1000000n);
  // one pair is taken at face value, two disagreeing pairs are not
  assert.equal(inferKaslrSlide('[<c0100108>] cpu_startup_entry+0x8/0x1e0\n', map), 0n);
  assert.equal(inferKaslrSlide('[<c0100108>] cpu_startup_entry+0x8/0x1e0\n[<c2300020>] init_fn+0x10/0xf0\n', map), null);
  // the Kernel Offset line wins over pairs
  assert.equal(inferKaslrSlide(`Kernel Offset: 0x400000 from 0xc0008000\n${oops}`, map), 0x400000n);
  // relative to a table already carrying a slide: the result replaces it
  const slid = map.withSlide(0x300000n);
  assert.equal(inferKaslrSlide(oops, slid), 0x1000000n);
});

test('module STT_FILE (a, value 0) and unloaded-section (?) entries, as 6.12 kallsyms lists them, are skipped', () => {
  const text = [
    'ffffffff81000000 T _stext',
    'ffffffff81000100 T do_thing',
    'ffffffff81200000 T _etext',
    '0000000000000000 a oops3.c\t[oops3]',
    'ffffffffc041c010 t oops_init\t[oops3]',
    'ffffd51c806600aa ? __UNIQUE_ID_license458\t[oops3]',
    'ffffffffc041e000 d __UNIQUE_ID___addressable_init_module457\t[oops3]',
    'ffffffffc041c000 t __pfx_oops_init\t[oops3]',
  ].join('\n');
  const t = loadSymbolTable(enc(text));
  assert.equal(formatPs(t, 0xffffffffc041c014n), 'oops_init [oops3]');
  assert.equal(formatPS(t, 0xffffffff81000104n), 'do_thing+0x4/0x1fff00');
});
