/**
 * The machine contract (schemas/v1/*.schema.json, JSON Schema 2020-12) checked with ajv: every
 * schema compiled once (unknown keywords and formats are errors), `assertContract(name, value)` fails with ajv's own list
 * of what does not match.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020Module, { type ValidateFunction } from 'ajv/dist/2020.js';
import { repoRoot } from './kernel-fixtures.js';

export const schemaDir = join(repoRoot, 'schemas/v1');
const BASE = 'https://crashcart.invalid/schemas/v1/';

// ajv is CommonJS: under NodeNext its class is the `default` of the default import.
const Ajv2020 = Ajv2020Module.default;
type Ajv = InstanceType<typeof Ajv2020>;

let ajv: Ajv | undefined;
const compiled = new Map<string, ValidateFunction>();

function load(): Ajv {
  if (ajv) return ajv;
  ajv = new Ajv2020({ strict: true, strictRequired: false, strictTypes: false, allErrors: true });
  for (const f of readdirSync(schemaDir).filter((n) => n.endsWith('.schema.json'))) {
    const schema = JSON.parse(readFileSync(join(schemaDir, f), 'utf8')) as { $id?: string };
    assert.equal(schema.$id, BASE + f, `${f}: $id`);
    ajv.addSchema(schema);
  }
  return ajv;
}

/** Every schema file name (`flash.schema.json`, …). */
export function schemaFiles(): string[] {
  return readdirSync(schemaDir).filter((n) => n.endsWith('.schema.json'));
}

/** `name` is a file (`flash`) or a definition in one (`profile#/$defs/list`). */
export function validatorFor(name: string): ValidateFunction {
  let v = compiled.get(name);
  if (!v) {
    const [file, pointer] = name.split('#');
    const id = `${BASE}${file}.schema.json${pointer ? `#${pointer}` : ''}`;
    v = load().getSchema(id);
    if (!v) throw new Error(`no schema ${id}`);
    compiled.set(name, v);
  }
  return v;
}

export function assertContract(name: string, value: unknown, what = name): void {
  const v = validatorFor(name);
  if (!v(value)) assert.fail(`${what} does not match schemas/v1/${name}: ${JSON.stringify(v.errors, null, 1)}\nvalue: ${JSON.stringify(value).slice(0, 2000)}`);
}

/** Parses NDJSON (one object per line) and checks every line against `name`. */
export function assertNdjson(name: string, stdout: string, what = name): Record<string, unknown>[] {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const out = lines.map((l, i) => {
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return assert.fail(`${what}: line ${i + 1} is not JSON: ${l.slice(0, 200)}`);
    }
    assertContract(name, obj, `${what} line ${i + 1}`);
    return obj;
  });
  return out;
}
