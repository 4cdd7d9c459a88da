import { describe, expect, it } from 'vitest';
import { formatReport } from '../../bench/report.js';
import { LAMBDA_DURATION_MODEL } from '../../bench/cost.js';
import { runBenchmark } from '../../bench/run.js';

// `npm run bench -- --quick` through the module: the shape of the result and that every order the
// load placed was decided CONFIRMED, in every variant. Speed is not checked (the machine is shared).

describe('npm run bench --quick', () => {
  it('runs the default, naive and FIFO variants, the ceiling and cold start, and every order confirms', async () => {
    const result = await runBenchmark({ quick: true });

    expect(result.variants.map((v) => [v.name, v.queueType, v.batchSize, v.batchWindowSeconds, v.receiveWaitTimeSeconds])).toEqual([
      ['default', 'standard', 10, 1, 20],
      ['naive', 'standard', 1, 0, 0],
      // FIFO mappings take no batching window (AWS refuses one).
      ['fifo', 'fifo', 10, 0, 20],
    ]);
    expect(result.runs).toHaveLength(3);
    for (const run of result.runs) {
      expect(run.load.confirmed).toBe(run.load.orders);
      expect(run.load.unfinished).toBe(0);
      expect(run.load.latencyMs.p50).toBeGreaterThan(0);
      expect(run.load.latencyMs.max).toBeGreaterThanOrEqual(run.load.latencyMs.p99);
      // One POST per order; at least the OrderPlaced and the OrderConfirmed publish.
      expect(run.perOrder.httpApiRequests).toBe(1);
      expect(run.perOrder.snsPublishes).toBeGreaterThanOrEqual(2);
      expect(run.perOrder.sqsByAction.ReceiveMessage).toBeGreaterThan(0);
      expect(run.perOrder.dynamodbWriteUnits).toBeGreaterThan(0);
      // Every unit is placed on a step (table and operation), and the steps add up to the totals.
      const steps = run.perOrder.dynamodbBySteps;
      expect(steps.find((step) => step.table === 'orders' && step.action === 'PutItem')?.writeUnits).toBeGreaterThanOrEqual(1);
      expect(steps.reduce((sum, step) => sum + step.writeUnits, 0)).toBeCloseTo(run.perOrder.dynamodbWriteUnits, 1);
      expect(steps.reduce((sum, step) => sum + step.readUnits, 0)).toBeCloseTo(run.perOrder.dynamodbReadUnits, 1);
      expect(run.costPerMillionOrders.total).toBeGreaterThan(0);
      // Lambda duration in the total is the modeled one; the measured one is kept apart.
      const modeled = run.perOrder.lambdaModeled;
      expect(modeled.msPerOrder.provider).toBe(LAMBDA_DURATION_MODEL.providerCallMs * LAMBDA_DURATION_MODEL.providerCallsPerOrder);
      expect(modeled.msPerOrder.dynamodb).toBeCloseTo(
        steps.reduce((sum, step) => sum + step.requests, 0) * LAMBDA_DURATION_MODEL.dynamodbRequestMs,
        0,
      );
      expect(modeled.gbSecondsPerOrder).toBeGreaterThan(0);
      expect(run.costPerMillionOrders.lambdaDuration).toBeCloseTo(
        modeled.gbSecondsPerOrder * 1e6 * result.prices.values.lambdaArm64PerGbSecond,
        2,
      );
      expect(run.costPerMillionOrders.lambdaDurationMeasured).toBeCloseTo(
        run.perOrder.lambdaGbSeconds * 1e6 * result.prices.values.lambdaArm64PerGbSecond,
        2,
      );
    }
    // Every process a separate npm start runs, read after its orders (queues drained, then at rest), and printed.
    const { npmStart } = result.memory;
    if (process.platform !== 'win32') {
      expect('skipped' in npmStart ? npmStart.skipped : undefined).toBeUndefined();
      if (!('skipped' in npmStart)) {
        expect(npmStart.accepted).toBe(npmStart.orders);
        for (const reading of [npmStart.drained, npmStart.settled]) {
          expect(reading.runtime.rssBytes).toBeGreaterThan(0);
          // The total is the runtime and every process above it that waits for it: npm among them, no tsx.
          expect(reading.totalBytes).toBe(
            reading.runtime.rssBytes + reading.launchers.reduce((sum, launcher) => sum + launcher.rssBytes, 0),
          );
          expect(reading.launchers.map((launcher) => launcher.command)).toEqual(expect.arrayContaining([expect.stringMatching(/^npm/)]));
          expect([reading.runtime.command, ...reading.launchers.map((launcher) => launcher.command)].join('\n')).not.toMatch(/tsx/);
          // Every consumer ran in at least one environment, and each reported its heap.
          for (const name of ['createOrder', 'inventory', 'payment', 'shipping']) {
            expect(reading.breakdown.functions[name]?.environments, name).toBeGreaterThanOrEqual(1);
            expect(reading.breakdown.functions[name]?.heaps.length, name).toBe(reading.breakdown.functions[name]?.environments);
          }
        }
        // At rest: one environment per function that ran (a burst's others reclaimed), the scheduled sweep's included.
        for (const [name, fn] of Object.entries(npmStart.settled.breakdown.functions)) expect(fn.environments, name).toBeLessThanOrEqual(1);
        expect(npmStart.settled.breakdown.functions.sweepOrders?.environments).toBe(1);
      }
    }
    const report = formatReport(result);
    expect(report).toMatch(/queues drained, \d+ s after npm start: \d+ MB in all — (within|OVER) the 300 MB goal/);
    expect(report).toMatch(/at rest \(.*\), \d+ s after npm start: \d+ MB in all — (within|OVER) the 300 MB goal\n/);
    expect(report).toMatch(/runtime process \d+ MB.*; launchers .*npm \d+ MB/);
    expect(report).toMatch(/λ duration \(model\), used in the total: 10 ms per invocation/);
    expect(report).toContain('λ duration measured, not in total');
    const [base, naive] = result.runs;
    // Batch size 1: one invocation per message (4 deliveries per order: OrderPlaced to the three
    // participants, OrderConfirmed to shipping alone), plus the API's; retries add.
    expect(naive!.perOrder.lambdaInvocations).toBeGreaterThanOrEqual(5);
    // The DynamoDB budget of a confirmed single-line order (docs/dynamodb-costs.md): at most 12
    // write units and 5 read units, every guarantee kept.
    for (const run of result.runs) {
      expect(run.perOrder.dynamodbWriteUnits, run.variant).toBeLessThanOrEqual(12);
      expect(run.perOrder.dynamodbReadUnits, run.variant).toBeLessThanOrEqual(5);
    }
    expect(naive!.perOrder.lambdaInvocations).toBeGreaterThan(base!.perOrder.lambdaInvocations);
    expect(base!.ceiling?.ordersPerSecond).toBeGreaterThan(0);
    expect(base!.fractionOfCeiling).toBeGreaterThan(0);
    // Where the CPU of an order went, by thread (Linux): the main thread, each function that ran, the rest.
    if (process.platform === 'linux') {
      for (const run of result.runs) {
        const cpu = run.cpuMsPerOrder!;
        expect(cpu.mainThread, run.variant).toBeGreaterThan(0);
        for (const name of ['createOrder', 'inventory', 'payment', 'shipping'])
          expect(cpu.functions[name], `${run.variant} ${name}`).toBeGreaterThan(0);
        // The process's time holds the main thread's and the environments' (/proc counts in 10 ms ticks).
        expect(cpu.total, run.variant).toBeGreaterThan(cpu.mainThread);
        expect(cpu.otherThreads, run.variant).toBeGreaterThanOrEqual(0);
      }
      expect(report).toContain('CPU per order by thread');
    }
    // Cold starts while measured, by function: whole numbers, each a function that ran; printed for every run.
    for (const run of result.runs) {
      for (const [name, count] of Object.entries(run.coldStarts)) {
        expect(['createOrder', 'inventory', 'payment', 'shipping', 'sweepOrders'], run.variant).toContain(name);
        expect(Number.isInteger(count) && count > 0, `${run.variant} ${name} ${count}`).toBe(true);
      }
    }
    expect(report).toMatch(/cold starts during the measured orders[^\n]*default @64 (none|[a-zA-Z]+ \d+)/);
    expect(result.naiveVsDefault).toHaveLength(1);
    // FIFO next to the defaults at the same concurrency, priced at FIFO prices.
    expect(result.fifoVsDefault).toHaveLength(1);
    expect(result.fifoVsDefault[0]!.concurrency).toBe(base!.concurrency);
    const fifo = result.runs[2]!;
    expect(fifo.costPerMillionOrders.sqs).toBeCloseTo(fifo.perOrder.sqsRequests * result.prices.values.sqsFifoPerMillionRequests, 2);
    expect(report).toContain('FIFO queues and topic as a ratio of the defaults');
    expect(result.idle.map((i) => i.variant)).toEqual(['default', 'naive', 'fifo']);
    expect(result.idle[1]!.emptyReceives).toBeGreaterThan(result.idle[0]!.emptyReceives);
    expect(result.coldStart.functions.map((f) => f.function)).toContain('createOrder');
    for (const fn of result.coldStart.functions) {
      expect(fn.zipBytes).toBeGreaterThan(0);
      expect(fn.initMs).toBeGreaterThan(0);
      // Every function reads or writes DynamoDB; its SDK floor holds that client, and was measured.
      expect(fn.sdkClients, fn.function).toContain('DynamoDBClient');
      expect(fn.sdkFloorMs, fn.function).toBeGreaterThan(0);
      expect(fn.vsSdkFloor, fn.function).toBeGreaterThan(0);
    }
    const clients = Object.fromEntries(result.coldStart.functions.map((fn) => [fn.function, fn.sdkClients]));
    expect(clients.getOrder).not.toContain('SNSClient');
    expect(clients.payment).toEqual(expect.arrayContaining(['SNSClient', 'SQSClient']));
    expect(result.setup).toMatchObject({ cores: expect.any(Number), node: process.version });
    expect(result.prices.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  }, 300_000);
});
