/**
 * `node --import <this module> …` with CRASHCART_MODULE_TRACE=FILE writes to FILE, one a line,
 * every module the process loads: each URL the ES module loader resolves (including dynamic
 * import()), and at exit every file in the CommonJS cache (require() of CommonJS packages,
 * createRequire included) and every native addon (`.node` shared object) in the process.
 *
 * The same module is the hooks module: registered with module.register(), it runs again on the
 * loader's own thread, where it only exports the resolve hook.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const file = process.env.CRASHCART_MODULE_TRACE;

interface ResolveResult {
  url: string;
}
type NextResolve = (specifier: string, context: unknown) => Promise<ResolveResult>;

export async function resolve(specifier: string, context: unknown, next: NextResolve): Promise<ResolveResult> {
  const r = await next(specifier, context);
  if (file) appendFileSync(file, `${r.url}\n`);
  return r;
}

if (isMainThread && file) {
  register(import.meta.url);
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const report = process.report.getReport() as { sharedObjects?: string[] };
    const addons = (report.sharedObjects ?? []).filter((p) => p.endsWith('.node'));
    appendFileSync(file, [...Object.keys(cache), ...addons].map((p) => `${p}\n`).join(''));
  });
}
