#!/usr/bin/env node
// Fuzzing entry point: `npm run fuzz -- --seconds N` (after `npm run build`).
//
// Each target (scripts/fuzz/targets.mjs: pstore, partition, bmap, zip, profile, cmdline, symbols,
// kconfig) runs in a worker thread on deterministic inputs: input i of a target is generated
// from a PRNG seeded with (seed, i), so any input can be regenerated. A watchdog in this thread
// treats an input that runs longer than --hang-ms as a hang; any exception that is not a typed
// CrashcartError is a failure. Both save the input under --out and make the run exit 1.
//
//   --seconds N        time budget, shared by the targets (default 60)
//   --target a,b       targets to run (default: all)
//   --seed S           base seed (default 1)
//   --iterations N     stop a target after N inputs (default: unlimited)
//   --jobs J           workers per target (default 1); worker k runs inputs k·10⁹, k·10⁹+1, …
//   --hang-ms MS       hang threshold per input (default 5000)
//   --out DIR          where failing inputs go (default fuzz-findings)
//   --keep-going       keep fuzzing after a failure (up to 20 per worker)
//   --replay FILE.bin  run one saved input again and print what happens
import { Worker } from 'node:worker_threads';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mix, rng, strSeed } from './fuzz/mutate.mjs';
import { saveInput, describeError, preview } from './fuzz/save.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ALL = ['pstore', 'partition', 'bmap', 'zip', 'profile', 'cmdline', 'symbols', 'kconfig'];

function parseArgs(argv) {
  const o = { seconds: 60, targets: ALL, seed: 1, iterations: Infinity, jobs: 1, hangMs: 5000, out: 'fuzz-findings', keepGoing: false, replay: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    const num = (min) => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < min) usage(`${a} must be a number ≥ ${min}`);
      return v;
    };
    if (a === '--seconds') o.seconds = num(0);
    else if (a === '--target' || a === '--targets') o.targets = val().split(',').filter(Boolean);
    else if (a === '--seed') o.seed = Math.floor(num(0)) >>> 0;
    else if (a === '--iterations') o.iterations = Math.floor(num(1));
    else if (a === '--jobs') o.jobs = Math.floor(num(1));
    else if (a === '--hang-ms') o.hangMs = num(100);
    else if (a === '--out') o.out = val();
    else if (a === '--keep-going') o.keepGoing = true;
    else if (a === '--replay') o.replay = val();
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  for (const t of o.targets) if (!ALL.includes(t) && t !== 'selftest') usage(`unknown target ${t} (targets: ${ALL.join(', ')})`);
  return o;
}

function usage(msg) {
  if (msg) console.error(`fuzz: ${msg}`);
  console.error('usage: npm run fuzz -- [--seconds N] [--target a,b] [--seed S] [--iterations N] [--jobs J] [--hang-ms MS] [--out DIR] [--keep-going] [--replay FILE.bin]');
  process.exit(msg ? 2 : 0);
}

if (!existsSync(join(here, '../dist/src/index.js'))) {
  console.error('fuzz: dist/ is missing; run `npm run build` first');
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));

if (opts.replay) {
  const meta = JSON.parse(readFileSync(opts.replay.replace(/\.bin$/, '.json'), 'utf8'));
  const { TARGETS, CrashcartError } = await import('./fuzz/targets.mjs');
  const t = TARGETS[meta.target];
  const corpus = await t.setup();
  const input = t.load(readFileSync(opts.replay), meta);
  const t0 = performance.now();
  try {
    await t.run(input, corpus);
    console.log(`replay ${opts.replay}: ok in ${(performance.now() - t0).toFixed(1)} ms`);
  } catch (e) {
    const typed = e instanceof CrashcartError;
    console.log(`replay ${opts.replay}: ${typed ? 'typed error' : 'FAILURE'} after ${(performance.now() - t0).toFixed(1)} ms\n${describeError(e)}`);
    process.exit(typed ? 0 : 1);
  }
  process.exit(0);
}

