import type { FauxqsServer } from 'fauxqs';
import { describe, expect, it } from 'vitest';
import type { FunctionStats } from '../../local/lambda-environment.js';
import type { EventSourceStats } from '../../local/sqs-poller.js';
import { queueDepth, type RuntimeCounters, startLocalStatus } from '../../local/status.js';
import { formatAge, renderStatus, type StatusReport } from '../../scripts/status.js';

// The status table (`npm run status`) and the figures behind GET /_local/status.

const report: StatusReport = {
  target: 'local runtime at http://127.0.0.1:3000',
  at: '2026-01-01T00:00:00.000Z',
  windowSeconds: 60,
  queues: [
    {
      name: 'order-pipeline-local-payment',
      visible: 12,
      inFlight: 3,
      delayed: 0,
      oldestMessageAgeSeconds: 75,
      dlq: { name: 'order-pipeline-local-payment-dlq', visible: 2, inFlight: 1, delayed: 0, oldestMessageAgeSeconds: 9 },
    },
    { name: 'order-pipeline-local-shipping', visible: 0, inFlight: 0, delayed: 0, oldestMessageAgeSeconds: null, dlq: null },
  ],
  functions: [
    { name: 'createOrder', invocations: 15, processed: 15, failed: 0, running: 0 },
    { name: 'payment', invocations: 7, processed: 0, failed: 15, running: 1 },
  ],
  notes: [],
};

describe('renderStatus', () => {
  it('prints a table per queue and per function, numbers right-aligned', () => {
    expect(renderStatus(report)).toBe(
      [
        'local runtime at http://127.0.0.1:3000, 2026-01-01T00:00:00.000Z',
        '',
        'queue                          visible  in flight  delayed  oldest  DLQ',
        'order-pipeline-local-payment        12          3        0     75s    3',
        'order-pipeline-local-shipping        0          0        0       -    -',
        '',
        'function (last 60 s)  invocations  processed  failed  running',
        'createOrder                    15         15       0        0',
        'payment                         7          0      15        1',
      ].join('\n'),
    );
  });

  it('says n/a for what SQS alone cannot tell (a deployed stage), with the reason', () => {
    const text = renderStatus({
      ...report,
      windowSeconds: undefined,
      functions: undefined,
      queues: [{ ...report.queues[0]!, oldestMessageAgeSeconds: undefined }],
      notes: ['n/a on AWS: see CloudWatch'],
    });
    expect(text).toContain('order-pipeline-local-payment       12          3        0     n/a    3');
    expect(text).toContain('function (last minute): processed/failed n/a');
    expect(text.split('\n').at(-1)).toBe('note: n/a on AWS: see CloudWatch');
  });

  it('formats ages in seconds, minutes, hours', () => {
    expect([null, undefined, 0, 119, 120, 3661, 7300].map(formatAge)).toEqual(['-', 'n/a', '0s', '119s', '2m00s', '61m01s', '2h01m']);
  });
});

describe('queueDepth', () => {
  const message = (sentTimestamp: number) => ({ sentTimestamp }) as never;
  it('counts an in-flight message whose visibility ran out as visible, and ages the oldest message', () => {
    const fauxqs = {
      inspectQueue: () => ({
        name: 'q',
        url: 'u',
        arn: 'a',
        attributes: {},
        messages: {
          ready: [message(10_000)],
          delayed: [message(50_000)],
          inflight: [
            { message: message(4_000), receiptHandle: 'r1', visibilityDeadline: 60_000 },
            { message: message(20_000), receiptHandle: 'r2', visibilityDeadline: 90_000 },
          ],
        },
      }),
    } as unknown as FauxqsServer;
    expect(queueDepth(fauxqs, 'q', 64_500)).toEqual({ name: 'q', visible: 2, inFlight: 1, delayed: 1, oldestMessageAgeSeconds: 60 });
    expect(queueDepth({ inspectQueue: () => undefined } as unknown as FauxqsServer, 'gone', 0)).toMatchObject({
      visible: 0,
      oldestMessageAgeSeconds: null,
    });
  });
});

describe('startLocalStatus', () => {
  it("counts each function's invocations and records of the last minute only", () => {
    let clock = 1_000_000;
    const fn = (invocations: number, errors: number): FunctionStats => ({
      invocations,
      errors,
      timeouts: 0,
      coldStarts: 0,
      running: 0,
      maxConcurrent: 0,
      environments: 0,
      totalDurationMs: 0,
    });
    const source = (deleted: number, failedRecords: number): EventSourceStats =>
      ({ batches: 0, records: 0, deleted, failedRecords, failedBatches: 0, running: 0, maxConcurrent: 0 }) as EventSourceStats;
    let counters: RuntimeCounters = {
      functions: { api: fn(0, 0), worker: fn(0, 0) },
      eventSources: [{ queueName: 'q', functionName: 'worker', stats: source(0, 0) }],
    };
    const fauxqs = { inspectQueue: () => undefined } as unknown as FauxqsServer;
    const status = startLocalStatus({
      fauxqs,
      queues: { q: { logicalId: 'Q', url: 'u', arn: 'a' } },
      counters: () => counters,
      now: () => clock,
    });
    try {
      status.sample();
      counters = {
        functions: { api: fn(4, 1), worker: fn(3, 0) },
        eventSources: [{ queueName: 'q', functionName: 'worker', stats: source(20, 5) }],
      };
      clock += 30_000;
      status.sample();
      let s = status.snapshot();
      // Younger than a minute: everything since the start.
      expect(s.windowSeconds).toBe(30);
      expect(s.functions).toEqual([
        { name: 'api', invocations: 4, processed: 3, failed: 1, running: 0 },
        { name: 'worker', invocations: 3, processed: 20, failed: 5, running: 0 },
      ]);
      expect(s.queues.map((q) => q.name)).toEqual(['q']);

      counters = {
        functions: { api: fn(10, 1), worker: fn(5, 0) },
        eventSources: [{ queueName: 'q', functionName: 'worker', stats: source(30, 6) }],
      };
      clock += 35_000;
      status.sample();
      // 65 s after the start: counted from the sample taken at the start.
      s = status.snapshot();
      expect(s.windowSeconds).toBe(60);
      expect(s.functions).toEqual([
        { name: 'api', invocations: 10, processed: 9, failed: 1, running: 0 },
        { name: 'worker', invocations: 5, processed: 30, failed: 6, running: 0 },
      ]);
      clock += 30_000;
      // 95 s: only what happened after the sample at 30 s.
      s = status.snapshot();
      expect(s.functions).toEqual([
        { name: 'api', invocations: 6, processed: 6, failed: 0, running: 0 },
        { name: 'worker', invocations: 2, processed: 10, failed: 1, running: 0 },
      ]);
    } finally {
      status.stop();
    }
  });
});
