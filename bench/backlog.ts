// `npm run bench -- --backlog`: the express lane under a standard backlog, three phases on one
// local pipeline (the default stack), side by side:
//   (a) express orders alone: their p95 from POST to decision, with nothing else queued;
//   (b) standard orders alone: the pipeline's throughput for them;
//   (c) a backlog: the standard orders posted as fast as the API takes them, then the express ones:
//       the express p95 and the standard throughput during it.
// Goals (issue 15): express p95 in (c) within 2x of (a); standard throughput in (c) at least half
// of (b). Orders are posted open loop (POSTs `postConcurrency` at a time, without waiting for
// decisions), so the queues fill; decisions are read as the other bench phases read them (a
// measurement queue on the topic: bench/load.ts).

import { cpus, totalmem } from 'node:os';
import { packageStack } from '../local/package-stack.js';
import type { LocalPipeline } from '../local/runtime.js';
import { startLocalPipeline } from '../local/runtime.js';
import { SAMPLE_ADDRESS } from '../local/sample-order.js';
import { readTemplate } from '../local/template.js';
import { type DecisionWatcher, round, seedStock, summarize, waitUntilDrained, watchDecisions, type LoadResult } from './load.js';

export interface BacklogOptions {
  /** Standard orders posted in (b) and, as the backlog, in (c). */
  standardOrders: number;
  /** Express orders posted in (a) and after the backlog in (c). */
  expressOrders: number;
  /** POSTs in flight at once. */
  postConcurrency: number;
  decisionTimeoutMs: number;
  progress?: (phase: string, done: number, total: number) => void;
}

export const DEFAULT_BACKLOG_OPTIONS: BacklogOptions = {
  standardOrders: 2000,
  expressOrders: 50,
  postConcurrency: 32,
  decisionTimeoutMs: 300_000,
};

/** One order as posted and decided: ms since the phase's first POST. */
interface Timed {
  orderId: string;
  postedAt: number;
  decidedAt: number | undefined;
}

export interface LaneFigures {
  orders: number;
  decided: number;
  /** Orders decided per second, from the lane's first POST to its last decision. */
  ordersPerSecond: number;
  latencyMs: LoadResult['latencyMs'];
}

export interface BacklogPhase {
  name: 'express alone' | 'standard alone' | 'backlog';
  standard?: LaneFigures;
  express?: LaneFigures;
  /** (c) only: standard orders posted but not decided when the first express order was posted... */
  standardUndecidedAtFirstExpressPost?: number;
  /** ...and when the last express order was decided: the backlog the express orders overtook. */
  standardUndecidedAtLastExpressDecision?: number;
}

export interface BacklogResult {
  backlog: true;
  startedAt: string;
  finishedAt: string;
  setup: Record<string, unknown>;
  phases: BacklogPhase[];
  /** (c) over (a), and (c) over (b), with the goals. */
  ratios: {
    expressP95: { ratio: number; goal: number; met: boolean };
    standardThroughput: { ratio: number; goal: number; met: boolean };
  };
  notes: string[];
}

const EXPRESS_P95_GOAL = 2;
const STANDARD_THROUGHPUT_GOAL = 0.5;