/** Regenerates input `i` of a target in this thread (for hangs and crashed workers). */
async function regenerate(target, seed, i) {
  const { TARGETS } = await import('./fuzz/targets.mjs');
  const t = TARGETS[target];
  const corpus = await t.setup();
  return t.save(t.gen(rng(mix(seed, i)), corpus));
}

/**
 * Runs inputs start, start+1, … of a target in a worker until `seconds` or `maxIterations`.
 * An input that runs past --hang-ms is run again alone in a fresh worker: if it passes the
 * threshold again it is a HANG (saved, the run fails); if not, the first time was the machine
 * being busy — it is saved under slow-*, and the run resumes after it (`resumeFrom`).
 * `confirm`: that re-run (no re-confirmation, nothing saved).
 */
function runWorker(target, seed, start, seconds, maxIterations, confirm = false) {
  return new Promise((resolveP) => {
    const shared = new SharedArrayBuffer(16);
    const st = new Int32Array(shared);
    if (!confirm) live.add(st);
    const w = new Worker(join(here, 'fuzz/worker.mjs'), {
      workerData: { target, seed, start, seconds, maxIterations, shared, outDir: opts.out, keepGoing: opts.keepGoing, maxFailures: 20 },
      resourceLimits: { maxOldGenerationSizeMb: 1536 },
    });
    const result = { target, iterations: 0, typed: 0, failures: [], slow: [], hang: null, ms: 0, errorKinds: {}, resumeFrom: undefined };
    let lastDone = -1;
    let lastChange = Date.now();
    let readyAt = 0;
    let finished = false;
    let suspect = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      live.delete(st);
      clearInterval(timer);
      resolveP(result);
    };
    const countsSoFar = () => {
      result.iterations = Atomics.load(st, 2) >>> 0;
      result.typed = Atomics.load(st, 3) >>> 0;
      result.ms = Date.now() - readyAt;
    };
    const report = async (kind, detail) => {
      const i = Atomics.load(st, 0);
      const saved = await regenerate(target, seed, i);
      const file = saveInput(opts.out, target, seed, i, saved);
      detail = `${detail}\n${preview(saved)}`;
      result.failures.push({ iteration: i, file, error: `${kind}: ${detail}` });
      countsSoFar();
      result.iterations++;
      console.error(`\n[${target}] ${kind} on input ${i} (seed ${seed}); saved ${file}\n${detail}`);
      finish();
    };
    const onSuspect = async () => {
      const i = Atomics.load(st, 0);
      const waited = Date.now() - lastChange;
      countsSoFar();
      await w.terminate();
      if (confirm) {
        result.hang = i;
        return finish();
      }
      const again = await runWorker(target, seed, i, 3600, 1, true);
      if (again.hang !== null) {
        result.hang = i;
        return void report('HANG', `one input ran for more than ${opts.hangMs} ms, twice (the second time alone in a fresh worker)`);
      }
      const file = saveInput(join(opts.out, 'slow'), target, seed, i, await regenerate(target, seed, i));
      result.slow.push({ iteration: i, file, firstMs: waited, againMs: again.ms });
      console.error(`[${target}] input ${i} took over ${waited} ms, but ${again.ms} ms alone: a busy machine, not a hang (saved ${file})`);
      result.iterations++;
      if (again.typed) result.typed++;
      result.resumeFrom = i + 1;
      finish();
    };
    const timer = setInterval(() => {
      if (!readyAt || finished || suspect) return;
      const done = Atomics.load(st, 2);
      if (done !== lastDone) {
        lastDone = done;
        lastChange = Date.now();
      } else if (Atomics.load(st, 1) === 1 && Date.now() - lastChange > opts.hangMs) {
        suspect = true;
        void onSuspect();
      }
    }, 100);
    w.on('message', (m) => {
      if (m.type === 'ready') {
        readyAt = Date.now();
        lastChange = readyAt;
      } else if (m.type === 'failure') {
        result.failures.push({ iteration: m.iteration, file: m.file, error: m.error });
        console.error(`\n[${target}] FAILURE on input ${m.iteration} (seed ${seed}); saved ${m.file}\n${m.error}`);
      } else if (m.type === 'done') {
        Object.assign(result, { iterations: m.iterations, typed: m.typed, ms: m.ms, errorKinds: m.errorKinds });
      }
    });
    let crashed = false;
    w.on('error', (e) => {
      if (finished || suspect) return;
      crashed = true;
      void report('CRASH', describeError(e));
    });
    w.on('exit', () => {
      if (!suspect && !finished && !crashed) finish();
    });
  });
}

