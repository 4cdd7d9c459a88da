import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from '../../local/emulators.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';
import { waitUntil } from '../support/handler-log.js';

// The express lane through the whole local pipeline. A standard backlog is built deterministically:
// the standard queues' event source mappings start disabled (as a mapping deployed with Enabled:
// false), so every standard order's OrderPlaced waits in them, while the express queues' mappings
// run. Express orders placed after the backlog are decided and dispatched while the backlog is
// still there, untouched (they overtake it: their events, the participants' OrderConfirmed
// included, travel in their own lane); once the standard mappings are enabled, every standard
// order is decided too (nothing starves: each lane has its own queue and its own concurrency).

const STANDARD_ORDERS = 20;
const EXPRESS_ORDERS = 3;
const CONSUMERS = ['inventory', 'payment', 'shipping'];
const STACK = 'order-pipeline-local';

interface OrderView {
  orderId: string;
  status: 'PENDING' | 'CONFIRMED' | 'CANCELLED';
  shippingSpeed: 'standard' | 'express';
  decidedAt?: string;
  stages: { shipping: { timeline: Array<{ what: string }> } };
}

let handle: LocalPipeline;
let baseUrl: string;
let authorization: string;
let sqs: SQSClient;

beforeAll(async () => {
  handle = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    quiet: true,
    disabledEventSources: CONSUMERS.map((name) => `${STACK}-${name}`),
  });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
  authorization = `Bearer ${await handle.tokenFor('cus_express_lane')}`;
  sqs = new SQSClient(clientConfig(handle.endpoints.sqs));
  // A SKU per order: no order waits on another's stock write.
  const db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(handle.endpoints.dynamodb)));
  for (let i = 0; i < STANDARD_ORDERS + EXPRESS_ORDERS; i++) {
    await db.send(
      new PutCommand({
        TableName: handle.resources.tables.InventoryTable!,
        Item: { sku: `SKU-LANE-${i}`, name: `Lane test ${i}`, available: 5, applying: {} },
      }),
    );
  }
  db.destroy();
}, 180_000);

afterAll(async () => {
  sqs?.destroy();
  await handle?.stop();
});

async function placeOrder(index: number, express: boolean): Promise<string> {
  const response = await fetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({
      items: [{ sku: `SKU-LANE-${index}`, quantity: 1 }],
      payment: { token: 'tok_visa' },
      shippingAddress: { ...SAMPLE_ADDRESS },
      ...(express ? { shippingSpeed: 'express' } : {}),
    }),
  });
  // 202: accepted, its decision to come.
  expect(response.status).toBe(202);
  return ((await response.json()) as { orderId: string }).orderId;
}

async function getOrder(orderId: string): Promise<OrderView> {
  const response = await fetch(`${baseUrl}/orders/${orderId}`, { headers: { authorization } });
  expect(response.status).toBe(200);
  return (await response.json()) as OrderView;
}

async function visibleIn(queueName: string): Promise<number> {
  const queue = handle.resources.queues[queueName]!;
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['ApproximateNumberOfMessages'] }),
  );
  return Number(Attributes.ApproximateNumberOfMessages ?? 0);
}

const dispatched = (order: OrderView) => order.stages.shipping.timeline.some((entry) => entry.what === 'dispatched');

describe('the express lane', () => {
  it('decides express orders ahead of a standard backlog, and every standard order still finishes', async () => {
    const standard: string[] = [];
    for (let i = 0; i < STANDARD_ORDERS; i++) standard.push(await placeOrder(i, false));
    // The backlog: every standard order's OrderPlaced waits in each consumer's standard queue.
    for (const name of CONSUMERS) {
      await waitUntil(
        `${STANDARD_ORDERS} OrderPlaced in the ${name} queue`,
        async () => (await visibleIn(`${STACK}-${name}`)) === STANDARD_ORDERS,
        {
          timeoutMs: 30_000,
        },
      );
    }
    const express: string[] = [];
    for (let i = 0; i < EXPRESS_ORDERS; i++) express.push(await placeOrder(STANDARD_ORDERS + i, true));

    // The express orders are decided and dispatched (their OrderConfirmed took the express lane
    // too), while the backlog is exactly as it was.
    const decidedExpress = await waitUntil(
      'the express orders confirmed and dispatched',
      async () => {
        const orders = await Promise.all(express.map(getOrder));
        return orders.every((order) => order.status === 'CONFIRMED' && dispatched(order)) && orders;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(decidedExpress.map((order) => order.shippingSpeed)).toEqual(express.map(() => 'express'));
    const waiting = await Promise.all(standard.map(getOrder));
    expect(waiting.map((order) => order.status)).toEqual(standard.map(() => 'PENDING'));
    expect(waiting.map((order) => order.shippingSpeed)).toEqual(standard.map(() => 'standard'));
    for (const name of CONSUMERS) expect(await visibleIn(`${STACK}-${name}`), name).toBe(STANDARD_ORDERS);
    // No express event went to a standard queue: the backlog holds the standard orders' events alone.

    // The standard lane runs again: every standard order is decided and dispatched, after every express one.
    handle.enableEventSources(CONSUMERS.map((name) => `${STACK}-${name}`));
    const decidedStandard = await waitUntil(
      'every standard order confirmed and dispatched',
      async () => {
        const orders = await Promise.all(standard.map(getOrder));
        return orders.every((order) => order.status === 'CONFIRMED' && dispatched(order)) && orders;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const lastExpress = Math.max(...decidedExpress.map((order) => Date.parse(order.decidedAt!)));
    for (const order of decidedStandard) expect(Date.parse(order.decidedAt!), order.orderId).toBeGreaterThan(lastExpress);
  }, 240_000);
});
