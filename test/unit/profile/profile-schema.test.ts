/**
 * One shape for board profiles: the hand-written checker (src/profile/board-profile.ts) and
 * hw-profiles/boards/schema.json must accept and reject the same profiles. The checker also
 * applies rules the schema cannot state (cross-field checks and value rules, listed in the
 * schema's own `$comment`); an error of one of those is the only thing the checker may reject
 * on its own. Anything else the two disagree on fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundledProfilesDir, checkProfile, listProfiles } from '../../../src/profile/board-profile.js';
import { validateSubset } from '../../helpers/json-schema-subset.js';
import { baseProfile } from '../../helpers/base-profile.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const schema = JSON.parse(readFileSync(join(bundledProfilesDir(), 'schema.json'), 'utf8')) as Record<string, unknown>;

/**
 * Checker errors for rules beyond the schema (see its `$comment`): partition names unique, no
 * overlaps, "rest" only last, sizes and starts whole multiples of 512, pstore.partition names a
 * partition (and is given with a layout), the kernel accepts the geometry, cmdline parses and
 * agrees with the pstore fields.
 */
const BEYOND_SCHEMA: [rule: string, error: RegExp][] = [
  ['unique partition names', /^partitions\[\d+\]\.name: ".*" is already used by partitions\[\d+\]$/],
  ['partitions fit without overlaps', /^partitions: partition \d+ ".*"/],
  ['"rest" only for the last partition', /^partitions\[\d+\]\.size: "rest" is only allowed for the last partition$/],
  ['sizes are multiples of 512', /^partitions\[\d+\]\.(size: \d+ bytes is not a positive multiple of 512|start: \d+ is not a multiple of 512)$/],
  ['sizes are whole bytes', /^(card\.min_size|partitions\[\d+\]\.(size|start)): ".*": not a whole number of bytes$/],
  ['pstore.partition names a partition', /^pstore\.partition: .* is not one of the profile's partitions/],
  ['pstore.partition is given with a layout', /^pstore\.partition: must name the pstore partition when the profile has a partition layout$/],
  ['the kernel accepts the geometry', /^partitions\[\d+\]\.size: the kernel would refuse this pstore region: /],
  ['cmdline agrees with pstore', /^pstore\.\w+: is .* but cmdline says /],
  ['cmdline parses and names the pstore partition', /^cmdline: (?!must be a string$)/],
  ['the partition type suits the table', /^partitions\[\d+\]\.type: .* is an? (MBR|GPT) type, but the table is "(gpt|mbr)"/],
  ['GPT-only and MBR-only fields match the table', /^(partitions\[\d+\]\.\w+|disk_signature|hybrid_mbr): is only for /],
  [
    'hybrid_mbr names 1 to 3 partitions of the layout, each once',
    /^hybrid_mbr(\[\d+\]\.partition: no partition is named |\[\d+\]: ".*" is listed twice$|: mirrors 1 to 3 partitions|: needs a partition layout)/,
  ],
  ['hybrid_mbr: "EE" once, first or last', /^hybrid_mbr: "EE" \(where the 0xEE slot goes\) may appear once, first or last$/],
  ['hybrid_mbr types are MBR types (or follow from the GPT type)', /^hybrid_mbr\[\d+\]\.type: /],
  ['alignment is a multiple of 4096', /^alignment: \d+ bytes is not a positive multiple of 4096$/],
];

const beyondSchema = (error: string) => BEYOND_SCHEMA.some(([, re]) => re.test(error));

interface Verdicts {
  schema: string[];
  checker: string[];
  /** Checker errors of rules the schema states as well. */
  shape: string[];
}

function verdicts(json: unknown): Verdicts {
  const checker = checkProfile(json, '/nowhere/test-board.json').errors;
  return { schema: validateSubset(schema, json), checker, shape: checker.filter((e) => !beyondSchema(e)) };
}

/**
 * Checks that the schema rejects exactly when the checker has an error the schema could state;
 * a disagreement is added to `found` (tests report all of them at once).
 */
function agree(what: string, json: unknown, found: string[]): Verdicts {
  const v = verdicts(json);
  if (v.schema.length > 0 !== v.shape.length > 0) {
    found.push(
      `${what}: schema.json ${v.schema.length > 0 ? 'rejects' : 'accepts'}, the checker ${v.shape.length > 0 ? 'rejects' : 'accepts'}\n    schema: ${JSON.stringify(v.schema)}\n    checker: ${JSON.stringify(v.checker)}`,
    );
  }
  return v;
}

const base = (): Json => baseProfile();

test('schema subset validator: the keywords schema.json uses, and a loud failure on others', () => {
  const s = {
    type: 'object',
    required: ['a'],
    additionalProperties: false,
    properties: { a: { oneOf: [{ type: 'integer', minimum: 1 }, { const: 'x' }] }, b: { type: 'array', items: { type: 'string', maxLength: 2 } } },
  };
  assert.deepEqual(validateSubset(s, { a: 1 }), []);
  assert.deepEqual(validateSubset(s, { a: 'x', b: ['ab'] }), []);
  assert.deepEqual(validateSubset(s, { a: 0 }), ['/a: oneOf (0 of 2 match)']);
  assert.deepEqual(validateSubset(s, { a: 1, b: ['abc'], c: 1 }), ['/b/0: maxLength', '/: additionalProperties c']);
  assert.deepEqual(validateSubset(s, {}), ['/: required a']);
  assert.deepEqual(validateSubset({ dependentRequired: { b: ['a'] } }, { b: 1 }), ['/: dependentRequired b needs a']);
  assert.throws(() => validateSubset({ multipleOf: 512 }, 1), /keyword "multipleOf" at \/ is not supported/);
});

test('every bundled profile passes both the checker and schema.json', () => {
  const names = listProfiles();
  assert.ok(names.length >= 4);
  for (const name of names) {
    const path = join(bundledProfilesDir(), `${name}.json`);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    assert.deepEqual(checkProfile(json, path).errors, [], name);
    assert.deepEqual(validateSubset(schema, json), [], name);
  }
  const found: string[] = [];
  assert.deepEqual(agree('base', base(), found).checker, []);
  for (const top of [[], 'board', null]) assert.ok(agree(JSON.stringify(top), top, found).schema.length > 0);
  assert.deepEqual(found, []);
});

/** Invalid profiles, one per rule: [what, change, field of the checker's error, rejected by the schema too]. */
const INVALID: [string, (j: Json) => void, string, boolean][] = [
  ['unknown top-level key', (j) => (j.colour = 'blue'), 'colour', true],
  ['unknown partition key', (j) => (j.partitions[0].colour = 'blue'), 'partitions[0].colour', true],
  ['unknown pstore key', (j) => (j.pstore.zones = 3), 'pstore.zones', true],
  ['unknown abi key', (j) => (j.abi = { bits: 64 }), 'abi.bits', true],
  ['missing name', (j) => delete j.name, 'name', true],
  ['name not an identifier', (j) => (j.name = 'Test Board'), 'name', true],
  ['description of the wrong type', (j) => (j.description = 3), 'description', true],
  ['notes of the wrong type', (j) => (j.notes = [1]), 'notes', true],
  ['$comment of the wrong type', (j) => (j.$comment = 1), '$comment', true],
  ['nested $comment of the wrong type', (j) => (j.partitions[0].$comment = 1), 'partitions[0].$comment', true],
  ['abi.endian', (j) => (j.abi = { endian: 'middle' }), 'abi.endian', true],
  ['abi.layout', (j) => (j.abi = { layout: 'lp32' }), 'abi.layout', true],
  ['card not an object', (j) => (j.card = 4), 'card', true],
  ['bad size string', (j) => (j.card = { min_size: 'lots' }), 'card.min_size', true],
  ['negative size', (j) => (j.partitions[0].size = -512), 'partitions[0].size', true],
  ['partitions not a list', (j) => (j.partitions = {}), 'partitions', true],
  ['no partitions', (j) => (j.partitions = []), 'partitions', true],
  ['partition not an object', (j) => (j.partitions[0] = 'boot'), 'partitions[0]', true],
  ['partition size missing', (j) => delete j.partitions[0].size, 'partitions[0].size', true],
  ['partition type missing', (j) => delete j.partitions[0].type, 'partitions[0].type', true],
  ['partition name empty', (j) => (j.partitions[0].name = ''), 'partitions[0].name', true],
  ['partition name too long', (j) => (j.partitions[0].name = 'x'.repeat(37)), 'partitions[0].name', true],
  ['bad partition type', (j) => (j.partitions[0].type = 'ext4'), 'partitions[0].type', true],
  ['partition type that is an Object.prototype name', (j) => (j.partitions[0].type = 'constructor'), 'partitions[0].type', true],
  ['bad uuid', (j) => (j.partitions[0].uuid = 'not-a-guid'), 'partitions[0].uuid', true],
  ['attribute bit out of range', (j) => (j.partitions[0].attributes = [64]), 'partitions[0].attributes', true],
  ['image path empty', (j) => (j.partitions[0].image = ''), 'partitions[0].image', true],
  ['bmap without an image', (j) => (j.partitions[0].bmap = 'boot.bmap'), 'partitions[0].bmap', true],
  ['more partitions than a GPT holds', (j) => (j.partitions = Array.from({ length: 129 }, (_, i) => ({ name: `p${i}`, type: 'linux', size: '1MiB' }))), 'partitions', true],
  ['pstore not an object', (j) => (j.pstore = 'p2'), 'pstore', true],
  ['negative zone size', (j) => (j.pstore.kmsg_size = -1), 'pstore.kmsg_size', true],
  ['zone size past the kernel limit', (j) => (j.pstore.kmsg_size = 131073), 'pstore.kmsg_size', true],
  ['no CPUs', (j) => (j.pstore.cpus = 0), 'pstore.cpus', true],
  ['more CPUs than NR_CPUS', (j) => (j.pstore.cpus = 8193), 'pstore.cpus', true],
  ['max_reason past int', (j) => (j.pstore.max_reason = 2 ** 31), 'pstore.max_reason', true],
  ['fractional zone size', (j) => (j.pstore.kmsg_size = 1.5), 'pstore.kmsg_size', true],
  ['empty pstore.partition', (j) => (j.pstore.partition = ''), 'pstore.partition', true],
  ['pstore.partition 0', (j) => (j.pstore.partition = 0), 'pstore.partition', true],
  ['ftrace_cpu_in_ip', (j) => (j.pstore.ftrace_cpu_in_ip = 2), 'pstore.ftrace_cpu_in_ip', true],
  ['compress of the wrong type', (j) => (j.pstore.compress = true), 'pstore.compress', true],
  ['backend', (j) => (j.pstore.backend = 'ramoops'), 'pstore.backend', true],
  ['headers of the wrong type', (j) => (j.pstore.headers = 'yes'), 'pstore.headers', true],
  ['cmdline of the wrong type', (j) => (j.cmdline = ['quiet']), 'cmdline', true],
  // rules beyond the schema: the checker alone rejects these
  ['duplicate partition name', (j) => (j.partitions[2].name = 'boot'), 'partitions[2].name', false],
  ['pstore partition missing', (j) => (j.pstore.partition = 'crash'), 'pstore.partition', false],
  ['pstore partition number past the layout', (j) => (j.pstore.partition = 4), 'pstore.partition', false],
  ['pstore.partition absent with a layout', (j) => delete j.pstore.partition, 'pstore.partition', false],
  ['"rest" before the last partition', (j) => (j.partitions[0].size = 'rest'), 'partitions[0].size', false],
  ['size not a multiple of 512', (j) => (j.partitions[0].size = 1000), 'partitions[0].size', false],
  ['size of fractional bytes', (j) => (j.partitions[0].size = '1.5'), 'partitions[0].size', false],
  ['overlapping start', (j) => (j.partitions[1].start = '4MiB'), 'partitions', false],
  ['geometry the kernel refuses', (j) => (j.partitions[1].size = '6K'), 'partitions[1].size', false],
  ['cmdline disagrees with pstore', (j) => (j.cmdline += ' pstore_blk.kmsg_size=32'), 'pstore.kmsg_size', false],
  ['blkdev names another partition', (j) => (j.cmdline = 'pstore_blk.blkdev=/dev/mmcblk0p3'), 'cmdline', false],
  ['hybrid_mbr not a list', (j) => (j.hybrid_mbr = 'boot'), 'hybrid_mbr', true],
  ['hybrid_mbr empty', (j) => (j.hybrid_mbr = []), 'hybrid_mbr', true],
  ['hybrid_mbr item of the wrong type', (j) => (j.hybrid_mbr = [3]), 'hybrid_mbr[0]', true],
  ['hybrid_mbr unknown key', (j) => (j.hybrid_mbr = [{ partition: 'boot', active: true }]), 'hybrid_mbr[0].active', true],
  ['hybrid_mbr bootable of the wrong type', (j) => (j.hybrid_mbr = [{ partition: 'boot', bootable: 'yes' }]), 'hybrid_mbr[0].bootable', true],
  ['hybrid_mbr unknown partition', (j) => (j.hybrid_mbr = ['esp']), 'hybrid_mbr[0].partition', false],
  ['hybrid_mbr four partitions', (j) => (j.hybrid_mbr = ['boot', 'pstore', 'rootfs', { partition: 'boot' }]), 'hybrid_mbr', false],
  ['hybrid_mbr partition twice', (j) => (j.hybrid_mbr = ['boot', 'boot']), 'hybrid_mbr[1]', false],
  ['hybrid_mbr EE in the middle', (j) => (j.hybrid_mbr = ['boot', 'EE', 'rootfs']), 'hybrid_mbr', false],
  ['hybrid_mbr type not an MBR type', (j) => (j.hybrid_mbr = [{ partition: 'boot', type: 'ee' }]), 'hybrid_mbr[0].type', false],
  [
    'hybrid_mbr GPT type with no MBR type',
    (j) => {
      j.partitions[2].type = 'A19D880F-05FC-4D3B-A006-743F0F84911E';
      j.hybrid_mbr = ['rootfs'];
    },
    'hybrid_mbr[0].type',
    false,
  ],
  ['hybrid_mbr on an MBR table', (j) => Object.assign(j, { table: 'mbr', hybrid_mbr: ['boot'] }), 'hybrid_mbr', false],
];

test('invalid profiles, one per rule: the checker names the field, and schema.json agrees unless the rule is beyond it', () => {
  assert.ok(INVALID.length >= 15);
  const found: string[] = [];
  for (const [what, change, field, schemaRejects] of INVALID) {
    const j = base();
    change(j);
    const v = agree(what, j, found);
    if (!v.checker.some((e) => e.startsWith(`${field}: `))) found.push(`${what}: expected an error of ${field}, got ${JSON.stringify(v.checker)}`);
    if (v.schema.length > 0 !== schemaRejects)
      found.push(`${what}: schema.json ${schemaRejects ? 'should reject it' : 'accepts it by design (a rule beyond it)'}, got ${JSON.stringify(v.schema)}`);
  }
  assert.deepEqual(found, []);
});

/** Valid spellings both must accept. */
const VALID: [string, (j: Json) => void][] = [
  ['type alias in capitals', (j) => (j.partitions[0].type = 'ESP')],
  ['type GUID in lowercase', (j) => (j.partitions[0].type = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b')],
  ['hex size', (j) => (j.partitions[0].size = '0x800000')],
  ['hex size with a capital X', (j) => (j.partitions[0].size = '0X800000')],
  ['size with spaces and a 1000-based unit', (j) => (j.card = { min_size: ' 4 GB ' })],
  ['decimal size that is whole bytes', (j) => (j.partitions[0].size = '7.5MiB')],
  [
    '$comment lists everywhere',
    (j) => {
      j.$comment = ['a', 'b'];
      j.partitions[0].$comment = 'x';
      j.pstore.$comment = [];
      j.abi = { $comment: 'y' };
      j.card = { $comment: 'z' };
    },
  ],
  ['notes as one string', (j) => (j.notes = 'one note')],
  ['pstore partition by number', (j) => (j.pstore.partition = 2)],
  ['repeated attribute bits', (j) => (j.partitions[0].attributes = [2, 2, 0])],
  ['every pstore field', (j) => Object.assign(j.pstore, { cpus: 4, max_reason: 2, compress: 'deflate', ftrace_cpu_in_ip: 3, backend: 'mmcpstore', headers: true })],
  ['hybrid_mbr by name, object and EE last', (j) => (j.hybrid_mbr = ['boot', { partition: 'rootfs', type: 'linux', bootable: true }, 'EE'])],
  ['hybrid_mbr with EE first and a hex type', (j) => (j.hybrid_mbr = ['ee', { partition: 'boot', type: '0c', $comment: 'FAT32 LBA for the boot ROM' }])],
  ['image and bmap', (j) => Object.assign(j.partitions[2], { image: 'root.img', bmap: 'root.bmap', uuid: '0fc63daf-8483-4772-8e79-3d69d8477de4' })],
];

test('valid spellings: both accept', () => {
  const found: string[] = [];
  for (const [what, change] of VALID) {
    const j = base();
    change(j);
    const v = agree(what, j, found);
    if (v.checker.length > 0) found.push(`${what}: the checker rejects it: ${JSON.stringify(v.checker)}`);
  }
  assert.deepEqual(found, []);
});

test('sweep: every field of the base profile set to values of every kind, the two agree on each', () => {
  const values: unknown[] = [
    null,
    true,
    0,
    1,
    -1,
    1.5,
    512,
    131072,
    131073,
    8192,
    8193,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 53,
    '',
    'x',
    'rest',
    '1MiB',
    '4 kib',
    '1000',
    '0x10',
    'lots',
    '1.5',
    '2Ki',
    [],
    [1],
    ['a'],
    [0, 63],
    {},
    { a: 1 },
    'le',
    'be',
    'lp64',
    'ilp32',
    'i386',
    'linux',
    'Linux',
    'toString',
    '__proto__',
    'pstore',
    'boot',
    'best_effort',
    'mmcpstore',
    '0fc63daf-8483-4772-8e79-3d69d8477de4',
    '00000000-0000-0000-0000-000000000000',
    'x'.repeat(36),
    'x'.repeat(37),
  ];
  const fields: (string | number)[][] = [
    ['name'],
    ['description'],
    ['notes'],
    ['$comment'],
    ['abi'],
    ['abi', 'endian'],
    ['abi', 'layout'],
    ['card'],
    ['card', 'min_size'],
    ['partitions'],
    ['pstore'],
    ['cmdline'],
    ...['name', 'type', 'size', 'start', 'image', 'bmap', 'uuid', 'attributes', '$comment'].flatMap((k) => [0, 2].map((i) => ['partitions', i, k])),
    ...['partition', 'kmsg_size', 'pmsg_size', 'console_size', 'ftrace_size', 'cpus', 'max_reason', 'compress', 'ftrace_cpu_in_ip', 'backend', 'headers', '$comment'].map((k) => [
      'pstore',
      k,
    ]),
  ];
  let n = 0;
  const found: string[] = [];
  for (const path of fields) {
    for (const value of values) {
      const j = base();
      const parent = path.slice(0, -1).reduce((o: Json, k) => (o[k] ??= {}), j);
      parent[path[path.length - 1]] = value;
      agree(`${path.join('.')} = ${JSON.stringify(value)}`, j, found);
      n++;
    }
  }
  assert.deepEqual(found, []);
  assert.ok(n > 1500, `${n} profiles`);
});
