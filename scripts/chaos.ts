import { formatChaosReport, runChaos } from '../local/chaos.js';
import { flagValue } from './stack-target.js';

// npm run chaos -- [--orders N] [--seed S] [--concurrency C] [--transient R] [--crash R] [--timeout R]
//   [--duplicate R] [--publish-failure R] [--poison N] [--max-wait SECONDS]

const usage = `usage: npm run chaos -- [--orders 2000] [--seed S] [--concurrency 16] [--transient 0.1] [--crash 0.01]
  [--timeout 0.01] [--duplicate 0.05] [--publish-failure 0.01] [--poison 3] [--max-wait 300]
  Runs the local pipeline on random ports with faults in every consumer, places the orders, writes
  poison to every stage queue, waits until it is quiet, accounts for every order, charge, unit of
  stock and dead letter, redrives the real events from the DLQs, and exits non-zero if a check fails.`;

function number(args: string[], flag: string, check: (value: number) => boolean): number | undefined {
  const raw = flagValue(args, flag);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!check(value)) throw new Error(`${flag} ${raw} is not valid\n${usage}`);
  return value;
}

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(usage);
} else {
  const count = (value: number) => Number.isInteger(value) && value >= 0;
  const rate = (value: number) => Number.isFinite(value) && value >= 0 && value <= 1;
  const started = Date.now();
  const result = await runChaos({
    orders: number(args, '--orders', (v) => count(v) && v > 0),
    seed: number(args, '--seed', count),
    concurrency: number(args, '--concurrency', (v) => count(v) && v > 0),
    transientErrorRate: number(args, '--transient', rate),
    crashRate: number(args, '--crash', rate),
    timeoutRate: number(args, '--timeout', rate),
    duplicateRate: number(args, '--duplicate', rate),
    publishFailureRate: number(args, '--publish-failure', rate),
    poisonPerQueue: number(args, '--poison', count),
    maxWaitSeconds: number(args, '--max-wait', (v) => count(v) && v > 0),
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(formatChaosReport(result));
  process.stdout.write(`(${Math.round((Date.now() - started) / 1000)} s in all)\n`);
  process.exitCode = result.passed ? 0 : 1;
}
