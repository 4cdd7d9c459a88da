// `npm run bench`: the local pipeline under closed-loop load, with its default settings, with
// naive ones (batch size 1, no batching window, short polling) and on FIFO queues and topic
// (queueType=fifo, the mappings as AWS allows them there) side by side in one run, the same
// request mix straight at the emulators (the ceiling), AWS requests per order counted at the
// emulators, their price on AWS, and cold start. See README "Benchmark".

import { cpus, totalmem } from 'node:os';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { packageStack, REPOSITORY_ROOT, variantPackaging } from '../local/package-stack.js';
import { startLocalPipeline } from '../local/runtime.js';
import type { RequestCounts } from '../local/request-counter.js';
import { readTemplate } from '../local/template.js';
import { AWS_PRICES, PRICES_AS_OF, PRICES_REGION } from './aws-prices.js';
import { runCeiling, type CeilingResult } from './ceiling.js';
import { cpuPerOrder, type CpuPerOrder } from './cpu-per-order.js';
import { measureColdStarts, type ColdStartResult } from './cold-start.js';
import { costPerMillion, perOrder, statsDelta, type CostPerMillion, type PerOrder } from './cost.js';
import { closedLoop, round, seedStock, waitUntilDrained, watchDecisions, type LoadResult } from './load.js';
import { measureNpmStartMemory, RUNTIME_MEMORY_GOAL_MB, type NpmStartMemoryResult } from './memory.js';
import type { RuntimeMemory } from '../local/memory.js';

export interface BenchOptions {
  orders: number;
  concurrency: number[];
  /**
   * Orders the ceiling replays per concurrency, at most the measured run's. A rate needs fewer
   * than the run, but not many fewer: over 1,000 orders (about 10 s here) three ceilings on a quiet
   * 2-core machine spread 93-103 orders/s, over 2,000 101-102, and the share of the ceiling moved
   * with them.
   */
  ceilingOrders: number;
  /**
   * Orders placed, and replayed in the ceiling, before each measured run and left out of its
   * figures: steady state, as a fleet under sustained load runs. Each execution environment is its
   * own V8 isolate and compiles its code afresh: cold, the consumers spent 26 ms of CPU per order
   * against 17 ms warm (2,000 orders at 64 after 2,000 more), most of it the AWS SDK's per-request
   * path still interpreted. Cold starts themselves are measured apart (coldStart).
   */
  warmupOrders: number;
  idleSeconds: number;
  coldStartRuns: number;
  decisionTimeoutMs: number;
  /** Orders posted to a separate `npm start` before its resident memory is read. */
  memoryOrders: number;
  quick: boolean;
  /** One line per phase and a counter; nothing by default. */
  progress?: (phase: string, done: number, total: number) => void;
}

// Two concurrencies by default: at 8, each order waits out two 1 s batching windows in a row, so
// 5,000 orders take about 25 minutes per variant on 2 cores; pass --concurrency 8,32,64 for it.
export const DEFAULT_OPTIONS: BenchOptions = {
  orders: 5000,
  concurrency: [32, 64],
  ceilingOrders: 2000,
  warmupOrders: 500,
  idleSeconds: 25,
  coldStartRuns: 7,
  decisionTimeoutMs: 120_000,
  memoryOrders: 20,
  quick: false,
};

export const QUICK_OPTIONS: BenchOptions = {
  orders: 200,
  concurrency: [64],
  ceilingOrders: 200,
  warmupOrders: 100,
  idleSeconds: 2,
  coldStartRuns: 3,
  // Generous: under `npm test` this runs beside other end-to-end files on two cores, and a batch
  // whose consumer timed out comes back only after the 31 s local visibility timeout.
  decisionTimeoutMs: 120_000,
  memoryOrders: 20,
  quick: true,
};

export interface VariantSettings {
  name: 'default' | 'naive' | 'fifo';
  queueType: 'standard' | 'fifo';
  batchSize: number;
  batchWindowSeconds: number;
  maximumConcurrency: number;
  receiveWaitTimeSeconds: number;
  templatePath: string;
}

