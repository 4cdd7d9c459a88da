import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateQueueCommand, SendMessageBatchCommand, SQSClient, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import type { FauxqsServer, SqsSpyMessage } from 'fauxqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InvocationLine, InvocationLog } from '../../local/invocation-log.js';
import { startFauxqsOnLoopback } from '../../local/fauxqs-loopback.js';
import { LambdaFunction } from '../../local/lambda-environment.js';
import { LaneGate, SqsPoller, STANDARD_LANE_MAX_WAIT_MS, type SqsEventSourceMapping } from '../../local/sqs-poller.js';

// The SQS event source mapping of the local runtime, against fauxqs, with a handler of this test's
// own (not the app's functions): what gets deleted, what stays, what reaches the DLQ, and how many
// invocations run at once. Each handler invocation appends a JSON line to a journal file, so the
// test sees what ran inside the worker threads.

const HANDLER = `
import { appendFileSync } from 'node:fs';
const journal = (entry) => appendFileSync(process.env.JOURNAL, JSON.stringify(entry) + '\\n');
export const handler = async (event, context) => {
  const started = Date.now();
  const records = event.Records.map((r) => ({ id: r.messageId, body: JSON.parse(r.body), receiveCount: Number(r.attributes.ApproximateReceiveCount), group: r.attributes.MessageGroupId }));
  // The event's size as Lambda measures it: its JSON, in UTF-8 bytes.
  const eventBytes = Buffer.byteLength(JSON.stringify(event));
  journal({ phase: 'start', at: started, records, eventBytes, remaining: context.getRemainingTimeInMillis() });
  const mode = process.env.MODE;
  let result;
  if (mode === 'report-marked') {
    result = { batchItemFailures: records.filter((r) => r.body.fail).map((r) => ({ itemIdentifier: r.id })) };
  } else if (mode === 'throw') {
    throw new Error('payment provider unavailable');
  } else if (mode === 'invalid') {
    // The body says which malformed response to give.
    const shapes = {
      emptyId: { batchItemFailures: [{ itemIdentifier: '' }] },
      nullId: { batchItemFailures: [{ itemIdentifier: null }] },
      unknownId: { batchItemFailures: [{ itemIdentifier: 'not-a-message-of-this-batch' }] },
      wrongKey: { batchItemFailures: [{ messageId: records[0].id }] },
      notAList: { batchItemFailures: records[0].id },
      notAnObject: 'done',
    };
    result = shapes[records[0].body.shape];
  } else if (mode === 'fifo') {
    // As a FIFO consumer must (Powertools' SqsFifoPartialProcessor with skipGroupOnError): in
    // order, and a failed record fails the rest of its group unhandled. A record fails while its
    // receive count is at most its body's failUntilReceive.
    await fetch(process.env.OVERLAP_COUNTER + '/enter', { method: 'POST' });
    const failedGroups = new Set();
    const failures = [];
    for (const r of records) {
      if (failedGroups.has(r.group) || r.receiveCount <= (r.body.failUntilReceive ?? 0)) {
        failedGroups.add(r.group);
        failures.push({ itemIdentifier: r.id });
        continue;
      }
      journal({ phase: 'handled', at: Date.now(), group: r.group, seq: r.body.seq });
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    await fetch(process.env.OVERLAP_COUNTER + '/leave', { method: 'POST' });
    result = { batchItemFailures: failures };
  } else if (mode === 'hang') {
    await new Promise((resolve) => setTimeout(resolve, 5000));
  } else if (mode === 'sleep') {
    await new Promise((resolve) => setTimeout(resolve, records[0].body.sleepMs));
  } else if (mode === 'slow') {
    // In and out of the test's overlap counter, around the work: the counter sees every pair of
    // invocations whose work overlaps, however close their starts and ends.
    await fetch(process.env.OVERLAP_COUNTER + '/enter', { method: 'POST' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await fetch(process.env.OVERLAP_COUNTER + '/leave', { method: 'POST' });
  }
  journal({ phase: 'end', at: Date.now(), ids: records.map((r) => r.id) });
  return result;
};
`;

interface JournalEntry {
  phase: 'start' | 'end' | 'handled';
  at: number;
  records?: Array<{ id: string; body: Record<string, unknown>; receiveCount: number; group?: string }>;
  group?: string;
  seq?: number;
  ids?: string[];
  eventBytes?: number;
  remaining?: number;
}

