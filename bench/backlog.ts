// `npm run bench -- --backlog`: the express lane under a standard backlog, three phases side by
// side, each on a fresh local pipeline (the default stack), warmed up first:
//   (a) express orders alone: their p95 from POST to decision, with nothing else queued;
//   (b) standard orders alone: the standard orders queued (their queues' event source mappings
//       disabled, as UpdateEventSourceMapping Enabled: false would), then drained: the throughput;
//   (c) the same backlog queued, then the mappings started and the express orders posted at once:
//       the express p95 and the standard throughput while both run.
// Goals (issue 15): express p95 in (c) within 2x of (a); standard throughput in (c) at least half
// of (b). The backlog is queued rather than raced: on a laptop the API and the consumers share the
// cores, and posting as fast as the API takes orders barely outruns the consumers (a first version
// did, and found 14 orders waiting). Orders are posted `postConcurrency` at a time without waiting
// for decisions; decisions are read as the other bench phases read them (bench/load.ts).

import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { packageStack, REPOSITORY_ROOT } from '../local/package-stack.js';
import { queueConsumers } from '../local/queue-consumers.js';
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
  /** Standard POSTs in flight at once. */
  postConcurrency: number;
  /**
   * Express POSTs in flight at once, alone and after the backlog alike: express customers arrive a
   * few at a time, not as a burst that would itself be a load on the API.
   */
  expressPostConcurrency: number;
  decisionTimeoutMs: number;
  /**
   * Runs (b) and (c) a second time with lane priority off (every execution environment alike, the
   * runtime's default: lambda-environment.ts, EnvironmentClass), after the first ones, and
   * prints both sets of ratios: the A/B of one run, on the same machine at the same time.
   */
  compareLanePriority: boolean;
  progress?: (phase: string, done: number, total: number) => void;
}

export const DEFAULT_BACKLOG_OPTIONS: BacklogOptions = {
  standardOrders: 2000,
  expressOrders: 50,
  postConcurrency: 32,
  expressPostConcurrency: 4,
  decisionTimeoutMs: 300_000,
  compareLanePriority: false,
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
  name: 'express alone' | 'standard alone' | 'backlog' | 'standard alone, lane priority off' | 'backlog, lane priority off';
  standard?: LaneFigures;
  express?: LaneFigures;
  /** (c) only: standard orders posted but not decided when the first express order was posted... */
  standardUndecidedAtFirstExpressPost?: number;
  /** ...and when the last express order was decided: the backlog the express orders overtook. */
  standardUndecidedAtLastExpressDecision?: number;
  /** The consumers' invocations that timed out or failed, and records that failed (retried later), in the phase. */
  faults?: { timedOutInvocations: number; failedInvocations: number; failedRecords: number };
}

export interface BacklogResult {
  backlog: true;
  startedAt: string;
  finishedAt: string;
  setup: Record<string, unknown>;
  phases: BacklogPhase[];
  /** (c) over (a), and (c) over (b), with the goals. */
  ratios: BacklogRatios;
  /** With compareLanePriority: the same ratios from the phases run with lane priority off. */
  ratiosWithoutLanePriority?: BacklogRatios;
  notes: string[];
}

export interface BacklogRatios {
  expressP95: { ratio: number; goal: number; met: boolean };
  standardThroughput: { ratio: number; goal: number; met: boolean };
}

const BENCH_CONSUMER_TIMEOUT_SECONDS = 30;
const EXPRESS_P95_GOAL = 2;
const STANDARD_THROUGHPUT_GOAL = 0.5;