export interface RunResult {
  variant: string;
  concurrency: number;
  load: LoadResult;
  perOrder: PerOrder;
  costPerMillionOrders: CostPerMillion;
  /** Linux only (bench/cpu-per-order.ts). */
  cpuMsPerOrder?: CpuPerOrder;
  ceiling?: CeilingResult;
  /** Pipeline orders/s over the ceiling's orders/s at the same concurrency. */
  fractionOfCeiling?: number;
  /**
   * Cold starts per function during the measured orders and their follow-ups: each a new isolate
   * warming up again, which costs CPU the table above shows (the warm-up orders should leave none).
   */
  coldStarts: Record<string, number>;
  counts: RequestCounts;
}

export interface IdleResult {
  variant: string;
  seconds: number;
  pollers: number;
  receives: number;
  emptyReceives: number;
  emptyReceivesPerPollerPerHour: number;
}

export interface MemoryResult {
  goalMb: number;
  /** `npm start` as a developer runs it, after memoryOrders orders: every process it runs, at drain and at rest. */
  npmStart: NpmStartMemoryResult;
  /** This process, which ran the pipeline in-process, right after the default variant's last load. */
  benchProcess?: { variant: string; concurrency: number; memory: RuntimeMemory };
}

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  setup: Record<string, unknown>;
  variants: VariantSettings[];
  runs: RunResult[];
  naiveVsDefault: VariantRatio[];
  /** The FIFO variant over the defaults, at the same concurrency. */
  fifoVsDefault: VariantRatio[];
  idle: IdleResult[];
  memory: MemoryResult;
  coldStart: ColdStartResult;
  prices: { asOf: string; region: string; note: string; values: typeof AWS_PRICES };
  notes: string[];
}

/** One variant's figures over the default variant's at one concurrency. */
export interface VariantRatio {
  concurrency: number;
  awsRequestsPerOrder: number;
  lambdaInvocationsPerOrder: number;
  costPerMillion: number;
  ordersPerSecond: number;
  p50LatencyMs: number;
}

async function versionOf(pkg: string): Promise<string> {
  const text = await readFile(path.join(REPOSITORY_ROOT, 'node_modules', pkg, 'package.json'), 'utf8').catch(() => '{}');
  return (JSON.parse(text) as { version?: string }).version ?? 'unknown';
}

async function templateSettings(templatePath: string): Promise<{
  batchSize: number;
  batchWindowSeconds: number;
  maximumConcurrency: number;
  memoryMbByFunction: Record<string, number>;
  architecture: string;
}> {
  const template = await readTemplate(templatePath);
  const resources = Object.values(template.Resources);
  const mapping = resources.find((r) => r.Type === 'AWS::Lambda::EventSourceMapping')?.Properties ?? {};
  const memoryMbByFunction: Record<string, number> = {};
  let architecture = 'x86_64';
  for (const resource of resources) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const name = String(resource.Properties?.FunctionName ?? '').replace(/^order-pipeline-[a-z0-9]+-/, '');
    memoryMbByFunction[name] = Number(resource.Properties?.MemorySize ?? 128);
    const architectures = resource.Properties?.Architectures;
    if (Array.isArray(architectures) && architectures[0]) architecture = String(architectures[0]);
  }
  return {
    batchSize: Number(mapping.BatchSize ?? 10),
    batchWindowSeconds: Number(mapping.MaximumBatchingWindowInSeconds ?? 0),
    maximumConcurrency: Number((mapping.ScalingConfig as { MaximumConcurrency?: number } | undefined)?.MaximumConcurrency ?? 5),
    memoryMbByFunction,
    architecture,
  };
}

function measureNpmStart(orders: number, progress: NonNullable<BenchOptions['progress']>): Promise<NpmStartMemoryResult> {
  return measureNpmStartMemory({ orders, onProgress: progress }).catch((error: unknown) => ({
    skipped: `npm start could not be measured: ${(error as Error).message}`,
  }));
}

export interface MemoryOnlyResult {
  memoryOnly: true;
  startedAt: string;
  finishedAt: string;
  setup: Record<string, unknown>;
  memory: MemoryResult;
}