let fauxqs: FauxqsServer;
let sqs: SQSClient;
let workDir: string;
let handlerPath: string;
let queueCounter = 0;
const running: Array<{ poller: SqsPoller; fn: LambdaFunction }> = [];

/**
 * Most handler invocations running at once, counted as they happen: each invocation of the test
 * handler calls /enter before its work and /leave after it, and this process keeps the running
 * count. Requests are handled one at a time, so the count is exact: no two timestamps to compare,
 * no tie at equal milliseconds to break in one direction or the other.
 */
class OverlapCounter {
  running = 0;
  peak = 0;
  readonly #server = createServer((request, response) => {
    if (request.url === '/enter') {
      this.running += 1;
      this.peak = Math.max(this.peak, this.running);
    } else if (request.url === '/leave') {
      this.running -= 1;
    }
    response.end();
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.running = 0;
    this.peak = 0;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

const overlap = new OverlapCounter();
let overlapCounterUrl: string;

/** Captures the runtime's one-line invocation log. */
class CapturedLog implements InvocationLog {
  readonly lines: InvocationLine[] = [];
  readonly errors: string[] = [];
  invocation(line: InvocationLine) {
    this.lines.push(line);
  }
  info() {}
  error(message: string) {
    this.errors.push(message);
  }
  output() {}
}

beforeAll(async () => {
  fauxqs = await startFauxqsOnLoopback({ port: 0, logger: false, messageSpies: { bufferSize: 1000 } });
  sqs = new SQSClient({
    endpoint: `http://127.0.0.1:${fauxqs.port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  workDir = await mkdtemp(path.join(tmpdir(), 'sqs-poller-test-'));
  handlerPath = path.join(workDir, 'handler.mjs');
  await writeFile(handlerPath, HANDLER);
  overlapCounterUrl = await overlap.start();
});

afterEach(async () => {
  for (const { poller, fn } of running.splice(0)) {
    await Promise.all([poller.stop(), fn.stop()]);
  }
});

afterAll(async () => {
  await overlap.stop();
  sqs?.destroy();
  await fauxqs?.stop();
  await rm(workDir, { recursive: true, force: true });
});

async function createQueues(options: { visibilityTimeout: number; maxReceiveCount: number }) {
  queueCounter += 1;
  const name = `poller-test-${queueCounter}`;
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const queue = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeout),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: `arn:aws:sqs:us-east-1:000000000000:${name}-dlq`,
          maxReceiveCount: options.maxReceiveCount,
        }),
      },
    }),
  );
  return { name, url: queue.QueueUrl!, arn: `arn:aws:sqs:us-east-1:000000000000:${name}`, dlqName: `${name}-dlq`, dlqUrl: dlq.QueueUrl! };
}

function startPoller(options: {
  queue: { url: string; arn: string };
  mode: string;
  timeoutSeconds?: number;
  batchSize?: number;
  windowSeconds?: number;
  maximumConcurrency?: number;
  reportBatchItemFailures?: boolean;
  duplicateDeliveryRate?: number;
  maxEventBytes?: number;
  fifo?: boolean;
  laneGate?: SqsEventSourceMapping['laneGate'];
  /** The function's execution environments at most (LambdaFunction's default otherwise). */
  maxEnvironments?: number;
}) {
  const journalPath = path.join(workDir, `journal-${queueCounter}-${options.mode}.jsonl`);
  appendFileSync(journalPath, '');
  const log = new CapturedLog();
  const fn = new LambdaFunction(
    {
      name: `consumer-${options.mode}`,
      functionName: `poller-test-consumer-${options.mode}`,
      functionArn: `arn:aws:lambda:us-east-1:000000000000:function:poller-test-consumer-${options.mode}`,
      modulePath: handlerPath,
      exportName: 'handler',
      timeoutSeconds: options.timeoutSeconds ?? 5,
      memorySize: 256,
      logGroupName: '/aws/lambda/poller-test-consumer',
      environment: { MODE: options.mode, JOURNAL: journalPath, OVERLAP_COUNTER: overlapCounterUrl },
    },
    () => {},
    options.maxEnvironments === undefined ? undefined : { maxEnvironments: options.maxEnvironments },
  );
  const mapping: SqsEventSourceMapping = {
    function: fn,
    queueUrl: options.queue.url,
    queueArn: options.queue.arn,
    region: 'us-east-1',
    batchSize: options.batchSize ?? 10,
    maximumBatchingWindowSeconds: options.windowSeconds ?? 1,
    maximumConcurrency: options.maximumConcurrency ?? 2,
    reportBatchItemFailures: options.reportBatchItemFailures ?? true,
    ...(options.duplicateDeliveryRate === undefined ? {} : { duplicateDeliveryRate: options.duplicateDeliveryRate }),
    ...(options.maxEventBytes === undefined ? {} : { maxEventBytes: options.maxEventBytes }),
    ...(options.fifo ? { fifo: true } : {}),
    ...(options.laneGate ? { laneGate: options.laneGate } : {}),
  };
  const poller = new SqsPoller(mapping, sqs, log);
  overlap.reset();
  poller.start();
  running.push({ poller, fn });
  return {
    fn,
    poller,
    log,
    journal: async (): Promise<JournalEntry[]> =>
      (await readFile(journalPath, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as JournalEntry),
  };
}

async function send(
  queueUrl: string,
  bodies: Array<Record<string, unknown>>,
  attributes?: SendMessageBatchRequestEntry['MessageAttributes'],
) {
  const response = await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: bodies.map((body, index) => ({ Id: String(index), MessageBody: JSON.stringify(body), MessageAttributes: attributes })),
    }),
  );
  return response.Successful!.map((entry) => entry.MessageId!);
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const consumedFrom = (queueName: string) =>
  fauxqs.spy
    .getAllMessages()
    .filter(
      (message): message is SqsSpyMessage => message.service === 'sqs' && message.queueName === queueName && message.status === 'consumed',
    );

/**
 * Every message deleted, as fauxqs saw it, and the poller done counting: fauxqs records a delete
 * before the poller's DeleteMessageBatch call returns, so reading the poller's stats on fauxqs's word
 * alone races the last delete.
 */
const untilDrained = (
  consumer: { poller: { stats(): { deleted: number; running: number } } },
  queueName: string,
  count: number,
  timeoutMs?: number,
) =>
  until(
    'every message deleted',
    () => consumedFrom(queueName).length === count && consumer.poller.stats().deleted === count && consumer.poller.stats().running === 0,
    timeoutMs,
  );

describe('partial batch responses', () => {
  it('deletes the records that succeeded, keeps the reported one in flight, and moves it to the DLQ after maxReceiveCount receives', async () => {
    // Visibility timeout longer than the batching window, as Lambda requires.
    const queue = await createQueues({ visibilityTimeout: 2, maxReceiveCount: 2 });
    const attributes = {
      eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
      signature: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2, 3]) },
    };
    const [poisonId, ...goodIds] = await send(queue.url, [{ n: 1, fail: true }, { n: 2 }, { n: 3 }], attributes);
    const consumer = startPoller({ queue, mode: 'report-marked' });

    // The first batch: the two good records are deleted, the reported one is not.
    const first = await until('the first batch', () => consumer.log.lines[0]);
    expect(first).toMatchObject({ batchSize: 3, failures: 1, outcome: 'partial' });
    expect(
      consumedFrom(queue.name)
        .map((message) => message.messageId)
        .sort(),
    ).toEqual([...goodIds].sort());
    const state = fauxqs.inspectQueue(queue.name)!;
    expect(state.messages.ready).toHaveLength(0);
    expect(state.messages.inflight.map((entry) => entry.message.messageId)).toEqual([poisonId]);

    // It comes back after the visibility timeout, fails again, and the next receive moves it.
    const dead = await fauxqs.spy.waitForMessage({ service: 'sqs', queueName: queue.dlqName, status: 'published' }, undefined, 10_000);
    expect(dead).toMatchObject({ messageId: poisonId, body: JSON.stringify({ n: 1, fail: true }) });
    const inDlq = fauxqs.inspectQueue(queue.dlqName)!.messages.ready;
    expect(inDlq).toHaveLength(1);
    expect(inDlq[0]!.body).toBe(JSON.stringify({ n: 1, fail: true }));
    expect(inDlq[0]!.messageAttributes.eventType).toMatchObject({ DataType: 'String', StringValue: 'OrderPlaced' });
    expect(inDlq[0]!.messageAttributes.signature).toMatchObject({ DataType: 'Binary' });
    expect(Buffer.from(String(inDlq[0]!.messageAttributes.signature!.BinaryValue), 'base64')).toEqual(Buffer.from([1, 2, 3]));

    // The handler saw it twice, with Lambda's record shape and growing receive counts.
    const starts = (await consumer.journal()).filter((entry) => entry.phase === 'start');
    const poisonReceives = starts.flatMap((entry) =>
      entry.records!.filter((record) => record.id === poisonId).map((record) => record.receiveCount),
    );
    expect(poisonReceives).toEqual([1, 2]);
    expect(fauxqs.inspectQueue(queue.name)!.messages.inflight).toHaveLength(0);
  });
});

describe('a disabled mapping (UpdateEventSourceMapping Enabled: false)', () => {
  it('receives nothing while disabled, its long poll cut short, and everything once enabled again', async () => {
    const queue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const consumer = startPoller({ queue, mode: 'report-marked', windowSeconds: 0 });
    // Long polling an empty queue, then disabled: the poll in progress must not take what comes next.
    await new Promise((resolve) => setTimeout(resolve, 200));
    consumer.poller.disable();
    const ids = await send(queue.url, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(fauxqs.inspectQueue(queue.name)!.messages.ready).toHaveLength(ids.length);
    expect(consumer.log.lines).toHaveLength(0);

    consumer.poller.enable();
    await until('every message deleted', () => consumedFrom(queue.name).length === ids.length);
  });
});

describe('failed batches', () => {
  it('deletes nothing when the handler throws', async () => {
    const queue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const ids = await send(queue.url, [{ n: 1 }, { n: 2 }]);
    const consumer = startPoller({ queue, mode: 'throw' });

    const line = await until('the failed batch', () => consumer.log.lines[0]);
    expect(line.outcome).toMatch(/^error: .*payment provider unavailable/);
    expect(line.failures).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(consumedFrom(queue.name)).toHaveLength(0);
    expect(
      fauxqs
        .inspectQueue(queue.name)!
        .messages.inflight.map((entry) => entry.message.messageId)
        .sort(),
    ).toEqual([...ids].sort());
  });

  it('treats a malformed batchItemFailures response as a failure of the whole batch', async () => {
    const queue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const shapes = ['emptyId', 'nullId', 'unknownId', 'wrongKey', 'notAList', 'notAnObject'];
    await send(
      queue.url,
      shapes.map((shape) => ({ shape })),
    );
    // One record per batch, so each malformed response is judged on its own.
    const consumer = startPoller({ queue, mode: 'invalid', batchSize: 1, windowSeconds: 0, maximumConcurrency: 3 });

    await until('six invocations', () => consumer.log.lines.length === shapes.length);
    for (const line of consumer.log.lines) {
      expect(line.outcome).toMatch(/^invalid batch response/);
      expect(line.failures).toBe(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(consumedFrom(queue.name)).toHaveLength(0);
    expect(fauxqs.inspectQueue(queue.name)!.messages.inflight).toHaveLength(shapes.length);
  });

  it('kills an invocation that exceeds its timeout, keeps its messages, and runs the retry in a fresh environment', async () => {
    const queue = await createQueues({ visibilityTimeout: 2, maxReceiveCount: 5 });
    const [id] = await send(queue.url, [{ n: 1 }]);
    const consumer = startPoller({ queue, mode: 'hang', timeoutSeconds: 1, windowSeconds: 0 });

    const [first, second] = await until('two attempts', () => consumer.log.lines.length >= 2 && consumer.log.lines, 15_000);
    expect(first!.outcome).toBe('timeout: Task timed out after 1.00 seconds');
    expect(first!.durationMs).toBeGreaterThanOrEqual(1000);
    expect(first!.durationMs).toBeLessThan(2000);
    // The timed-out environment was destroyed: the retry is a cold start.
    expect(second!.initDurationMs).toBeDefined();
    expect(consumedFrom(queue.name)).toHaveLength(0);

    const starts = (await consumer.journal()).filter((entry) => entry.phase === 'start');
    expect(starts.map((entry) => entry.records![0]!.id)).toEqual([id, id]);
    expect(starts.map((entry) => entry.records![0]!.receiveCount)).toEqual([1, 2]);
    // The context counted down from the function's timeout.
    expect(starts[0]!.remaining).toBeGreaterThan(900);
    expect(starts[0]!.remaining).toBeLessThanOrEqual(1000);
    // No attempt ever finished: the worker died with its timer.
    expect((await consumer.journal()).filter((entry) => entry.phase === 'end')).toHaveLength(0);
  });
});

describe('lane priority (LaneGate)', () => {
  const startsOf = async (consumer: { journal(): Promise<JournalEntry[]> }) =>
    (await consumer.journal()).filter((entry) => entry.phase === 'start').map((entry) => entry.at);
  const endsOf = async (consumer: { journal(): Promise<JournalEntry[]> }) =>
    (await consumer.journal()).filter((entry) => entry.phase === 'end').map((entry) => entry.at);

  /** An express and a standard mapping, each on a queue of its own, sharing one gate. */
  const twoLanes = async (options: { expressMode: string; expressTimeoutSeconds?: number; standardWindowSeconds?: number }) => {
    const gate = new LaneGate();
    const expressQueue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const standardQueue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const express = startPoller({
      queue: expressQueue,
      mode: options.expressMode,
      timeoutSeconds: options.expressTimeoutSeconds ?? 5,
      windowSeconds: 0,
      laneGate: { gate, lane: 'express' },
    });
    const standard = startPoller({
      queue: standardQueue,
      mode: 'ok',
      windowSeconds: options.standardWindowSeconds ?? 0,
      laneGate: { gate, lane: 'standard' },
    });
    return { gate, expressQueue, standardQueue, express, standard };
  };

  it('starts no standard batch while an express batch is in hand, and starts it as soon as that batch is done', async () => {
    const { gate, expressQueue, standardQueue, express, standard } = await twoLanes({ expressMode: 'sleep' });

    await send(expressQueue.url, [{ sleepMs: 1200 }]);
    await until('the express batch to start', async () => (await startsOf(express)).length === 1);
    await send(standardQueue.url, [{ n: 1 }, { n: 2 }]);
    await untilDrained(standard, standardQueue.name, 2, 15_000);

    const [expressEnd] = await endsOf(express);
    const standardStarts = await startsOf(standard);
    // Held back until the express batch was done, then started at once.
    for (const start of standardStarts) expect(start).toBeGreaterThanOrEqual(expressEnd!);
    expect(Math.min(...standardStarts) - expressEnd!).toBeLessThan(1_000);
    expect(standard.poller.stats().laneWaits).toBeGreaterThanOrEqual(1);
    expect(express.poller.stats().laneWaits).toBe(0);
    expect(gate.held).toBe(false);
  });

  it('closes for STANDARD_LANE_MAX_WAIT_MS at most, then opens as long: a long express batch slows the standard lane, never stops it', async () => {
    const { gate, expressQueue, standardQueue, express, standard } = await twoLanes({ expressMode: 'sleep', expressTimeoutSeconds: 10 });

    await send(expressQueue.url, [{ sleepMs: 6_000 }]);
    const [expressStart] = await until('the express batch to start', async () => {
      const starts = await startsOf(express);
      return starts.length === 1 && starts;
    });
    await send(standardQueue.url, [{ n: 1 }]);
    await untilDrained(standard, standardQueue.name, 1, 15_000);
    const [firstStart] = await startsOf(standard);
    // Held back for the closed period (counted from the express batch's start), and no longer.
    expect(firstStart! - expressStart!).toBeGreaterThanOrEqual(STANDARD_LANE_MAX_WAIT_MS - 150);
    expect(firstStart! - expressStart!).toBeLessThan(STANDARD_LANE_MAX_WAIT_MS + 1_000);

    // In the open window that follows, a standard message goes at once, the express batch still running.
    const sentInWindow = Date.now();
    await send(standardQueue.url, [{ n: 2 }]);
    await untilDrained(standard, standardQueue.name, 2, 10_000);
    expect((await startsOf(standard))[1]! - sentInWindow).toBeLessThan(1_000);
    expect(gate.held).toBe(true);
    expect(await endsOf(express)).toHaveLength(0);
  });

  it('hands a waiting batch back when its mapping is disabled meanwhile, and handles it once enabled again', async () => {
    // A 1 s batching window: the standard batch is still gathering when the express batch starts,
    // so it waits at the gate with its record in hand.
    const { expressQueue, standardQueue, express, standard } = await twoLanes({
      expressMode: 'sleep',
      expressTimeoutSeconds: 10,
      standardWindowSeconds: 1,
    });

    await send(standardQueue.url, [{ n: 1 }]);
    await send(expressQueue.url, [{ sleepMs: 4_000 }]);
    await until('the standard batch to wait at the gate', () => standard.poller.stats().laneWaits >= 1, 5_000);
    standard.poller.disable();
    await until('the record handed back', () => standard.poller.stats().releasedRecords >= 1, 5_000);
    expect(await startsOf(standard)).toHaveLength(0);
    expect(fauxqs.inspectQueue(standardQueue.name)!.messages.ready).toHaveLength(1);

    standard.poller.enable();
    await untilDrained(standard, standardQueue.name, 1, 15_000);
    expect(await startsOf(standard)).toHaveLength(1);
    expect((await startsOf(express)).length).toBe(1);
  });

  it('opens as soon as a failed express batch is done: a failure never leaves the gate closed', async () => {
    const { gate, expressQueue, standardQueue, express, standard } = await twoLanes({ expressMode: 'throw' });

    await send(expressQueue.url, [{ n: 1 }]);
    await until('the express batch to fail', () => express.poller.stats().failedRecords >= 1, 10_000);
    await until('the gate to open', () => !gate.held, 5_000);
    const sentAt = Date.now();
    await send(standardQueue.url, [{ n: 1 }]);
    await untilDrained(standard, standardQueue.name, 1, 10_000);
    expect((await startsOf(standard))[0]! - sentAt).toBeLessThan(1_000);
  });
});

describe('scaling', () => {
  it('never runs more invocations at once than MaximumConcurrency', async () => {
    const queue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const ids = await send(
      queue.url,
      Array.from({ length: 8 }, (_, n) => ({ n })),
    );
    const consumer = startPoller({
      queue,
      mode: 'slow',
      batchSize: 1,
      windowSeconds: 0,
      maximumConcurrency: 2,
      reportBatchItemFailures: false,
    });

    await untilDrained(consumer, queue.name, ids.length, 15_000);
    expect(overlap.peak).toBe(2);
    expect(overlap.running).toBe(0);
    expect(consumer.poller.stats()).toMatchObject({ batches: 8, records: 8, deleted: 8, maxConcurrent: 2 });
    expect(consumer.fn.stats().maxConcurrent).toBe(2);
  });

  it('receives a batch only when an environment can run it: none waits in hand while its visibility timeout runs out', async () => {
    // One environment, busy with work of its own (on a laptop, the local runtime's budget of
    // environments can be spent by other functions), and three concurrency slots. A batch received
    // meanwhile would wait with its 1 s visibility timeout running, be received again, and run twice.
    const queue = await createQueues({ visibilityTimeout: 1, maxReceiveCount: 5 });
    const consumer = startPoller({
      queue,
      mode: 'sleep',
      batchSize: 1,
      windowSeconds: 0,
      maximumConcurrency: 3,
      maxEnvironments: 1,
      timeoutSeconds: 10,
      reportBatchItemFailures: false,
    });
    // Invoked in the same tick as the poller starts: the environment is taken before it first looks.
    const busy = consumer.fn.invoke({
      Records: [{ messageId: 'busy', body: JSON.stringify({ sleepMs: 3_000 }), attributes: { ApproximateReceiveCount: '1' } }],
    });
    await until('the busy invocation to start', async () => (await consumer.journal()).some((entry) => entry.phase === 'start'));
    const [quick] = await send(queue.url, [{ sleepMs: 0 }]);
    expect((await busy).ok).toBe(true);

    const ended = async () => (await consumer.journal()).filter((entry) => entry.phase === 'end').flatMap((entry) => entry.ids!);
    await until('the quick record to be handled', async () => (await ended()).includes(quick!), 15_000);
    // Long enough for a second delivery of it, received while it waited, to run too.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const starts = (await consumer.journal()).filter((entry) => entry.phase === 'start').flatMap((entry) => entry.records!);
    expect(starts.filter((record) => record.id === quick).map((record) => record.receiveCount)).toEqual([1]);
    expect(consumedFrom(queue.name)).toHaveLength(1);
    expect(consumer.poller.stats().environmentWaits).toBeGreaterThanOrEqual(1);
  });

  it('counts a deliberate duplicate delivery against MaximumConcurrency, like any invocation', async () => {
    const queue = await createQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const ids = await send(
      queue.url,
      Array.from({ length: 6 }, (_, n) => ({ n })),
    );
    // Every record delivered twice: two invocations per message, never more than 2 at once.
    const consumer = startPoller({
      queue,
      mode: 'slow',
      batchSize: 1,
      windowSeconds: 0,
      maximumConcurrency: 2,
      reportBatchItemFailures: false,
      duplicateDeliveryRate: 1,
    });

    await until(
      'every message deleted and every duplicate run',
      () =>
        consumedFrom(queue.name).length === ids.length &&
        consumer.poller.stats().duplicateInvocations === ids.length &&
        consumer.poller.stats().running === 0,
      20_000,
    );
    const journal = await consumer.journal();
    const handled = journal.filter((entry) => entry.phase === 'start').flatMap((entry) => entry.records!.map((record) => record.id));
    expect(handled.sort()).toEqual([...ids, ...ids].sort());
    expect(overlap.peak).toBe(2);
    expect(overlap.running).toBe(0);
    expect(consumer.poller.stats()).toMatchObject({
      batches: 6,
      duplicatedRecords: 6,
      duplicateInvocations: 6,
      maxConcurrent: 2,
      running: 0,
    });
    expect(consumer.fn.stats().maxConcurrent).toBe(2);
  });
});

describe('event size', () => {
  it('never hands the function an event larger than the payload limit, and hands back at once what did not fit', async () => {
    // A visibility timeout far longer than the test: a record handed back waits for none of it.
    const queue = await createQueues({ visibilityTimeout: 60, maxReceiveCount: 5 });
    const body = (n: number) => ({ n, padding: 'x'.repeat(1000) });
    // SendMessageBatch takes 10 at most.
    const ids = [...(await send(queue.url, [0, 1, 2, 3, 4, 5].map(body))), ...(await send(queue.url, [6, 7, 8, 9, 10, 11].map(body)))];
    // Ten SQS messages cannot fill Lambda's 6 MB, so the limit is lowered: about 3 of these records.
    const maxEventBytes = 6000;
    const consumer = startPoller({ queue, mode: 'ok', batchSize: 10, windowSeconds: 1, maximumConcurrency: 2, maxEventBytes });

    await until('every message deleted', () => consumedFrom(queue.name).length === ids.length, 15_000);
    const starts = (await consumer.journal()).filter((entry) => entry.phase === 'start');
    for (const start of starts) expect(start.eventBytes).toBeLessThanOrEqual(maxEventBytes);
    // Still batches, as full as the limit allows ...
    expect(Math.max(...starts.map((start) => start.records!.length))).toBeGreaterThan(1);
    // ... and every message handled once: nothing dropped, nothing sent to the DLQ.
    expect(starts.flatMap((start) => start.records!.map((record) => record.id)).sort()).toEqual([...ids].sort());
    expect(consumer.poller.stats().releasedRecords).toBeGreaterThan(0);
    expect(fauxqs.inspectQueue(queue.dlqName)!.messages.ready).toHaveLength(0);
  });
});

describe("FIFO queues, as Lambda's FIFO event source", () => {
  async function createFifoQueues(options: { visibilityTimeout: number; maxReceiveCount: number }) {
    queueCounter += 1;
    const name = `poller-test-${queueCounter}`;
    const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq.fifo`, Attributes: { FifoQueue: 'true' } }));
    const queue = await sqs.send(
      new CreateQueueCommand({
        QueueName: `${name}.fifo`,
        Attributes: {
          FifoQueue: 'true',
          DeduplicationScope: 'messageGroup',
          FifoThroughputLimit: 'perMessageGroupId',
          VisibilityTimeout: String(options.visibilityTimeout),
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: `arn:aws:sqs:us-east-1:000000000000:${name}-dlq.fifo`,
            maxReceiveCount: options.maxReceiveCount,
          }),
        },
      }),
    );
    return {
      name: `${name}.fifo`,
      url: queue.QueueUrl!,
      arn: `arn:aws:sqs:us-east-1:000000000000:${name}.fifo`,
      dlqName: `${name}-dlq.fifo`,
      dlqUrl: dlq.QueueUrl!,
    };
  }

  /** `count` messages in each group, sent one group after another: seq 1..count within a group. */
  async function sendGroups(
    queueUrl: string,
    groups: string[],
    count: number,
    body: (group: string, seq: number) => Record<string, unknown> = () => ({}),
  ) {
    for (const group of groups) {
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: Array.from({ length: count }, (_, i) => ({
            Id: String(i),
            MessageBody: JSON.stringify({ seq: i + 1, ...body(group, i + 1) }),
            MessageGroupId: group,
            MessageDeduplicationId: `${group}-${i + 1}`,
          })),
        }),
      );
    }
  }

  /** Each group's sequence numbers in the order the handler handled them. */
  const handledOrder = (journal: JournalEntry[]) => {
    const order = new Map<string, number[]>();
    for (const entry of journal.filter((e) => e.phase === 'handled'))
      order.set(entry.group!, [...(order.get(entry.group!) ?? []), entry.seq!]);
    return Object.fromEntries(order);
  };

  /** Pairs of invocations holding the same group whose runs overlap (journal lines are in time order). */
  const overlappingGroupRuns = (journal: JournalEntry[]) => {
    const open = new Map<string, number>();
    const overlaps: string[] = [];
    for (const entry of journal) {
      if (entry.phase === 'start') {
        for (const group of new Set(entry.records!.map((r) => r.group!))) {
          if ((open.get(group) ?? 0) > 0) overlaps.push(group);
          open.set(group, (open.get(group) ?? 0) + 1);
        }
      }
      if (entry.phase === 'end') {
        const groups = new Set(
          journal
            .filter((e) => e.phase === 'start' && e.records!.some((r) => entry.ids!.includes(r.id)))
            .flatMap((e) => e.records!.map((r) => r.group!)),
        );
        for (const group of groups) open.set(group, (open.get(group) ?? 1) - 1);
      }
    }
    return overlaps;
  };

  it('hands each group over in order, one batch of a group at a time, and several groups side by side', async () => {
    const queue = await createFifoQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const groups = ['order-a', 'order-b', 'order-c', 'order-d'];
    await sendGroups(queue.url, groups, 5);
    // One record a batch, so that each batch holds one group and groups can run side by side.
    const consumer = startPoller({ queue, mode: 'fifo', batchSize: 1, windowSeconds: 0, maximumConcurrency: 3, fifo: true });

    await untilDrained(consumer, queue.name, groups.length * 5, 20_000);
    const journal = await consumer.journal();
    expect(handledOrder(journal)).toEqual(Object.fromEntries(groups.map((group) => [group, [1, 2, 3, 4, 5]])));
    expect(overlappingGroupRuns(journal)).toEqual([]);
    // Other groups did not wait for one another.
    expect(overlap.peak).toBeGreaterThan(1);
    expect(consumer.poller.stats()).toMatchObject({ deleted: 20, outOfOrderSuccesses: 0 });
  });

  it('a failure stops its group and only its group: the group comes back in order after it, the others go on meanwhile', async () => {
    const queue = await createFifoQueues({ visibilityTimeout: 2, maxReceiveCount: 5 });
    // order-a's first message fails on its first receive; nothing of order-a may be handled before it.
    await sendGroups(queue.url, ['order-a', 'order-b', 'order-c'], 4, (group, seq) =>
      group === 'order-a' && seq === 1 ? { failUntilReceive: 1 } : {},
    );
    const consumer = startPoller({ queue, mode: 'fifo', windowSeconds: 0, maximumConcurrency: 2, fifo: true });

    await untilDrained(consumer, queue.name, 12, 20_000);
    const journal = await consumer.journal();
    expect(handledOrder(journal)).toEqual({ 'order-a': [1, 2, 3, 4], 'order-b': [1, 2, 3, 4], 'order-c': [1, 2, 3, 4] });
    // The other groups were done while order-a waited out its visibility timeout.
    const handled = journal.filter((e) => e.phase === 'handled');
    const firstOfA = handled.findIndex((e) => e.group === 'order-a');
    const othersDone = handled.filter((e) => e.group !== 'order-a').length;
    expect(handled.slice(0, firstOfA).length, 'order-b and order-c handled before order-a came back').toBe(othersDone);
    expect(consumer.poller.stats()).toMatchObject({ failedRecords: 1, outOfOrderSuccesses: 0 });
    expect(fauxqs.inspectQueue(queue.dlqName)!.messages.ready).toHaveLength(0);
  });

  it('a deliberate duplicate delivery runs after its batch, never beside a batch of its group', async () => {
    const queue = await createFifoQueues({ visibilityTimeout: 30, maxReceiveCount: 5 });
    const groups = ['order-a', 'order-b'];
    await sendGroups(queue.url, groups, 3);
    const consumer = startPoller({ queue, mode: 'fifo', windowSeconds: 0, maximumConcurrency: 2, fifo: true, duplicateDeliveryRate: 1 });

    await until(
      'every message deleted and every duplicate run',
      () =>
        consumedFrom(queue.name).length === 6 && consumer.poller.stats().duplicatedRecords === 6 && consumer.poller.stats().running === 0,
      20_000,
    );
    const journal = await consumer.journal();
    expect(overlappingGroupRuns(journal)).toEqual([]);
    // Each record twice, one right after the other: the group's order holds even for duplicates.
    expect(handledOrder(journal)).toEqual({ 'order-a': [1, 1, 2, 2, 3, 3], 'order-b': [1, 1, 2, 2, 3, 3] });
    expect(overlap.peak).toBeLessThanOrEqual(2);
    // A group's next message, received once the batch deleted its own, waited for the duplicate.
    expect(consumer.poller.stats().groupWaits).toBeGreaterThan(0);
  });
});
