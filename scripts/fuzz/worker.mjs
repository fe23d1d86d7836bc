// Runs one fuzz target in a worker thread. Shared counters (Int32Array over a
// SharedArrayBuffer) tell the main thread which input is running, so its watchdog can
// report a hang with the input that caused it.
import { parentPort, workerData } from 'node:worker_threads';
import { rng, mix } from './mutate.mjs';
import { TARGETS, CrashcartError } from './targets.mjs';
import { saveInput, describeError, preview } from './save.mjs';

const { target: name, seed, start, maxIterations, seconds, shared, outDir, keepGoing, maxFailures } = workerData;
const st = new Int32Array(shared);
// st[0]: iteration running; st[1]: 1 while an input runs; st[2]: inputs finished; st[3]: typed errors
const t = TARGETS[name];
const corpus = await t.setup();
parentPort.postMessage({ type: 'ready' });
const t0 = Date.now();
const deadline = t0 + seconds * 1000;

let iterations = 0;
let typed = 0;
let failures = 0;
const errorKinds = new Map();
for (let i = start; iterations < maxIterations && Date.now() < deadline; i++) {
  Atomics.store(st, 0, i);
  Atomics.store(st, 1, 1);
  const input = t.gen(rng(mix(seed, i)), corpus);
  try {
    await t.run(input, corpus);
  } catch (e) {
    if (e instanceof CrashcartError) {
      typed++;
      Atomics.add(st, 3, 1);
      errorKinds.set(e.name, (errorKinds.get(e.name) ?? 0) + 1);
    } else {
      failures++;
      const saved = t.save(input);
      const file = saveInput(outDir, name, seed, i, saved);
      parentPort.postMessage({ type: 'failure', iteration: i, file, error: `${describeError(e)}\n${preview(saved)}` });
      if (!keepGoing || failures >= maxFailures) {
        iterations++;
        break;
      }
    }
  }
  iterations++;
  Atomics.store(st, 1, 0);
  Atomics.add(st, 2, 1);
}
parentPort.postMessage({ type: 'done', iterations, typed, failures, ms: Date.now() - t0, errorKinds: Object.fromEntries(errorKinds) });