/** `--memory-only`: the memory of a separate `npm start` after its orders (the bench's memory phase), nothing else. */
export async function runMemoryOnly(input: Partial<BenchOptions> = {}): Promise<MemoryOnlyResult> {
  const options: BenchOptions = { ...(input.quick ? QUICK_OPTIONS : DEFAULT_OPTIONS), ...input };
  const startedAt = new Date().toISOString();
  const npmStart = await measureNpmStart(options.memoryOrders, options.progress ?? (() => {}));
  const cpu = cpus();
  return {
    memoryOnly: true,
    startedAt,
    finishedAt: new Date().toISOString(),
    setup: {
      cpuModel: cpu[0]?.model ?? 'unknown',
      cores: cpu.length,
      memoryGb: round(totalmem() / 1024 ** 3, 1),
      node: process.version,
      options: { memoryOrders: options.memoryOrders },
    },
    memory: { goalMb: RUNTIME_MEMORY_GOAL_MB, npmStart },
  };
}

export interface ColdStartOnlyResult {
  coldStartOnly: true;
  startedAt: string;
  finishedAt: string;
  setup: Record<string, unknown>;
  coldStart: ColdStartResult;
}

/** `--cold-start-only`: the default stack packaged and its bundles' cold start, nothing else. */
export async function runColdStartOnly(input: Partial<BenchOptions> = {}): Promise<ColdStartOnlyResult> {
  const options: BenchOptions = { ...(input.quick ? QUICK_OPTIONS : DEFAULT_OPTIONS), ...input };
  const progress = options.progress ?? (() => {});
  const startedAt = new Date().toISOString();
  progress('package the default stack', 0, 1);
  const stack = await packageStack({ stage: 'local' });
  progress('package the default stack', 1, 1);
  const coldStart = await measureColdStarts({
    templatePath: stack.templatePath,
    runs: options.coldStartRuns,
    onProgress: (done, total) => progress('cold start (import of each bundle and its SDK floor in a fresh node)', done, total),
  });
  const cpu = cpus();
  return {
    coldStartOnly: true,
    startedAt,
    finishedAt: new Date().toISOString(),
    setup: {
      cpuModel: cpu[0]?.model ?? 'unknown',
      cores: cpu.length,
      node: process.version,
      options: { coldStartRuns: options.coldStartRuns },
    },
    coldStart,
  };
}

