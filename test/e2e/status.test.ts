import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineStatus, QueueStatus } from '../../local/status.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { REPOSITORY_ROOT } from '../../local/package-stack.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// GET /_local/status and `npm run status` against a local pipeline whose payment function fails
// every record: the payment records are received maxReceiveCount (5) times, each failing, and then
// sit in the payment DLQ, while inventory and shipping handle theirs.

const ORDERS = 3;
const MAX_RECEIVE_COUNT = 5;

let pipeline: LocalPipeline;
let baseUrl: string;

async function status(): Promise<PipelineStatus> {
  const response = await fetch(`${baseUrl}/_local/status`);
  expect(response.status).toBe(200);
  return (await response.json()) as PipelineStatus;
}

const queue = (s: PipelineStatus, stage: string): QueueStatus => {
  const found = s.queues.find((q) => q.name.endsWith(`-${stage}`));
  if (!found) throw new Error(`No ${stage} queue in ${JSON.stringify(s.queues.map((q) => q.name))}`);
  return found;
};
const activity = (s: PipelineStatus, name: string) => {
  const found = s.functions.find((fn) => fn.name === name);
  if (!found) throw new Error(`No function ${name}`);
  return found;
};

async function placeOrder(): Promise<string> {
  const response = await fetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await pipeline.tokenFor('cus_status')}` },
    body: JSON.stringify({
      items: [{ sku: 'SKU-MUG', quantity: 1 }],
      payment: { token: 'tok_visa' },
      shippingAddress: { ...SAMPLE_ADDRESS },
    }),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { orderId: string }).orderId;
}

describe('pipeline status', () => {
  beforeAll(async () => {
    pipeline = await startLocalPipeline({
      apiPort: 0,
      sqsPort: 0,
      dynamodbPort: 0,
      quiet: true,
      // Every payment record fails, and comes back at once (no backoff) until it reaches the DLQ.
      environmentOverrides: { payment: { FAULT_TRANSIENT_ERROR_RATE: '1', RETRY_BACKOFF_BASE_SECONDS: '0' } },
    });
    baseUrl = pipeline.apiUrl.replace(/\/$/, '');
  }, 300_000);

  afterAll(async () => {
    await pipeline?.stop();
  });

  it('starts empty: every consumer queue and DLQ at 0, no function invoked', async () => {
    const s = await status();
    // Each consumer's standard queue and its express lane's.
    expect(s.queues.map((q) => q.name.replace(/^order-pipeline-local-/, '')).sort()).toEqual([
      'inventory',
      'inventory-express',
      'payment',
      'payment-express',
      'shipping',
      'shipping-express',
    ]);
    for (const q of s.queues) {
      expect(q).toMatchObject({ visible: 0, inFlight: 0, delayed: 0, oldestMessageAgeSeconds: null });
      expect(q.dlq).toMatchObject({ name: `${q.name}-dlq`, visible: 0, inFlight: 0, delayed: 0 });
    }
    expect(s.functions.every((fn) => fn.invocations === 0 && fn.failed === 0)).toBe(true);
    expect(s.windowSeconds).toBeLessThanOrEqual(60);
  });

  it("shows failing payment records landing in the payment DLQ, and each function's last-minute counts", async () => {
    for (let n = 0; n < ORDERS; n++) await placeOrder();

    const deadline = Date.now() + 60_000;
    let s = await status();
    // SQS moves a record on the receive after its last failure, which may come before the failed
    // invocation has returned: settled once nothing runs any more.
    const settled = () =>
      queue(s, 'payment').dlq!.visible === ORDERS &&
      activity(s, 'inventory').processed === ORDERS &&
      activity(s, 'shipping').processed === ORDERS &&
      s.functions.every((fn) => fn.running === 0);
    while (!settled()) {
      if (Date.now() > deadline) throw new Error(`Not settled in time: ${JSON.stringify(s, null, 2)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
      s = await status();
    }

    const payment = queue(s, 'payment');
    expect(payment).toMatchObject({ visible: 0, inFlight: 0, delayed: 0, oldestMessageAgeSeconds: null });
    expect(payment.dlq).toMatchObject({ visible: ORDERS, inFlight: 0 });
    expect(payment.dlq!.oldestMessageAgeSeconds).toBeGreaterThanOrEqual(0);
    for (const stage of ['inventory', 'shipping']) {
      expect(queue(s, stage)).toMatchObject({ visible: 0, inFlight: 0, delayed: 0 });
      expect(queue(s, stage).dlq).toMatchObject({ visible: 0, inFlight: 0 });
    }
    // Each payment record failed once per receive, then SQS moved it; nothing was processed.
    expect(activity(s, 'payment')).toMatchObject({ processed: 0, failed: ORDERS * MAX_RECEIVE_COUNT });
    expect(activity(s, 'payment').invocations).toBeGreaterThanOrEqual(MAX_RECEIVE_COUNT);
    expect(activity(s, 'inventory')).toMatchObject({ processed: ORDERS, failed: 0 });
    expect(activity(s, 'shipping')).toMatchObject({ processed: ORDERS, failed: 0 });
    expect(activity(s, 'createOrder')).toMatchObject({ invocations: ORDERS, processed: ORDERS, failed: 0 });
  }, 90_000);

  it('npm run status prints the same figures as a table', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(REPOSITORY_ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(REPOSITORY_ROOT, 'scripts/status.ts'), '--api', baseUrl],
      { cwd: REPOSITORY_ROOT, timeout: 30_000 },
    );
    const row = (first: string) =>
      stdout
        .split('\n')
        .find((line) => line.startsWith(first))
        ?.split(/\s+/);
    const paymentQueue = queue(await status(), 'payment').name;
    // queue, visible, in flight, delayed, oldest, DLQ
    expect(row(`${paymentQueue} `)).toEqual([paymentQueue, '0', '0', '0', '-', String(ORDERS)]);
    // function, invocations, processed, failed, running
    expect(row('payment ')?.slice(2, 4)).toEqual(['0', String(ORDERS * MAX_RECEIVE_COUNT)]);
    expect(stdout).toContain(`local runtime at ${baseUrl}`);
  }, 40_000);
});
