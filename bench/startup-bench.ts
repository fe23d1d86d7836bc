/**
 * npm run bench:startup — how long crashcart takes to its first output, against a bare
 * `node -e 0` (Node's own start-up, the floor for any Node program).
 *
 * Runs each case RUNS times (default 20), interleaved round by round (the order rotates each
 * round), and reports per case the median time from spawn to the first byte on stdout or
 * stderr and to exit, the ratio of the first to `node -e 0`'s exit, and (on Linux) the mean CPU
 * time (user + system, all threads) per run and its ratio to `node -e 0`'s: on a busy machine
 * wall times follow the load, CPU time much less. Cases: --help,
 * --version, a subcommand's --help, `pstore layout` and `info` on a small kernel-written image
 * (test/fixtures/kernel/stock61-gpt, unpacked to a temp folder), and `list` (on a machine
 * without readers: enumerates USB and finds none).
 *
 * Usage: npm run bench:startup [-- --runs N] [-- --compare PATH...]: every crashcart case is also
 * run through each other entry PATH (e.g. bin/crashcart of an older checkout), interleaved with
 * the rest. Prints a table and a JSON line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('../..', import.meta.url));

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The values after --compare, up to the next option. */
function compared(): string[] {
  const i = process.argv.indexOf('--compare');
  if (i < 0) return [];
  const rest = process.argv.slice(i + 1);
  const end = rest.findIndex((a) => a.startsWith('--'));
  return end < 0 ? rest : rest.slice(0, end);
}

/**
 * CPU time (user + system, ms) of this process's waited-for children so far, from
 * /proc/self/stat (cutime, cstime in clock ticks of 10 ms); undefined where there is none.
 */
function childCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    return undefined;
  }
}

interface Sample {
  /** Milliseconds from spawn to the first output byte (to exit when there is none). */
  first: number;
  /** Milliseconds from spawn to exit. */
  exit: number;
  code: number | null;
  /** CPU milliseconds of the child (10 ms resolution), where known. */
  cpu?: number;
}

function runOnce(args: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const cpuBefore = childCpuMs();
    const start = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - start) / 1e6;
    let first: number | undefined;
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const seen = () => void (first ??= ms());
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.on('error', reject);
    child.on('close', (code) => {
      const exit = ms();
      const cpuAfter = childCpuMs();
      resolve({ first: first ?? exit, exit, code, cpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore });
    });
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const runs = Number(option('runs') ?? 20);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const bins = [join(root, 'bin', 'crashcart'), ...compared()];
  const dir = mkdtempSync(join(tmpdir(), 'crashcart-startup-'));
  try {
    const image = join(dir, 'disk.img');
    writeFileSync(image, gunzipSync(readFileSync(join(root, 'test/fixtures/kernel/stock61-gpt/disk.img.gz'))));
    const commands = [['--help'], ['--version'], ['pstore', 'extract', '--help'], ['flash', '--help'], ['pstore', 'layout', image], ['info', image], ['list']];
    const cases: { name: string; args: string[] }[] = [{ name: 'node -e 0', args: ['-e', '0'] }];
    bins.forEach((bin, b) => {
      for (const c of commands) cases.push({ name: `${b ? `[${b}] ` : ''}crashcart ${c.join(' ').replace(image, 'IMAGE')}`, args: [bin, ...c] });
    });
    const samples = cases.map(() => [] as Sample[]);
    // One warm-up round (file cache), then RUNS interleaved rounds.
    for (const c of cases) await runOnce(c.args);
    for (let round = 0; round < runs; round++) {
      for (let k = 0; k < cases.length; k++) {
        const i = (k + round) % cases.length;
        samples[i].push(await runOnce(cases[i].args));
      }
    }
    const base = median(samples[0].map((s) => s.exit));
    const cpuOf = (xs: Sample[]) => (xs.every((s) => s.cpu !== undefined) ? mean(xs.map((s) => s.cpu!)) : undefined);
    const baseCpu = cpuOf(samples[0]);
    const rows = cases.map((c, i) => {
      const first = median(samples[i].map((s) => s.first));
      const exit = median(samples[i].map((s) => s.exit));
      const cpu = cpuOf(samples[i]);
      return {
        case: c.name,
        firstOutputMs: +first.toFixed(1),
        exitMs: +exit.toFixed(1),
        ratio: +(first / base).toFixed(2),
        cpuMs: cpu === undefined ? null : +cpu.toFixed(1),
        cpuRatio: cpu === undefined || !baseCpu ? null : +(cpu / baseCpu).toFixed(2),
        nonZeroExits: samples[i].filter((s) => s.code !== 0).length,
      };
    });
    console.log(`start-up, ${runs} interleaved runs per case (node ${process.version}): medians of wall time, mean CPU time; ratios to node -e 0`);
    bins.forEach((bin, b) => console.log(`${b ? `[${b}]` : '   '} ${bin}`));
    const ms = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(1)} ms`);
    const x = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
    console.log(`${'case'.padEnd(38)} ${'first output'.padStart(12)} ${'exit'.padStart(10)} ${'ratio'.padStart(6)} ${'CPU'.padStart(10)} ${'ratio'.padStart(6)}`);
    for (const r of rows) {
      const note = r.nonZeroExits ? `  (${r.nonZeroExits} run(s) exited non-zero)` : '';
      console.log(
        `${r.case.padEnd(38)} ${ms(r.firstOutputMs).padStart(12)} ${ms(r.exitMs).padStart(10)} ${x(r.ratio).padStart(6)} ${ms(r.cpuMs).padStart(10)} ${x(r.cpuRatio).padStart(6)}${note}`,
      );
    }
    console.log(JSON.stringify({ bench: 'startup', node: process.version, runs, bins, rows }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
