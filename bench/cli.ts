// `npm run bench [-- --quick] [--orders N] [--concurrency 32,64] [--ceiling-orders N] [--warmup-orders N]
//   [--idle-seconds S] [--cold-start-runs R] [--cold-start-only] [--memory-only]
//   [--backlog [--standard-orders N] [--express-orders N] [--compare-lane-priority]]`: prints the tables and writes the whole
// result as JSON to bench/results/<timestamp>.json.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  decimalNumber,
  isMain,
  parseCommandLine,
  readCommandLine,
  UsageError,
  wholeNumber,
  wholeNumberList,
} from '../scripts/command-line.js';
import type { BacklogOptions } from './backlog.js';
import type { BenchOptions } from './run.js';

const usage = `usage: npm run bench -- [--quick] [--orders 5000] [--concurrency 32,64] [--ceiling-orders 2000] [--warmup-orders 500]
  [--idle-seconds 25] [--cold-start-runs 7] [--cold-start-only] [--memory-only]
  [--backlog [--standard-orders 2000] [--express-orders 50] [--compare-lane-priority]]
  Throughput, latency, AWS requests and cost per order of the local pipeline, its default settings
  against naive ones and against FIFO queues and topic (queueType=fifo), each after --warmup-orders
  orders left out of its figures (500, 100 with --quick; 0: measured cold); --quick is a run of a
  few minutes. --cold-start-only packages the stack and
  measures its bundles' cold start alone (seconds). --memory-only measures the resident memory of
  a separate npm start after 20 orders alone (about a minute). --backlog runs the express lane
  scenario alone (its own warm-up; --warmup-orders does not apply): express orders alone, standard
  orders alone (queued with their mappings disabled, then drained), then the same backlog queued
  and drained with express orders posted at once; express p95 and standard throughput against the
  goals (2x, 0.5x); --compare-lane-priority runs standard alone and the backlog again with lane
  priority off (LOCAL_LANE_PRIORITY=off) and prints both. Writes bench/results/<timestamp>.json.`;

export interface BenchCommandLine {
  help: boolean;
  /** Package and measure cold start only: no pipeline, no load. */
  coldStartOnly: boolean;
  /** The memory of a separate npm start only (the bench's memory phase). */
  memoryOnly: boolean;
  /** The express lane scenario only. */
  backlog: boolean;
  backlogOptions: Partial<BacklogOptions>;
  options: Partial<BenchOptions>;
}

/** The command line of `npm run bench`; throws a UsageError naming what it refuses. */
export function parseBenchArgs(args: string[]): BenchCommandLine {
  const { values } = parseCommandLine(args, {
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      quick: { type: 'boolean', default: false },
      orders: { type: 'string' },
      concurrency: { type: 'string' },
      'ceiling-orders': { type: 'string' },
      'warmup-orders': { type: 'string' },
      'idle-seconds': { type: 'string' },
      'cold-start-runs': { type: 'string' },
      'cold-start-only': { type: 'boolean', default: false },
      'memory-only': { type: 'boolean', default: false },
      backlog: { type: 'boolean', default: false },
      'standard-orders': { type: 'string' },
      'express-orders': { type: 'string' },
      'compare-lane-priority': { type: 'boolean', default: false },
    },
  });
  const candidates: Partial<BenchOptions> = {
    quick: values.quick,
    orders: wholeNumber('--orders', values.orders, { min: 1 }),
    concurrency: wholeNumberList('--concurrency', values.concurrency, { min: 1 }),
    ceilingOrders: wholeNumber('--ceiling-orders', values['ceiling-orders'], { min: 1 }),
    warmupOrders: wholeNumber('--warmup-orders', values['warmup-orders'], { min: 0 }),
    idleSeconds: decimalNumber('--idle-seconds', values['idle-seconds'], { min: 0, minExclusive: true }),
    coldStartRuns: wholeNumber('--cold-start-runs', values['cold-start-runs'], { min: 1 }),
  };
  // Only what was given: the run's defaults (or the quick ones) fill in the rest.
  const options = Object.fromEntries(Object.entries(candidates).filter(([, value]) => value !== undefined)) as Partial<BenchOptions>;
  const only = [values['cold-start-only'] && '--cold-start-only', values['memory-only'] && '--memory-only', values.backlog && '--backlog'];
  const chosen = only.filter((flag): flag is string => typeof flag === 'string');
  if (chosen.length > 1) throw new UsageError(`${chosen.join(' and ')}: choose one`);
  const backlogCandidates: Partial<BacklogOptions> = {
    standardOrders: wholeNumber('--standard-orders', values['standard-orders'], { min: 1 }),
    expressOrders: wholeNumber('--express-orders', values['express-orders'], { min: 1 }),
    compareLanePriority: values['compare-lane-priority'] || undefined,
  };
  if (!values.backlog && Object.values(backlogCandidates).some((value) => value !== undefined))
    throw new UsageError('--standard-orders, --express-orders and --compare-lane-priority go with --backlog');
  const backlogOptions = Object.fromEntries(
    Object.entries(backlogCandidates).filter(([, value]) => value !== undefined),
  ) as Partial<BacklogOptions>;
  return {
    help: values.help,
    coldStartOnly: values['cold-start-only'],
    memoryOnly: values['memory-only'],
    backlog: values.backlog,
    backlogOptions,
    options,
  };
}

async function main({ help, coldStartOnly, memoryOnly, backlog, backlogOptions, options }: BenchCommandLine): Promise<void> {
  if (help) {
    console.log(usage);
    return;
  }
  const [{ REPOSITORY_ROOT }, { formatColdStart, formatMemory, formatReport }, { runBenchmark, runColdStartOnly, runMemoryOnly }] =
    await Promise.all([import('../local/package-stack.js'), import('./report.js'), import('./run.js')]);

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
  if (backlog) {
    const [{ runBacklogBenchmark }, { formatBacklog }] = await Promise.all([import('./backlog.js'), import('./report.js')]);
    const result = await runBacklogBenchmark({ ...backlogOptions, progress: options.progress });
    if (tty) process.stderr.write('\n');
    process.stdout.write(`${formatBacklog(result)}\n`);
    const file = path.join(REPOSITORY_ROOT, 'bench', 'results', `${result.startedAt.replace(/[:.]/g, '-')}-backlog.json`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`Wrote ${path.relative(process.cwd(), file)} (${Math.round((Date.now() - started) / 1000)} s)\n`);
    return;
  }
  const result = coldStartOnly ? await runColdStartOnly(options) : memoryOnly ? await runMemoryOnly(options) : await runBenchmark(options);
  if (tty) process.stderr.write('\n');
  process.stdout.write(
    'coldStartOnly' in result
      ? `${formatColdStart(result.coldStart)}\n`
      : 'memoryOnly' in result
        ? `${formatMemory(result.memory)}\n`
        : formatReport(result),
  );
  const suffix = coldStartOnly ? '-cold-start' : memoryOnly ? '-memory' : '';
  const file = path.join(REPOSITORY_ROOT, 'bench', 'results', `${result.startedAt.replace(/[:.]/g, '-')}${suffix}.json`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`Wrote ${path.relative(process.cwd(), file)} (${Math.round((Date.now() - started) / 1000)} s)\n`);
}

if (isMain(import.meta.url)) await main(readCommandLine(usage, () => parseBenchArgs(process.argv.slice(2))));
