/**
 * A small JSON Schema (2020-12) validator for the subset of keywords hw-profiles/boards/schema.json
 * uses, so tests can hold the hand-written profile checker against the schema without a validator
 * dependency. A keyword outside the subset throws: a schema that starts using one fails the tests
 * instead of being half-checked.
 */
type Schema = Record<string, unknown>;

/** Keywords that only annotate. */
const ANNOTATIONS = new Set(['$schema', '$id', '$comment', '$defs', 'title', 'description']);
const ASSERTIONS = new Set([
  'type',
  'enum',
  'const',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'items',
  'properties',
  'additionalProperties',
  'required',
  'dependentRequired',
  'oneOf',
  'anyOf',
  '$ref',
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeMatches(type: string, v: unknown): boolean {
  switch (type) {
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
    default:
      throw new Error(`json-schema-subset: unknown type "${type}"`);
  }
}

/** JSON equality, for `enum` and `const`. */
function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** String length in code points, as JSON Schema counts it. */
const codePoints = (s: string) => [...s].length;

/**
 * Validates `value` against `root`; returns the problems found (instance path, then keyword),
 * empty when the value is valid.
 */
export function validateSubset(root: Schema, value: unknown): string[] {
  const problems: string[] = [];
  validate(root, root, value, '', problems);
  return problems;
}

function resolveRef(root: Schema, ref: string): Schema {
  if (!ref.startsWith('#/')) throw new Error(`json-schema-subset: only local $refs, got ${ref}`);
  let node: unknown = root;
  for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  if (!isObject(node)) throw new Error(`json-schema-subset: $ref ${ref} does not resolve`);
  return node;
}

function validate(root: Schema, schema: Schema, v: unknown, at: string, out: string[]): void {
  for (const k of Object.keys(schema)) {
    if (!ANNOTATIONS.has(k) && !ASSERTIONS.has(k)) throw new Error(`json-schema-subset: keyword "${k}" at ${at || '/'} is not supported`);
  }
  const fail = (keyword: string) => out.push(`${at || '/'}: ${keyword}`);
  if (typeof schema.$ref === 'string') validate(root, resolveRef(root, schema.$ref), v, at, out);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => typeMatches(t, v))) return void fail(`type ${types.join('|')}`);
  }
  if (schema.enum !== undefined && !(schema.enum as unknown[]).some((e) => jsonEqual(e, v))) fail('enum');
  if ('const' in schema && !jsonEqual(schema.const, v)) fail('const');
  if (typeof v === 'string') validateString(schema, v, fail);
  if (typeof v === 'number') {
    if (typeof schema.minimum === 'number' && v < schema.minimum) fail('minimum');
    if (typeof schema.maximum === 'number' && v > schema.maximum) fail('maximum');
  }
  if (Array.isArray(v)) validateArray(root, schema, v, at, out, fail);
  if (isObject(v)) validateObject(root, schema, v, at, out, fail);
  for (const [kw, want] of [
    ['oneOf', 1],
    ['anyOf', 0],
  ] as const) {
    if (schema[kw] === undefined) continue;
    const passing = (schema[kw] as Schema[]).filter((s) => subschemaPasses(root, s, v)).length;
    if (want === 1 ? passing !== 1 : passing === 0) fail(`${kw} (${passing} of ${(schema[kw] as Schema[]).length} match)`);
  }
}

/** Whether `v` is valid against subschema `s` (resolving `$ref`s against `root`). */
function subschemaPasses(root: Schema, s: Schema, v: unknown): boolean {
  const out: string[] = [];
  validate(root, s, v, '', out);
  return out.length === 0;
}

function validateString(schema: Schema, v: string, fail: (k: string) => void): void {
  if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) fail('pattern');
  if (typeof schema.minLength === 'number' && codePoints(v) < schema.minLength) fail('minLength');
  if (typeof schema.maxLength === 'number' && codePoints(v) > schema.maxLength) fail('maxLength');
}

function validateArray(root: Schema, schema: Schema, v: unknown[], at: string, out: string[], fail: (k: string) => void): void {
  if (typeof schema.minItems === 'number' && v.length < schema.minItems) fail('minItems');
  if (typeof schema.maxItems === 'number' && v.length > schema.maxItems) fail('maxItems');
  if (isObject(schema.items)) v.forEach((item, i) => validate(root, schema.items as Schema, item, `${at}/${i}`, out));
}

function validateObject(root: Schema, schema: Schema, v: Record<string, unknown>, at: string, out: string[], fail: (k: string) => void): void {
  const props = (schema.properties ?? {}) as Record<string, Schema>;
  for (const r of (schema.required ?? []) as string[]) if (!(r in v)) fail(`required ${r}`);
  for (const [k, deps] of Object.entries((schema.dependentRequired ?? {}) as Record<string, string[]>)) {
    if (k in v) for (const d of deps) if (!(d in v)) fail(`dependentRequired ${k} needs ${d}`);
  }
  for (const [k, item] of Object.entries(v)) {
    if (Object.hasOwn(props, k)) validate(root, props[k], item, `${at}/${k}`, out);
    else if (schema.additionalProperties === false) fail(`additionalProperties ${k}`);
    else if (schema.additionalProperties !== undefined && schema.additionalProperties !== true) throw new Error('json-schema-subset: additionalProperties must be true or false');
  }
}