/** Posts `count` orders, `concurrency` POSTs at a time, without waiting for decisions; their ids and POST times. */
async function postOrders(
  pipeline: LocalPipeline,
  authorization: string,
  input: { count: number; concurrency: number; skus: string[]; express: boolean; onPosted?: (done: number) => void },
): Promise<Array<{ orderId: string; postedAt: number }>> {
  const baseUrl = pipeline.apiUrl.replace(/\/$/, '');
  const posted: Array<{ orderId: string; postedAt: number }> = [];
  let next = 0;
  const client = async () => {
    while (next < input.count) {
      const index = next++;
      const body = JSON.stringify({
        items: [{ sku: input.skus[index % input.skus.length]!, quantity: 1 }],
        payment: { token: 'tok_visa' },
        shippingAddress: { ...SAMPLE_ADDRESS },
        ...(input.express ? { shippingSpeed: 'express' } : {}),
      });
      // A 429 or a 5xx under load: the same order again, as a client retries with its key.
      const key = `bench-backlog-${input.express ? 'x' : 's'}-${Date.now()}-${index}`;
      for (let attempt = 1; attempt <= 5; attempt++) {
        const postedAt = Date.now();
        const response = await fetch(`${baseUrl}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization, 'idempotency-key': key },
          body,
        }).catch(() => undefined);
        const answer = response ? ((await response.json().catch(() => ({}))) as { orderId?: string }) : {};
        if (response && (response.status === 201 || response.status === 202) && answer.orderId) {
          posted.push({ orderId: answer.orderId, postedAt });
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
      input.onPosted?.(posted.length);
    }
  };
  await Promise.all(Array.from({ length: input.concurrency }, () => client()));
  return posted;
}

/** Waits for each order's decision; the decision time is the order's decidedAt (event occurredAt). */
async function decisions(
  watcher: DecisionWatcher,
  posted: Array<{ orderId: string; postedAt: number }>,
  timeoutMs: number,
): Promise<Timed[]> {
  return Promise.all(
    posted.map(async ({ orderId, postedAt }) => ({ orderId, postedAt, decidedAt: (await watcher.wait(orderId, timeoutMs))?.decidedAt })),
  );
}

function figures(orders: Timed[], count: number): LaneFigures {
  const decided = orders.filter((order) => order.decidedAt !== undefined);
  const first = Math.min(...orders.map((order) => order.postedAt));
  const last = Math.max(...decided.map((order) => order.decidedAt!));
  const seconds = Math.max(0.001, (last - first) / 1000);
  return {
    orders: count,
    decided: decided.length,
    ordersPerSecond: decided.length === 0 ? 0 : round(decided.length / seconds, 2),
    latencyMs: summarize(decided.map((order) => Math.max(0, order.decidedAt! - order.postedAt))),
  };
}

const undecidedAt = (orders: Timed[], at: number) => orders.filter((order) => order.decidedAt === undefined || order.decidedAt > at).length;

export async function runBacklogBenchmark(input: Partial<BacklogOptions> = {}): Promise<BacklogResult> {
  const options: BacklogOptions = { ...DEFAULT_BACKLOG_OPTIONS, ...input };
  const progress = options.progress ?? (() => {});
  const startedAt = new Date().toISOString();
  progress('package the default stack', 0, 1);
  const stack = await packageStack({ stage: 'local' });
  progress('package the default stack', 1, 1);
  const mappings = Object.entries((await readTemplate(stack.templatePath)).Resources)
    .filter(([, resource]) => resource.Type === 'AWS::Lambda::EventSourceMapping')
    .map(([id, resource]) => ({
      id,
      maximumConcurrency: (resource.Properties?.ScalingConfig as { MaximumConcurrency?: number } | undefined)?.MaximumConcurrency,
    }));
  const concurrencyOf = (express: boolean) => mappings.find((m) => m.id.includes('ExpressQueue') === express)?.maximumConcurrency;

  const pipeline = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    quiet: true,
    seed: false,
    templatePath: stack.templatePath,
  });
  const phases: BacklogPhase[] = [];
  try {
    const watcher = await watchDecisions(pipeline);
    try {
      const authorization = `Bearer ${await pipeline.tokenFor('cus_bench_backlog', { expiresInSeconds: 6 * 3600 })}`;
      // One SKU per POST slot, stock for every phase: no order is cancelled for want of units.
      const skus = await seedStock(
        pipeline,
        options.postConcurrency,
        options.standardOrders * 2 + options.expressOrders * 2,
        'SKU-BACKLOG',
      );
      const { standardOrders, expressOrders, postConcurrency, decisionTimeoutMs } = options;
      // Express orders are posted the same way alone and after the backlog: the same POST slots.
      const expressConcurrency = Math.min(postConcurrency, expressOrders);

      // Warm-up, not measured: both lanes' mappings and the functions' environments past their cold
      // starts, so that (a), measured first, does not pay them alone.
      {
        const warmUp = Math.min(expressOrders, 10);
        for (const express of [true, false]) {
          const posted = await postOrders(pipeline, authorization, {
            count: warmUp,
            concurrency: warmUp,
            skus,
            express,
            onPosted: (done) => progress(`warm-up (${express ? 'express' : 'standard'})`, done, warmUp),
          });
          await decisions(watcher, posted, decisionTimeoutMs);
        }
      }

      // (a) express alone.
      await waitUntilDrained(pipeline);
      {
        const phase = `(a) ${expressOrders} express orders alone`;
        const posted = await postOrders(pipeline, authorization, {
          count: expressOrders,
          concurrency: expressConcurrency,
          skus,
          express: true,
          onPosted: (done) => progress(phase, done, expressOrders),
        });
        phases.push({ name: 'express alone', express: figures(await decisions(watcher, posted, decisionTimeoutMs), expressOrders) });
      }

      // (b) standard alone.
      await waitUntilDrained(pipeline, 120_000);
      {
        const phase = `(b) ${standardOrders} standard orders alone`;
        const posted = await postOrders(pipeline, authorization, {
          count: standardOrders,
          concurrency: postConcurrency,
          skus,
          express: false,
          onPosted: (done) => progress(phase, done, standardOrders),
        });
        phases.push({ name: 'standard alone', standard: figures(await decisions(watcher, posted, decisionTimeoutMs), standardOrders) });
      }

      // (c) the backlog, then the express orders.
      await waitUntilDrained(pipeline, 120_000);
      {
        const phase = `(c) ${standardOrders} standard orders, then ${expressOrders} express`;
        const standardPosted = await postOrders(pipeline, authorization, {
          count: standardOrders,
          concurrency: postConcurrency,
          skus,
          express: false,
          onPosted: (done) => progress(phase, done, standardOrders + expressOrders),
        });
        // Decisions are read as they come, while the express orders are posted.
        const standardDecided = decisions(watcher, standardPosted, decisionTimeoutMs);
        const firstExpressPost = Date.now();
        const expressPosted = await postOrders(pipeline, authorization, {
          count: expressOrders,
          concurrency: expressConcurrency,
          skus,
          express: true,
          onPosted: (done) => progress(phase, standardOrders + done, standardOrders + expressOrders),
        });
        const [standard, express] = await Promise.all([standardDecided, decisions(watcher, expressPosted, decisionTimeoutMs)]);
        const lastExpressDecision = Math.max(...express.map((order) => order.decidedAt ?? Number.POSITIVE_INFINITY));
        phases.push({
          name: 'backlog',
          standard: figures(standard, standardOrders),
          express: figures(express, expressOrders),
          standardUndecidedAtFirstExpressPost: undecidedAt(standard, firstExpressPost),
          standardUndecidedAtLastExpressDecision: undecidedAt(standard, lastExpressDecision),
        });
      }
      await waitUntilDrained(pipeline, 120_000);
    } finally {
      await watcher.stop();
    }
  } finally {
    await pipeline.stop();
  }

  const [alone, standardAlone, backlog] = phases as [BacklogPhase, BacklogPhase, BacklogPhase];
  const expressP95 = round(backlog.express!.latencyMs.p95 / Math.max(1, alone.express!.latencyMs.p95), 2);
  const standardThroughput = round(backlog.standard!.ordersPerSecond / Math.max(1e-9, standardAlone.standard!.ordersPerSecond), 2);
  const cpu = cpus();
  return {
    backlog: true,
    startedAt,
    finishedAt: new Date().toISOString(),
    setup: {
      cpuModel: cpu[0]?.model ?? 'unknown',
      cores: cpu.length,
      memoryGb: round(totalmem() / 1024 ** 3, 1),
      node: process.version,
      options: { ...options, progress: undefined },
      standardMaximumConcurrency: concurrencyOf(false),
      expressMaximumConcurrency: concurrencyOf(true),
    },
    phases,
    ratios: {
      expressP95: { ratio: expressP95, goal: EXPRESS_P95_GOAL, met: expressP95 <= EXPRESS_P95_GOAL },
      standardThroughput: {
        ratio: standardThroughput,
        goal: STANDARD_THROUGHPUT_GOAL,
        met: standardThroughput >= STANDARD_THROUGHPUT_GOAL,
      },
    },
    notes: [
      'Open loop: POSTs are sent postConcurrency at a time without waiting for decisions, so the queues hold what the consumers have not taken yet.',
      'Latency is the order decidedAt (the decision event occurredAt) minus the time its POST was sent; throughput is decided orders over first POST to last decision.',
      "Each consumer reads its express queue through its own event source mapping (expressMaximumConcurrency), beside the standard queue's: the express orders do not wait behind the standard backlog, and take at most that many invocations from it.",
    ],
  };
}