/** Posts `count` orders, `concurrency` POSTs at a time, without waiting for decisions; their ids and POST times. */
async function postOrders(
  pipeline: LocalPipeline,
  authorization: string,
  input: { count: number; concurrency: number; sku: () => string; express: boolean; onPosted?: (done: number) => void },
): Promise<Array<{ orderId: string; postedAt: number }>> {
  const baseUrl = pipeline.apiUrl.replace(/\/$/, '');
  const posted: Array<{ orderId: string; postedAt: number }> = [];
  let next = 0;
  const client = async () => {
    while (next < input.count) {
      const index = next++;
      const body = JSON.stringify({
        items: [{ sku: input.sku(), quantity: 1 }],
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

/** `from`: when the lane's work could start (its mappings enabled), if later than its first POST. */
function figures(orders: Timed[], count: number, from?: number): LaneFigures {
  const decided = orders.filter((order) => order.decidedAt !== undefined);
  const first = from ?? Math.min(...orders.map((order) => order.postedAt));
  const last = Math.max(...decided.map((order) => order.decidedAt!));
  const seconds = Math.max(0.001, (last - first) / 1000);
  return {
    orders: count,
    decided: decided.length,
    ordersPerSecond: decided.length === 0 ? 0 : round(decided.length / seconds, 2),
    latencyMs: summarize(decided.map((order) => Math.max(0, order.decidedAt! - order.postedAt))),
  };
}

/** The consumers' faults so far: timed-out and failed invocations, failed records. */
function faultsOf(pipeline: LocalPipeline): NonNullable<BacklogPhase['faults']> {
  const { functions, eventSources } = pipeline.invocationStats();
  const consumers = new Set(pipeline.consumers.map((consumer) => consumer.name));
  const invocations = Object.entries(functions).filter(([name]) => consumers.has(name));
  return {
    timedOutInvocations: invocations.reduce((sum, [, stats]) => sum + stats.timeouts, 0),
    failedInvocations: invocations.reduce((sum, [, stats]) => sum + stats.errors, 0),
    failedRecords: Object.values(eventSources).reduce((sum, source) => sum + source.failedRecords, 0),
  };
}

const undecidedAt = (orders: Timed[], at: number) => orders.filter((order) => order.decidedAt === undefined || order.decidedAt > at).length;

export async function runBacklogBenchmark(input: Partial<BacklogOptions> = {}): Promise<BacklogResult> {
  const options: BacklogOptions = { ...DEFAULT_BACKLOG_OPTIONS, ...input };
  const progress = options.progress ?? (() => {});
  const startedAt = new Date().toISOString();
  progress('package the stack', 0, 1);
  // The local stage with a longer consumer timeout: its 5 s (quick feedback when a record fails)
  // is what a backlog drained at full concurrency on two shared cores outlasts, and every batch
  // that times out comes back a visibility timeout later, in either lane: the figures would be
  // that cliff, not the lanes. Visibility at least 6 x timeout + window, as AWS recommends.
  const stack = await packageStack({
    stage: 'local',
    outputDir: path.join(REPOSITORY_ROOT, '.cache', 'package', 'bench-backlog'),
    params: {
      consumerTimeoutSeconds: String(BENCH_CONSUMER_TIMEOUT_SECONDS),
      queueVisibilityTimeoutSeconds: String(6 * BENCH_CONSUMER_TIMEOUT_SECONDS + 1),
    },
  });
  progress('package the stack', 1, 1);
  const template = await readTemplate(stack.templatePath);
  const mappings = Object.entries(template.Resources)
    .filter(([, resource]) => resource.Type === 'AWS::Lambda::EventSourceMapping')
    .map(([id, resource]) => ({
      id,
      maximumConcurrency: (resource.Properties?.ScalingConfig as { MaximumConcurrency?: number } | undefined)?.MaximumConcurrency,
    }));
  const concurrencyOf = (express: boolean) => mappings.find((m) => m.id.includes('ExpressQueue') === express)?.maximumConcurrency;
  const standardQueues = queueConsumers(template, `${stack.serviceName}-${stack.stage}`)
    .filter((consumer) => consumer.lane === 'standard')
    .map((consumer) => consumer.queueName);
  const { standardOrders, expressOrders, postConcurrency, decisionTimeoutMs } = options;
  // Express orders are posted the same way alone and after the backlog: the same POST slots.
  const expressConcurrency = Math.min(options.expressPostConcurrency, expressOrders);

  /**
   * A fresh pipeline for one phase, warmed up (orders of both lanes at once, decided, not measured,
   * so that no phase pays the cold starts alone: every consumer's environments, the standard and
   * the express mappings' worth), with stock for every order. `queueStandard`: the standard
   * mappings are then disabled, so that the phase's standard orders queue until it enables them.
   */
  const withPipeline = async <T extends BacklogPhase>(
    queueStandard: boolean,
    lanePriority: boolean,
    phase: (run: {
      pipeline: LocalPipeline;
      watcher: DecisionWatcher;
      post: (
        count: number,
        express: boolean,
        label: string,
        offset?: number,
        total?: number,
      ) => Promise<Array<{ orderId: string; postedAt: number }>>;
    }) => Promise<T>,
  ): Promise<T> => {
    const pipeline = await startLocalPipeline({
      apiPort: 0,
      sqsPort: 0,
      dynamodbPort: 0,
      quiet: true,
      seed: false,
      templatePath: stack.templatePath,
      lanePriority,
    });
    try {
      const watcher = await watchDecisions(pipeline);
      try {
        const authorization = `Bearer ${await pipeline.tokenFor('cus_bench_backlog', { expiresInSeconds: 6 * 3600 })}`;
        // A SKU per order: no order waits on another's stock write (a few hot SKUs would make the
        // stock markers' conflicts and their backoff the figure, not the lanes), and none runs out.
        const skus = await seedStock(pipeline, standardOrders + expressOrders + 120, 2, 'SKU-BACKLOG');
        let nextSku = 0;
        const skuFor = () => skus[nextSku++ % skus.length]!;
        const post = (count: number, express: boolean, label: string, offset = 0, total = count) =>
          postOrders(pipeline, authorization, {
            count,
            concurrency: express ? expressConcurrency : postConcurrency,
            sku: skuFor,
            express,
            onPosted: (done) => progress(label, offset + done, total),
          });
        const [warmStandard, warmExpress] = await Promise.all([
          post(Math.min(standardOrders, 100), false, 'warm-up (standard)'),
          post(Math.min(expressOrders, 20), true, 'warm-up (express)'),
        ]);
        await decisions(watcher, [...warmStandard, ...warmExpress], decisionTimeoutMs);
        await waitUntilDrained(pipeline);
        if (queueStandard) pipeline.disableEventSources(standardQueues);
        const before = faultsOf(pipeline);
        const result = await phase({ pipeline, watcher, post });
        const after = faultsOf(pipeline);
        // The decided orders' follow-ups (dispatch, stock commit) still run: stopping the emulators
        // under them fails their writes ("Database is closed").
        await waitUntilDrained(pipeline, 300_000);
        return {
          ...result,
          faults: {
            timedOutInvocations: after.timedOutInvocations - before.timedOutInvocations,
            failedInvocations: after.failedInvocations - before.failedInvocations,
            failedRecords: after.failedRecords - before.failedRecords,
          },
        };
      } finally {
        await watcher.stop();
      }
    } finally {
      await pipeline.stop();
    }
  };

  const lanePriority = process.env.LOCAL_LANE_PRIORITY !== 'off';
  const phases: BacklogPhase[] = [];
  // (a) express alone.
  phases.push(
    await withPipeline(false, lanePriority, async ({ watcher, post }) => ({
      name: 'express alone' as const,
      express: figures(
        await decisions(watcher, await post(expressOrders, true, `(a) ${expressOrders} express orders alone`), decisionTimeoutMs),
        expressOrders,
      ),
    })),
  );
  // (b) standard alone: queued, then drained. Throughput from the mappings' start to the last decision.
  // The scenario runs with lane priority (the model of each lane's own compute) unless
  // LOCAL_LANE_PRIORITY=off; the comparison phases without it.
  const standardAlone = (lanePriority: boolean) =>
    withPipeline(true, lanePriority, async ({ pipeline, watcher, post }) => {
      const suffix = lanePriority === false ? ', lane priority off' : '';
      const posted = await post(standardOrders, false, `(b) ${standardOrders} standard orders queued, then drained${suffix}`);
      const enabledAt = Date.now();
      pipeline.enableEventSources(standardQueues);
      const standard = await decisions(watcher, posted, decisionTimeoutMs);
      return {
        name: lanePriority === false ? ('standard alone, lane priority off' as const) : ('standard alone' as const),
        standard: figures(standard, standardOrders, enabledAt),
      };
    });
  // (c) the same backlog queued; the mappings started and the express orders posted at once.
  const withBacklog = (lanePriority: boolean) =>
    withPipeline(true, lanePriority, async ({ pipeline, watcher, post }) => {
      const suffix = lanePriority === false ? ', lane priority off' : '';
      const label = `(c) ${standardOrders} standard orders queued, then ${expressOrders} express${suffix}`;
      const total = standardOrders + expressOrders;
      const standardPosted = await post(standardOrders, false, label, 0, total);
      const enabledAt = Date.now();
      pipeline.enableEventSources(standardQueues);
      // Decisions are read as they come, while the express orders are posted.
      const standardDecided = decisions(watcher, standardPosted, decisionTimeoutMs);
      const firstExpressPost = Date.now();
      const expressPosted = await post(expressOrders, true, label, standardOrders, total);
      const [standard, express] = await Promise.all([standardDecided, decisions(watcher, expressPosted, decisionTimeoutMs)]);
      const lastExpressDecision = Math.max(...express.map((order) => order.decidedAt ?? Number.POSITIVE_INFINITY));
      return {
        name: lanePriority === false ? ('backlog, lane priority off' as const) : ('backlog' as const),
        standard: figures(standard, standardOrders, enabledAt),
        express: figures(express, expressOrders),
        standardUndecidedAtFirstExpressPost: undecidedAt(standard, firstExpressPost),
        standardUndecidedAtLastExpressDecision: undecidedAt(standard, lastExpressDecision),
      };
    });
  phases.push(await standardAlone(lanePriority), await withBacklog(lanePriority));
  if (options.compareLanePriority) phases.push(await standardAlone(false), await withBacklog(false));

  const [alone, aloneStandard, backlog, aloneStandardOff, backlogOff] = phases as [
    BacklogPhase,
    BacklogPhase,
    BacklogPhase,
    BacklogPhase | undefined,
    BacklogPhase | undefined,
  ];
  const ratiosOf = (standardPhase: BacklogPhase, backlogPhase: BacklogPhase): BacklogRatios => {
    const expressP95 = round(backlogPhase.express!.latencyMs.p95 / Math.max(1, alone.express!.latencyMs.p95), 2);
    const standardThroughput = round(backlogPhase.standard!.ordersPerSecond / Math.max(1e-9, standardPhase.standard!.ordersPerSecond), 2);
    return {
      expressP95: { ratio: expressP95, goal: EXPRESS_P95_GOAL, met: expressP95 <= EXPRESS_P95_GOAL },
      standardThroughput: {
        ratio: standardThroughput,
        goal: STANDARD_THROUGHPUT_GOAL,
        met: standardThroughput >= STANDARD_THROUGHPUT_GOAL,
      },
    };
  };
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
      consumerTimeoutSeconds: BENCH_CONSUMER_TIMEOUT_SECONDS,
      standardMaximumConcurrency: concurrencyOf(false),
      expressMaximumConcurrency: concurrencyOf(true),
      lanePriority,
    },
    phases,
    ratios: ratiosOf(aloneStandard, backlog),
    ...(aloneStandardOff && backlogOff ? { ratiosWithoutLanePriority: ratiosOf(aloneStandardOff, backlogOff) } : {}),
    notes: [
      'Each phase on a fresh pipeline, warmed up first. In (b) and (c) the standard orders are queued with the standard mappings disabled, then the mappings are started (in (c) with the express orders posted at once).',
      'Latency is the order decidedAt (the decision event occurredAt) minus the time its POST was sent; throughput is decided orders over the lane start (first POST, or the standard mappings started) to its last decision.',
      "Each consumer reads its express queue through its own event source mapping (expressMaximumConcurrency), beside the standard queue's: the express orders do not wait behind the standard backlog, and take at most that many invocations from it.",
      "Lane priority (setup.lanePriority; on here unless LOCAL_LANE_PRIORITY=off): the standard lanes run in execution environments whose threads are niced, standing for the CPU of their own each invocation has on Lambda, so that the express lane and the emulators are not slowed by the backlog's count of threads; and while an express batch is in hand the standard lanes receive nothing (at most 2 s at a time, then as long open), so that the emulators' one event loop is not the backlog's. The phases \"lane priority off\" (--compare-lane-priority) run without it.",
    ],
  };
}
