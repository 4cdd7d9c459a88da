import type { ChaosOptions } from '../local/chaos.js';
import { isMain, parseCommandLine, rate, readCommandLine, wholeNumber } from './command-line.js';

// npm run chaos -- [--orders N] [--seed S] [--concurrency C] [--transient R] [--crash R] [--timeout R]
//   [--duplicate R] [--publish-failure R] [--poison N] [--max-wait SECONDS]
//   [--provider-outage SECONDS] [--topic-outage SECONDS] [--sweeps-per-minute N]

const usage = `usage: npm run chaos -- [--orders 2000] [--seed S] [--concurrency 16] [--transient 0.1] [--crash 0.01]
  [--timeout 0.01] [--duplicate 0.05] [--publish-failure 0.01] [--poison 3] [--max-wait 300]
  [--provider-outage SECONDS] [--topic-outage SECONDS] [--sweeps-per-minute 6]
  Runs the local pipeline on random ports with faults in every consumer, places the orders, writes
  poison to every consumer's queue, waits until the pipeline has healed by itself, accounts for every
  order, charge, unit of stock, shipment and dead letter BEFORE any redrive, then redrives the real
  events from the DLQs, checks again that nothing changed, and exits non-zero if a check fails.
  Rates are probabilities from 0 to 1. --provider-outage and --topic-outage: seconds during which
  the payment provider, or the order events topic, is out, from when half the orders are placed.
  --sweeps-per-minute: how often the sweep of unfinished orders runs (every minute on AWS).`;

export type ChaosCommandLineOptions = Omit<ChaosOptions, 'onProgress' | 'pipeline'>;

export interface ChaosCommandLine {
  help: boolean;
  options: ChaosCommandLineOptions;
}

/** The command line of `npm run chaos`; throws a UsageError naming what it refuses. */
export function parseChaosArgs(args: string[]): ChaosCommandLine {
  const { values } = parseCommandLine(args, {
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      orders: { type: 'string' },
      seed: { type: 'string' },
      concurrency: { type: 'string' },
      transient: { type: 'string' },
      crash: { type: 'string' },
      timeout: { type: 'string' },
      duplicate: { type: 'string' },
      'publish-failure': { type: 'string' },
      poison: { type: 'string' },
      'max-wait': { type: 'string' },
      'provider-outage': { type: 'string' },
      'topic-outage': { type: 'string' },
      'sweeps-per-minute': { type: 'string' },
    },
  });
  const candidates: ChaosCommandLineOptions = {
    orders: wholeNumber('--orders', values.orders, { min: 1 }),
    // The run keeps the seed as an unsigned 32-bit number.
    seed: wholeNumber('--seed', values.seed, { min: 0, max: 2 ** 32 - 1 }),
    concurrency: wholeNumber('--concurrency', values.concurrency, { min: 1 }),
    transientErrorRate: rate('--transient', values.transient),
    crashRate: rate('--crash', values.crash),
    timeoutRate: rate('--timeout', values.timeout),
    duplicateRate: rate('--duplicate', values.duplicate),
    publishFailureRate: rate('--publish-failure', values['publish-failure']),
    poisonPerQueue: wholeNumber('--poison', values.poison, { min: 0 }),
    maxWaitSeconds: wholeNumber('--max-wait', values['max-wait'], { min: 1 }),
    providerOutageSeconds: wholeNumber('--provider-outage', values['provider-outage'], { min: 0 }),
    topicOutageSeconds: wholeNumber('--topic-outage', values['topic-outage'], { min: 0 }),
    sweepsPerMinute: wholeNumber('--sweeps-per-minute', values['sweeps-per-minute'], { min: 1, max: 600 }),
  };
  // Only what was given: runChaos applies its own defaults to the rest.
  const options = Object.fromEntries(Object.entries(candidates).filter(([, value]) => value !== undefined)) as ChaosCommandLineOptions;
  return { help: values.help, options };
}

async function main({ help, options }: ChaosCommandLine): Promise<void> {
  if (help) {
    console.log(usage);
    return;
  }
  const { formatChaosReport, runChaos } = await import('../local/chaos.js');
  const started = Date.now();
  const result = await runChaos({ ...options, onProgress: (line) => process.stderr.write(`${line}\n`) });
  process.stdout.write(formatChaosReport(result));
  process.stdout.write(`(${Math.round((Date.now() - started) / 1000)} s in all)\n`);
  process.exitCode = result.passed ? 0 : 1;
}

if (isMain(import.meta.url)) await main(readCommandLine(usage, () => parseChaosArgs(process.argv.slice(2))));
