// The benchmark's result as plain-text tables.

import { SDK_FLOOR_GOAL, type ColdStartResult } from './cold-start.js';
import { LAMBDA_DURATION_MODEL } from './cost.js';
import type { BacklogResult, LaneFigures } from './backlog.js';
import type { BenchResult, MemoryResult } from './run.js';
import type { MemoryReading } from './memory.js';
import type { RuntimeMemory } from '../local/memory.js';

function table(title: string, header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [`\n${title}`, line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

const money = (value: number) => `$${value.toFixed(2)}`;
const round3 = (value: number) => Math.round(value * 1000) / 1000;

export function formatReport(result: BenchResult): string {
  const out: string[] = [];
  const s = result.setup as { cpuModel: string; cores: number; memoryGb: number; node: string; versions: Record<string, string> };
  const warmupOrders = (result.setup as { options?: { warmupOrders?: number } }).options?.warmupOrders ?? 0;
  out.push(
    `Setup: ${s.cpuModel}, ${s.cores} cores, ${s.memoryGb} GB, Node ${s.node}; ` +
      Object.entries(s.versions)
        .map(([name, version]) => `${name} ${version}`)
        .join(', '),
  );
  out.push(
    `Variants: ${result.variants
      .map(
        (v) =>
          `${v.name} = ${v.queueType} queues, batch ${v.batchSize}, window ${v.batchWindowSeconds} s, max concurrency ${v.maximumConcurrency}, WaitTimeSeconds ${v.receiveWaitTimeSeconds}`,
      )
      .join('; ')}`,
  );

  out.push(
    table(
      `Throughput and latency (POST /orders to decided CONFIRMED; closed loop; ${warmupOrders > 0 ? `each run, and the ceiling, after ${warmupOrders} orders not measured` : 'measured cold'})`,
      [
        'variant',
        'conc',
        'orders',
        'confirmed',
        'unfinished',
        'orders/s',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        'max ms',
        'ceiling/s',
        'of ceiling',
      ],
      result.runs.map((r) => [
        r.variant,
        r.concurrency,
        r.load.orders,
        r.load.confirmed,
        r.load.unfinished,
        r.load.ordersPerSecond,
        r.load.latencyMs.p50,
        r.load.latencyMs.p95,
        r.load.latencyMs.p99,
        r.load.latencyMs.max,
        r.ceiling ? r.ceiling.ordersPerSecond : '-',
        r.fractionOfCeiling !== undefined ? `${(r.fractionOfCeiling * 100).toFixed(1)}%` : '-',
      ]),
    ),
  );

  const withCpu = result.runs.filter((r) => r.cpuMsPerOrder);
  if (withCpu.length > 0) {
    const functionNames = [...new Set(withCpu.flatMap((r) => Object.keys(r.cpuMsPerOrder!.functions)))];
    out.push(
      table(
        "CPU per order by thread, ms (this process, over the measured orders and their follow-ups; 'other': V8's compiler and GC threads, libuv)",
        ['variant', 'conc', 'main thread', ...functionNames, 'other', 'total'],
        withCpu.map((r) => {
          const cpu = r.cpuMsPerOrder!;
          return [
            r.variant,
            r.concurrency,
            cpu.mainThread,
            ...functionNames.map((name) => cpu.functions[name] ?? 0),
            cpu.otherThreads,
            cpu.total,
          ];
        }),
      ),
    );
    out.push(
      "  main thread: the emulators, the request counter, the HTTP API, the pollers and the bench's clients; a function's column: its execution environments (worker threads)",
    );
  }
  out.push(
    `  cold starts during the measured orders (each a new isolate warming up again): ${result.runs
      .map((r) => {
        const starts = Object.entries(r.coldStarts ?? {});
        return `${r.variant} @${r.concurrency} ${starts.length === 0 ? 'none' : starts.map(([name, count]) => `${name} ${count}`).join(', ')}`;
      })
      .join('; ')}`,
  );

  out.push(
    table(
      'AWS requests per order (counted at the emulators)',
      [
        'variant',
        'conc',
        'SNS pub',
        'SQS req',
        'receive',
        'empty',
        'delete',
        'chgVis',
        'DDB read',
        'DDB write',
        'RRU',
        'WRU',
        'λ inv',
        'λ GB-s',
        'all AWS req',
      ],
      result.runs.map((r) => {
        const p = r.perOrder;
        const action = (name: string) => (p.sqsByAction[name] ?? 0) + (p.sqsByAction[`${name}Batch`] ?? 0);
        return [
          r.variant,
          r.concurrency,
          p.snsPublishes,
          p.sqsRequests,
          p.sqsByAction.ReceiveMessage ?? 0,
          p.sqsEmptyReceives,
          action('DeleteMessage'),
          action('ChangeMessageVisibility'),
          p.dynamodbReads,
          p.dynamodbWrites,
          p.dynamodbReadUnits,
          p.dynamodbWriteUnits,
          p.lambdaInvocations,
          p.lambdaGbSeconds,
          p.awsRequests,
        ];
      }),
    ),
  );

  out.push(
    table(
      `Cost per million orders on AWS (list prices as of ${result.prices.asOf}, ${result.prices.region})`,
      [
        'variant',
        'conc',
        'HTTP API',
        'λ requests',
        'λ duration (model)',
        'SNS',
        'SQS',
        'DynamoDB',
        'total',
        'dominant',
        '|',
        'λ duration measured, not in total',
      ],
      result.runs.map((r) => {
        const c = r.costPerMillionOrders;
        return [
          r.variant,
          r.concurrency,
          money(c.httpApi),
          money(c.lambdaRequests),
          money(c.lambdaDuration),
          money(c.sns),
          money(c.sqs),
          money(c.dynamodb),
          money(c.total),
          c.dominant,
          '|',
          `${money(c.lambdaDurationMeasured ?? 0)} (${r.perOrder.lambdaGbSeconds} GB-s)`,
        ];
      }),
    ),
  );
  out.push(formatDurationModel(result));
  for (const r of result.runs)
    out.push(`  ${r.variant} @${r.concurrency}: ${r.costPerMillionOrders.dominant} dominates — ${r.costPerMillionOrders.why}`);

  // Where each DynamoDB unit of an order goes, for the defaults at their highest concurrency.
  const reference = result.runs.filter((r) => r.variant === 'default').sort((a, b) => b.concurrency - a.concurrency)[0];
  if (reference) {
    const steps = reference.perOrder.dynamodbBySteps;
    out.push(
      table(
        `DynamoDB per order by step (${reference.variant} @${reference.concurrency}; units as dynalite reports them, a failed condition counted 1 WRU)`,
        ['table', 'operation', 'requests', 'RRU', 'WRU'],
        [
          ...steps.map((step) => [step.table, step.action, step.requests, step.readUnits, step.writeUnits]),
          [
            'total',
            '',
            round3(steps.reduce((sum, step) => sum + step.requests, 0)),
            round3(steps.reduce((sum, step) => sum + step.readUnits, 0)),
            round3(steps.reduce((sum, step) => sum + step.writeUnits, 0)),
          ],
        ],
      ),
    );
  }

  const ratioTable = (title: string, rows: typeof result.naiveVsDefault) =>
    table(
      title,
      ['conc', 'AWS req/order', 'λ inv/order', 'cost/order', 'orders/s', 'p50 latency'],
      rows.map((r) => [
        r.concurrency,
        `${r.awsRequestsPerOrder}x`,
        `${r.lambdaInvocationsPerOrder}x`,
        `${r.costPerMillion}x`,
        `${r.ordersPerSecond}x`,
        `${r.p50LatencyMs}x`,
      ]),
    );
  if (result.naiveVsDefault.length > 0)
    out.push(ratioTable('Naive settings as a ratio of the defaults (naive / default)', result.naiveVsDefault));
  if (result.fifoVsDefault.length > 0) {
    out.push(ratioTable('FIFO queues and topic as a ratio of the defaults (fifo / default, same concurrency)', result.fifoVsDefault));
  }

  out.push(
    table(
      'Idle queues: empty receives (no orders, pollers running)',
      ['variant', 'idle s', 'pollers', 'receives', 'empty', 'empty/poller/hour'],
      result.idle.map((r) => [r.variant, r.seconds, r.pollers, r.receives, r.emptyReceives, r.emptyReceivesPerPollerPerHour]),
    ),
  );

  if (result.memory) out.push(formatMemory(result.memory));
  out.push(formatColdStart(result.coldStart));
  out.push('');
  return out.join('\n');
}

/** How the Lambda duration in the cost total was modeled, and what it came to per order. */
function formatDurationModel(result: BenchResult): string {
  const m = LAMBDA_DURATION_MODEL;
  const lines = [
    `  λ duration (model), used in the total: ${m.perInvocationMs} ms per invocation (runtime and handler CPU) + ${m.dynamodbRequestMs} ms per DynamoDB request + ${m.snsPublishMs} ms per SNS publish + ` +
      `${m.sqsRequestMs} ms per SQS request a function makes (ChangeMessageVisibility) + ${m.providerCallMs} ms for the payment provider's charge (${m.providerCallsPerOrder} per order), ` +
      `all one after another (an upper bound: a batch's records run concurrently), at the functions' memory sizes weighted by invocations; arm64 price.`,
    `  λ duration measured: the invocations timed here, on shared cores next to the emulators; printed apart, not in the total.`,
  ];
  for (const r of result.runs) {
    const modeled = r.perOrder.lambdaModeled;
    if (!modeled) continue;
    const ms = modeled.msPerOrder;
    lines.push(
      `  ${r.variant} @${r.concurrency}: modeled ${ms.total} ms per order (invocations ${ms.invocations}, DynamoDB ${ms.dynamodb}, SNS ${ms.sns}, SQS ${ms.sqs}, provider ${ms.provider}) at ${modeled.memoryMb} MB = ${modeled.gbSecondsPerOrder} GB-s; ` +
        `measured ${Object.values(r.perOrder.lambdaMsByFunction)
          .reduce((a, b) => a + b, 0)
          .toFixed(1)} ms per order = ${r.perOrder.lambdaGbSeconds} GB-s`,
    );
  }
  return lines.join('\n');
}

const mb = (bytes: number) => Math.round(bytes / (1024 * 1024));

/** The environments of a runtime, per function, and their average V8 heap. */
function environmentsLine(memory: RuntimeMemory): string {
  const functions = Object.entries(memory.functions).filter(([, fn]) => fn.environments > 0);
  const count = functions.reduce((sum, [, fn]) => sum + fn.environments, 0);
  const heaps = functions.flatMap(([, fn]) => fn.heaps);
  const average = heaps.length > 0 ? heaps.reduce((sum, heap) => sum + heap.totalBytes, 0) / heaps.length : 0;
  return (
    `main thread V8 heap ${mb(memory.mainHeap.totalBytes)} MB; ${count} execution environments (${functions.map(([name, fn]) => `${name} ${fn.environments}`).join(', ') || 'none'})` +
    (heaps.length > 0 ? `, V8 heap ${mb(average)} MB each on average` : '')
  );
}

/** What a launcher process is, by its command line. */
function launcherName(command: string): string {
  return /^npm(\s|$)/.test(command)
    ? 'npm'
    : /\bsh -c /.test(command)
      ? 'sh'
      : /tsx/.test(command)
        ? "tsx's wrapper"
        : command.split(' ')[0]!;
}

/** One reading of every process `npm start` runs: the total against the goal, then each process. */
function readingLines(label: string, reading: MemoryReading, goalMb: number, held: boolean): string[] {
  const total = mb(reading.totalBytes);
  const rss = mb(reading.runtime.rssBytes);
  const peak = reading.runtime.peakRssBytes === undefined ? '' : `, peak ${mb(reading.runtime.peakRssBytes)} MB`;
  const threads = reading.runtime.threads === undefined ? '' : `, ${reading.runtime.threads} threads`;
  const verdict = `${total <= goalMb ? 'within' : 'OVER'} the ${goalMb} MB goal${held ? '' : ' (not held to it: a burst, before its environments are reclaimed)'}`;
  const launchers =
    reading.launchers.length > 0
      ? reading.launchers.map((launcher) => `${launcherName(launcher.command)} ${mb(launcher.rssBytes)} MB`).join(', ')
      : 'none (launched without npm)';
  return [
    `    ${label}, ${reading.seconds} s after npm start: ${total} MB in all — ${verdict}`,
    `      runtime process ${rss} MB${peak}${threads}; launchers ${launchers}`,
    `      ${environmentsLine(reading.breakdown)}`,
  ];
}

/** The local runtime's resident memory: `npm start` after a few orders, every process it runs, against the goal; this process apart. */
export function formatMemory(memory: MemoryResult): string {
  const lines = [
    `\nLocal runtime memory (resident; goal: everything npm start runs, in all — npm, its shell and the runtime with all its threads — at most ${memory.goalMb} MB once at rest)`,
  ];
  const run = memory.npmStart;
  if ('skipped' in run) {
    lines.push(`  npm start: ${run.skipped}`);
  } else {
    lines.push(
      `  npm start, ${run.orders} orders posted one after another (${run.accepted} accepted):`,
      ...readingLines('queues drained', run.drained, memory.goalMb, false),
      ...readingLines('at rest (idle environments reclaimed, scheduled functions run)', run.settled, memory.goalMb, true),
    );
  }
  if (memory.benchProcess) {
    const { variant, concurrency, memory: own } = memory.benchProcess;
    const peak = own.process.peakRssBytes === undefined ? '' : `, peak ${mb(own.process.peakRssBytes)} MB`;
    lines.push(
      `  this bench process after ${variant} @${concurrency} (the runtime in-process, with the load generator and tsx's loader): ${mb(own.process.rssBytes)} MB${peak}; not held to the goal`,
      `    ${environmentsLine(own)}`,
    );
  }
  return lines.join('\n');
}

/** The cold start table: each bundle against an empty handler and against its SDK floor. */
export function formatColdStart(coldStart: ColdStartResult): string {
  const lines = [
    table(
      `Cold start: module initialisation (import in a fresh node, median of ${coldStart.runs}); empty handler ${coldStart.emptyHandlerInitMs} ms`,
      ['function', 'zip KB', 'init ms', 'x empty', 'SDK floor ms', 'x floor', 'SDK clients in the floor'],
      coldStart.functions.map((f) => [
        f.function,
        Math.round(f.zipBytes / 1024),
        f.initMs,
        `${f.vsEmpty}x`,
        f.sdkFloorMs,
        `${f.vsSdkFloor}x${f.vsSdkFloor > SDK_FLOOR_GOAL ? ' !' : ''}`,
        f.sdkClients.join(', '),
      ]),
    ),
    `  SDK floor: a bundle holding only the AWS SDK clients the function's bundle holds, built with the same esbuild options. Goal: x floor at most ${SDK_FLOOR_GOAL} (! above it).`,
  ];
  return lines.join('\n');
}

/** The backlog scenario (`--backlog`): express and standard orders alone and with a standard backlog, with the ratios against the goals. */
export function formatBacklog(result: BacklogResult): string {
  const s = result.setup as {
    cpuModel: string;
    cores: number;
    memoryGb: number;
    node: string;
    options: { standardOrders: number; expressOrders: number; postConcurrency: number; expressPostConcurrency: number };
    standardMaximumConcurrency?: number;
    expressMaximumConcurrency?: number;
    consumerTimeoutSeconds?: number;
    lanePriority?: boolean;
  };
  const lane = (figures: LaneFigures | undefined) =>
    figures
      ? [
          `${figures.decided}/${figures.orders}`,
          figures.ordersPerSecond.toFixed(2),
          `${figures.latencyMs.p50} / ${figures.latencyMs.p95} / ${figures.latencyMs.max}`,
        ]
      : ['', '', ''];
  const rows = result.phases.flatMap((phase) => [
    ...(phase.express ? [[phase.name, 'express', ...lane(phase.express)]] : []),
    ...(phase.standard ? [[phase.name, 'standard', ...lane(phase.standard)]] : []),
  ]);
  const backlog = result.phases.find((phase) => phase.name === 'backlog');
  const { expressP95, standardThroughput } = result.ratios;
  const verdict = (met: boolean) => (met ? 'met' : 'MISSED');
  const off = result.ratiosWithoutLanePriority;
  return [
    `Setup: ${s.cpuModel}, ${s.cores} cores, ${s.memoryGb} GB, Node ${s.node}; ${s.options.standardOrders} standard and ${s.options.expressOrders} express orders, ${s.options.postConcurrency} standard and ${s.options.expressPostConcurrency} express POSTs at a time; per consumer: standard queue max concurrency ${s.standardMaximumConcurrency ?? '?'}, express queue ${s.expressMaximumConcurrency ?? '?'}, timeout ${s.consumerTimeoutSeconds ?? '?'} s; lane priority ${s.lanePriority === false ? 'off' : 'on'}`,
    table(
      'Express lane under a standard backlog (POST to decision; (b) and (c): the standard orders queued, then drained)',
      ['phase', 'lane', 'decided', 'orders/s', 'p50 / p95 / max ms'],
      rows,
    ),
    ...(backlog
      ? [
          `  backlog: ${backlog.standardUndecidedAtFirstExpressPost} standard orders waiting when the first express order was posted, ${backlog.standardUndecidedAtLastExpressDecision} still undecided when the last express order was decided`,
        ]
      : []),
    `  consumer faults per phase (timed-out invocations / failed invocations / failed records, each retried): ${result.phases
      .map(
        (phase) =>
          `${phase.name} ${phase.faults ? `${phase.faults.timedOutInvocations} / ${phase.faults.failedInvocations} / ${phase.faults.failedRecords}` : 'n/a'}`,
      )
      .join('; ')}`,
    `  express p95 with the backlog / alone: ${expressP95.ratio}x (goal at most ${expressP95.goal}x: ${verdict(expressP95.met)})`,
    `  standard orders/s with the backlog / alone: ${standardThroughput.ratio}x (goal at least ${standardThroughput.goal}x: ${verdict(standardThroughput.met)})`,
    ...(off
      ? [
          `  lane priority off: express p95 with the backlog / alone: ${off.expressP95.ratio}x (${verdict(off.expressP95.met)}); standard orders/s with the backlog / alone: ${off.standardThroughput.ratio}x (${verdict(off.standardThroughput.met)})`,
        ]
      : []),
  ].join('\n');
}
