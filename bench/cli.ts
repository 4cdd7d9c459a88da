// `npm run bench [-- --quick] [--orders N] [--concurrency 32,64] [--ceiling-orders N]
//   [--idle-seconds S] [--cold-start-runs R]`: prints the tables and writes the whole result as
// JSON to bench/results/<timestamp>.json.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPOSITORY_ROOT } from '../local/package-stack.js';
import { formatReport } from './report.js';
import { runBenchmark, type BenchOptions } from './run.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    orders: { type: 'string' },
    concurrency: { type: 'string' },
    'ceiling-orders': { type: 'string' },
    'idle-seconds': { type: 'string' },
    'cold-start-runs': { type: 'string' },
  },
});

function positive(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, not ${raw}`);
  return value;
}

const options: Partial<BenchOptions> = { quick: values.quick };
const set = <K extends keyof BenchOptions>(key: K, value: BenchOptions[K] | undefined) => {
  if (value !== undefined) options[key] = value;
};
set('orders', positive('orders', values.orders));
set('concurrency', values.concurrency?.split(',').map((part) => positive('concurrency', part.trim())!));
set('ceilingOrders', positive('ceiling-orders', values['ceiling-orders']));
set('idleSeconds', positive('idle-seconds', values['idle-seconds']));
set('coldStartRuns', positive('cold-start-runs', values['cold-start-runs']));

const tty = process.stderr.isTTY;
let currentPhase = '';
let lastShown = -1;
options.progress = (phase, done, total) => {
  if (phase !== currentPhase) {
    if (currentPhase && tty) process.stderr.write('\n');
    currentPhase = phase;
    lastShown = -1;
  }
  if (tty) {
    process.stderr.write(`\r${phase}: ${done}/${total}`);
    return;
  }
  // Not a terminal: a line at the start, every tenth and at the end.
  const step = Math.floor((done / Math.max(1, total)) * 10);
  if (step !== lastShown || done === total) {
    if (step !== lastShown) process.stderr.write(`${phase}: ${done}/${total}\n`);
    lastShown = step;
  }
};

const started = Date.now();
const result = await runBenchmark(options);
if (tty) process.stderr.write('\n');
process.stdout.write(formatReport(result));
const file = path.join(REPOSITORY_ROOT, 'bench', 'results', `${result.startedAt.replace(/[:.]/g, '-')}.json`);
await mkdir(path.dirname(file), { recursive: true });
await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`Wrote ${path.relative(process.cwd(), file)} (${Math.round((Date.now() - started) / 1000)} s)\n`);