/** runWorker, resumed after inputs that were only slow, until the time or the inputs run out. */
async function runSegments(target, seed, start, seconds, maxIterations) {
  const agg = { target, iterations: 0, typed: 0, failures: [], slow: [], ms: 0, errorKinds: {} };
  const end = Date.now() + seconds * 1000;
  let from = start;
  for (;;) {
    const r = await runWorker(target, seed, from, Math.max(0, (end - Date.now()) / 1000), maxIterations - agg.iterations);
    agg.iterations += r.iterations;
    agg.typed += r.typed;
    agg.failures.push(...r.failures);
    agg.slow.push(...r.slow);
    agg.ms += r.ms;
    for (const [k, v] of Object.entries(r.errorKinds)) agg.errorKinds[k] = (agg.errorKinds[k] ?? 0) + v;
    if (r.resumeFrom === undefined || Date.now() >= end || agg.iterations >= maxIterations) return agg;
    from = r.resumeFrom;
  }
}

const t0 = Date.now();
// Progress every 60 s on long runs: inputs finished so far by the running workers.
const live = new Set();
const progress = setInterval(() => {
  let n = 0;
  for (const st of live) n += Atomics.load(st, 2) >>> 0;
  if (live.size) console.log(`  … ${n} inputs of the current target after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}, 60_000);
progress.unref();
const perTarget = opts.seconds / opts.targets.length;
const results = [];
console.log(`fuzz: seed ${opts.seed}, ${opts.targets.join(', ')}; ${perTarget.toFixed(1)} s per target, ${opts.jobs} worker(s) each, hang threshold ${opts.hangMs} ms`);
for (const target of opts.targets) {
  const seed = mix(opts.seed, strSeed(target));
  const per = opts.iterations === Infinity ? Infinity : Math.ceil(opts.iterations / opts.jobs);
  const rs = await Promise.all(Array.from({ length: opts.jobs }, (_, k) => runSegments(target, seed, k * 1e9, perTarget, per)));
  const agg = { target, iterations: 0, typed: 0, failures: [], slow: [], ms: 0, errorKinds: {} };
  for (const r of rs) {
    agg.iterations += r.iterations;
    agg.typed += r.typed;
    agg.failures.push(...r.failures);
    agg.slow.push(...r.slow);
    agg.ms = Math.max(agg.ms, r.ms);
    for (const [k, v] of Object.entries(r.errorKinds)) agg.errorKinds[k] = (agg.errorKinds[k] ?? 0) + v;
  }
  const rate = agg.ms > 0 ? (agg.iterations / agg.ms) * 1000 : 0;
  const kinds = Object.entries(agg.errorKinds)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `  ${target.padEnd(10)} ${String(agg.iterations).padStart(9)} inputs  ${rate.toFixed(1).padStart(8)}/s  typed errors ${agg.typed}${kinds ? ` (${kinds})` : ''}  failures ${agg.failures.length}${agg.slow.length ? `  slow (not hangs) ${agg.slow.length}` : ''}`,
  );
  results.push(agg);
}
const total = results.reduce((a, r) => a + r.iterations, 0);
const failed = results.flatMap((r) => r.failures);
const secs = (Date.now() - t0) / 1000;
console.log(`fuzz: ${total} inputs in ${secs.toFixed(1)} s (${(total / secs).toFixed(1)}/s); ${failed.length ? `${failed.length} FAILURE(S):` : 'no untyped exception, no hang'}`);
for (const f of failed) console.log(`  ${f.file}: ${f.error.split('\n')[0]}`);
process.exit(failed.length ? 1 : 0);