export async function runBenchmark(input: Partial<BenchOptions> = {}): Promise<BenchResult> {
  const options: BenchOptions = { ...(input.quick ? QUICK_OPTIONS : DEFAULT_OPTIONS), ...input };
  const progress = options.progress ?? (() => {});
  const startedAt = new Date().toISOString();

  const packaging = 'package the default, naive and FIFO stacks';
  progress(packaging, 0, 3);
  const defaultStack = await packageStack({ stage: 'local' });
  progress(packaging, 1, 3);
  const naiveStack = await packageStack({
    stage: 'local',
    outputDir: path.join(REPOSITORY_ROOT, '.cache', 'package', 'bench-naive'),
    params: { batchSize: '1', batchWindowSeconds: '0' },
  });
  progress(packaging, 2, 3);
  const fifoStack = await packageStack(variantPackaging('local', 'fifo'));
  progress(packaging, 3, 3);

  const settingsOf = async (
    name: VariantSettings['name'],
    templatePath: string,
    receiveWaitTimeSeconds: number,
  ): Promise<VariantSettings> => {
    const { batchSize, batchWindowSeconds, maximumConcurrency } = await templateSettings(templatePath);
    return {
      name,
      queueType: name === 'fifo' ? 'fifo' : 'standard',
      batchSize,
      batchWindowSeconds,
      maximumConcurrency,
      receiveWaitTimeSeconds,
      templatePath,
    };
  };
  const defaultSettings = await templateSettings(defaultStack.templatePath);
  const variants: VariantSettings[] = [
    await settingsOf('default', defaultStack.templatePath, 20),
    await settingsOf('naive', naiveStack.templatePath, 0),
    await settingsOf('fifo', fifoStack.templatePath, 20),
  ];

  const runs: RunResult[] = [];
  const idle: IdleResult[] = [];
  let benchProcess: MemoryResult['benchProcess'];
  for (const variant of variants) {
    const pipeline = await startLocalPipeline({
      apiPort: 0,
      sqsPort: 0,
      dynamodbPort: 0,
      quiet: true,
      seed: false,
      templatePath: variant.templatePath,
      countRequests: true,
      pollerWaitTimeSeconds: variant.receiveWaitTimeSeconds,
    });
    try {
      const watcher = await watchDecisions(pipeline);
      try {
        for (const concurrency of options.concurrency) {
          const skus = await seedStock(pipeline, concurrency, options.warmupOrders + options.orders, `SKU-BENCH-C${concurrency}`);
          await waitUntilDrained(pipeline);
          const phase = `${variant.name} pipeline, concurrency ${concurrency}`;
          if (options.warmupOrders > 0) {
            await closedLoop(pipeline, watcher, {
              orders: options.warmupOrders,
              concurrency,
              skus,
              decisionTimeoutMs: options.decisionTimeoutMs,
              onProgress: (done) => progress(`${phase} (warm-up, not measured)`, done, options.warmupOrders),
            });
            await waitUntilDrained(pipeline);
          }
          const before = pipeline.invocationStats().functions;
          pipeline.requestCounter!.reset();
          const cpuBefore = pipeline.cpuTime();
          const load = await closedLoop(pipeline, watcher, {
            orders: options.orders,
            concurrency,
            skus,
            decisionTimeoutMs: options.decisionTimeoutMs,
            onProgress: (done) => progress(phase, done, options.orders),
          });
          // The follow-ups of the last orders (commit, dispatch) are part of what an order costs.
          await waitUntilDrained(pipeline);
          const cpu = cpuPerOrder(cpuBefore, pipeline.cpuTime(), options.orders);
          const counts = pipeline.requestCounter!.snapshot();
          const lambda = statsDelta(before, pipeline.invocationStats().functions);
          const order = perOrder(counts, lambda, defaultSettings.memoryMbByFunction, options.orders);
          runs.push({
            variant: variant.name,
            concurrency,
            load,
            perOrder: order,
            costPerMillionOrders: costPerMillion(order, AWS_PRICES, variant.queueType),
            ...(cpu ? { cpuMsPerOrder: cpu } : {}),
            coldStarts: Object.fromEntries(
              Object.entries(lambda).flatMap(([name, delta]) => (delta.coldStarts > 0 ? [[name, delta.coldStarts]] : [])),
            ),
            counts,
          });
          if (variant.name === 'default') benchProcess = { variant: variant.name, concurrency, memory: await pipeline.memory() };
        }
      } finally {
        await watcher.stop();
      }
      // Idle: no orders, pollers running; how many empty receives does an idle queue cost?
      await waitUntilDrained(pipeline);
      pipeline.requestCounter!.reset();
      const idleStart = Date.now();
      while (Date.now() - idleStart < options.idleSeconds * 1000) {
        progress(`${variant.name} idle polling`, Math.floor((Date.now() - idleStart) / 1000), options.idleSeconds);
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, options.idleSeconds * 1000 - (Date.now() - idleStart))));
      }
      progress(`${variant.name} idle polling`, options.idleSeconds, options.idleSeconds);
      const seconds = (Date.now() - idleStart) / 1000;
      const counts = pipeline.requestCounter!.snapshot();
      const pollers = Object.keys(pipeline.invocationStats().eventSources).length;
      idle.push({
        variant: variant.name,
        seconds: round(seconds, 1),
        pollers,
        receives: counts.sqs.actions.ReceiveMessage ?? 0,
        emptyReceives: counts.sqs.emptyReceives,
        emptyReceivesPerPollerPerHour: Math.round((counts.sqs.emptyReceives / Math.max(1, pollers) / seconds) * 3600),
      });
    } finally {
      await pipeline.stop();
    }
    // The default variant's ceilings now, next to the runs they are compared with: this machine's
    // speed drifts over minutes, and a ceiling measured after the other variants drifted with it.
    // The most concurrent first, nearest to its run.
    if (variant.name !== 'default') continue;
    for (const run of runs.filter((r) => r.variant === 'default').reverse()) {
      const phase = `ceiling (same requests straight to the emulators), concurrency ${run.concurrency}`;
      run.ceiling = await runCeiling({
        templatePath: defaultStack.templatePath,
        counts: run.counts,
        countedOrders: run.load.orders,
        orders: Math.min(options.ceilingOrders, options.orders),
        concurrency: run.concurrency,
        warmupOrders: options.warmupOrders,
        onProgress: (done) => progress(phase, done, Math.min(options.ceilingOrders, options.orders)),
      });
      run.fractionOfCeiling = round(run.load.ordersPerSecond / run.ceiling.ordersPerSecond, 3);
    }
  }

  const npmStart = await measureNpmStart(options.memoryOrders, progress);
  const memory: MemoryResult = { goalMb: RUNTIME_MEMORY_GOAL_MB, npmStart, ...(benchProcess ? { benchProcess } : {}) };

  const coldStart = await measureColdStarts({
    templatePath: defaultStack.templatePath,
    runs: options.coldStartRuns,
    onProgress: (done, total) => progress('cold start (import of each bundle and its SDK floor in a fresh node)', done, total),
  });

  const versusDefault = (name: VariantSettings['name']): VariantRatio[] =>
    options.concurrency.flatMap((concurrency) => {
      const base = runs.find((r) => r.variant === 'default' && r.concurrency === concurrency);
      const other = runs.find((r) => r.variant === name && r.concurrency === concurrency);
      if (!base || !other) return [];
      const ratio = (a: number, b: number) => round(a / Math.max(b, 1e-9), 2);
      return [
        {
          concurrency,
          awsRequestsPerOrder: ratio(other.perOrder.awsRequests, base.perOrder.awsRequests),
          lambdaInvocationsPerOrder: ratio(other.perOrder.lambdaInvocations, base.perOrder.lambdaInvocations),
          costPerMillion: ratio(other.costPerMillionOrders.total, base.costPerMillionOrders.total),
          ordersPerSecond: ratio(other.load.ordersPerSecond, base.load.ordersPerSecond),
          p50LatencyMs: ratio(other.load.latencyMs.p50, base.load.latencyMs.p50),
        },
      ];
    });
  const naiveVsDefault = versusDefault('naive');
  const fifoVsDefault = versusDefault('fifo');

  const cpu = cpus();
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    setup: {
      cpuModel: cpu[0]?.model ?? 'unknown',
      cores: cpu.length,
      memoryGb: round(totalmem() / 1024 ** 3, 1),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      versions: {
        fauxqs: await versionOf('fauxqs'),
        dynalite: await versionOf('dynalite'),
        '@aws-sdk/client-sqs': await versionOf('@aws-sdk/client-sqs'),
        '@aws-sdk/client-dynamodb': await versionOf('@aws-sdk/client-dynamodb'),
        '@aws-lambda-powertools/batch': await versionOf('@aws-lambda-powertools/batch'),
        osls: await versionOf('osls'),
      },
      options: { ...options, progress: undefined },
      lambdaMemoryMb: defaultSettings.memoryMbByFunction,
      lambdaArchitecture: defaultSettings.architecture,
    },
    variants,
    runs,
    naiveVsDefault,
    fifoVsDefault,
    idle,
    memory,
    coldStart,
    prices: {
      asOf: PRICES_AS_OF,
      region: PRICES_REGION,
      note: `List prices as read on ${PRICES_AS_OF} (${PRICES_REGION}, on-demand, first tier, no free tier); see bench/aws-prices.ts`,
      values: AWS_PRICES,
    },
    notes: [
      'Decisions are observed on a measurement queue subscribed to the topic (OrderConfirmed/OrderCancelled), read straight from the emulator: not in the counts. Latency is decidedAt (the event occurredAt) minus the POST time.',
      'Requests per order include the follow-ups after the decision (stock commit, shipment dispatch) and the empty receives of the run: the counter is read once the queues are drained.',
      'DynamoDB units are the consumed capacity dynalite reports (size-rounded); failed conditional writes count 1 WRU; GSI (UnfinishedOrders) writes are not reported by dynalite and are missing.',
      'Lambda duration in the cost total is modeled from the counted calls (bench/cost.ts LAMBDA_DURATION_MODEL, printed with the cost table); the GB-s measured here on a shared machine, at the template memory sizes, are printed apart and not in the total.',
      "The ceiling replays the default variant's per-order request mix with WaitTimeSeconds 0, on fresh emulators, no Lambda, through the same counting proxy as the pipeline's requests, right after the default variant's runs.",
      'Idle long polling: each empty receive takes 20 s, so an idle window shorter than 20 s can count none (expected: 180 per poller per hour).',
      'FIFO: SNS FIFO and SQS FIFO prices (bench/aws-prices.ts); the emulator (fauxqs 1.9.2) hands out one message per group per receive, where SQS may hand several of a group; in a FIFO batch the records of each message group run one after another, the groups side by side (Powertools SqsFifoPartialProcessorAsync per group).',
    ],
  };
}
