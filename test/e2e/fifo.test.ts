import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderEvent } from '../../lib/events.js';
import { decideOutcome, missingFollowUps, type StoredOrder } from '../../lib/order-store.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';
import { handlerEntries, waitUntil } from '../support/handler-log.js';

// The FIFO variant through the local pipeline (`npm start -- --fifo`): POST /orders and
// POST /orders/{orderId}/cancel, an SNS FIFO topic, SQS FIFO queues and the local poller acting as
// Lambda's FIFO event source, with faults in every consumer: records fail at random (and are
// retried), and the poller delivers records twice on purpose. Each participant must still take
// each order's events in the order they were published, and a cancelled order end with nothing
// standing. What each consumer was handed is read from its own "Handling event" log lines; what
// was published, from the emulator's record of SNS publishes.

const CONSUMERS = ['inventory', 'payment', 'shipping'] as const;
/** The event types each consumer's subscription lets through (resources/consumers.cjs). */
const FILTERS: Record<(typeof CONSUMERS)[number], string[]> = {
  inventory: ['OrderPlaced', 'OrderCancelled'],
  payment: ['OrderPlaced', 'OrderCancelled'],
  shipping: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'],
};
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

let pipeline: LocalPipeline;
let db: DynamoDBDocumentClient;
let ordersTable: string;
let inventoryTable: string;
const lines: string[] = [];

beforeAll(async () => {
  pipeline = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    queueType: 'fifo',
    write: (line) => lines.push(line),
    // One record in seven fails (at most 5 receives each, so none should reach a DLQ), one in five
    // is delivered twice; failed records are retried after 1 s, 2 s...
    consumerEnvironmentOverrides: {
      FAULT_TRANSIENT_ERROR_RATE: '0.15',
      FAULT_SEED: '14',
      LOCAL_DUPLICATE_DELIVERY_RATE: '0.2',
      RETRY_BACKOFF_BASE_SECONDS: '1',
    },
  });
  db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: pipeline.endpoints.dynamodb, region: 'us-east-1', credentials }));
  ordersTable = pipeline.resources.tables.OrdersTable!;
  inventoryTable = pipeline.resources.tables.InventoryTable!;
}, 300_000);

afterAll(async () => {
  db?.destroy();
  await pipeline?.stop();
});

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const authorization = `Bearer ${await pipeline.tokenFor('cus_fifo')}`;
  const response = await fetch(`${pipeline.apiUrl.replace(/\/$/, '')}${path}`, {
    method,
    headers: body === undefined ? { authorization } : { 'content-type': 'application/json', authorization },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-FIFO-E2E-${skuCounter}`;
  await db.send(new PutCommand({ TableName: inventoryTable, Item: { sku, name: sku, available, applying: {} } }));
  return sku;
}

async function placeOrder(sku: string): Promise<string> {
  const response = await http('POST', '/orders', {
    items: [{ sku, quantity: 2 }],
    payment: { token: 'tok_visa' },
    shippingAddress: { ...SAMPLE_ADDRESS },
  });
  expect([201, 202]).toContain(response.status);
  return String(response.body.orderId);
}

async function storedOrder(orderId: string): Promise<StoredOrder> {
  const { Item } = await db.send(new GetCommand({ TableName: ordersTable, Key: { orderId }, ConsistentRead: true }));
  return Item as StoredOrder;
}

/** Decided, with every follow-up of the decision recorded (dispatch, or each compensation). */
async function settled(orderId: string): Promise<StoredOrder | undefined> {
  const order = await storedOrder(orderId);
  return order && decideOutcome(order).outcome !== 'UNDECIDED' && missingFollowUps(order).length === 0 ? order : undefined;
}

/** Every message the emulator put on a queue has left it (handled and deleted), none sits in a DLQ. */
function everyDeliveryHandled(): boolean {
  const sqs = pipeline.fauxqs.spy.getAllMessages().filter((m) => m.service === 'sqs');
  const done = new Set(sqs.filter((m) => m.status === 'consumed').map((m) => (m as { messageId: string }).messageId));
  return sqs.filter((m) => m.status === 'published').every((m) => done.has((m as { messageId: string }).messageId));
}

/** Each order's event types as published to the topic, a republish of the same event once. */
function publishedOrder(): Map<string, string[]> {
  const byOrder = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const message of pipeline.fauxqs.spy.getAllMessages()) {
    if (message.service !== 'sns' || message.status !== 'published' || !('body' in message)) continue;
    const event = JSON.parse(message.body) as OrderEvent;
    if (seen.has(event.eventId)) continue;
    seen.add(event.eventId);
    byOrder.set(event.orderId, [...(byOrder.get(event.orderId) ?? []), event.eventType]);
  }
  return byOrder;
}

/**
 * What one consumer was handed of each order, from its "Handling event" lines in time order: a
 * retry or a duplicate delivery of the event it was just handed counts once; handing back an
 * earlier event after a later one would show as a repeat.
 */
function handedOrder(consumer: string): Map<string, string[]> {
  const handling = handlerEntries(lines)
    .map((entry, arrival) => ({ entry, arrival }))
    .filter(({ entry }) => entry.fn === consumer && entry.message === 'Handling event')
    .sort((a, b) => a.entry.at - b.entry.at || a.arrival - b.arrival);
  const byOrder = new Map<string, string[]>();
  for (const { entry } of handling) {
    const order = byOrder.get(String(entry.orderId)) ?? [];
    if (order.at(-1) !== entry.eventType) order.push(String(entry.eventType));
    byOrder.set(String(entry.orderId), order);
  }
  return byOrder;
}

describe('the FIFO variant through the local pipeline, with faults in every consumer', () => {
  const cancelledRightAway: Array<{ orderId: string; sku: string }> = [];
  const placed: string[] = [];

  it('a customer cancels right after placing: 202, then CANCELLED with CUSTOMER_CANCELLED and nothing standing', async () => {
    // The mappings held (Enabled: false) while the orders are placed and cancelled, so that each
    // cancel lands before any participant took its OrderPlaced however fast or loaded this machine
    // is (a warm pipeline once decided and dispatched an order before a cold cancelOrder answered).
    // Then, on FIFO queues, each participant takes OrderPlaced, then OrderCancelled.
    const queues = pipeline.consumers.map((consumer) => consumer.queueName);
    pipeline.disableEventSources(queues);
    try {
      for (let n = 0; n < 4; n += 1) {
        const sku = await seedSku(5);
        const orderId = await placeOrder(sku);
        placed.push(orderId);
        const cancelled = await http('POST', `/orders/${orderId}/cancel`);
        expect(cancelled).toMatchObject({ status: 202, body: { status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' } });
        cancelledRightAway.push({ orderId, sku });
      }
    } finally {
      pipeline.enableEventSources(queues);
    }
    for (const { orderId, sku } of cancelledRightAway) {
      const order = await waitUntil(`order ${orderId} settled`, () => settled(orderId), { timeoutMs: 90_000, intervalMs: 250 });
      expect(decideOutcome(order)).toMatchObject({ outcome: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' });
      const stock = await http('GET', `/inventory/${sku}`);
      expect(stock.body.available, 'stock back').toBe(5);
      expect(order.payment?.outcome !== 'SUCCEEDED' || order.refund !== undefined, 'no charge without its refund').toBe(true);
      expect(order.dispatchedAt, 'not dispatched').toBeUndefined();
    }
  }, 180_000);

  it("each participant takes each order's events in the order they were published, retries and duplicates notwithstanding", async () => {
    // More orders, some cancelled after their decision (refund, restock, shipment cancelled).
    for (let n = 0; n < 8; n += 1) {
      const orderId = await placeOrder(await seedSku(5));
      placed.push(orderId);
      if (n % 2 === 0) {
        await waitUntil(`order ${orderId} decided`, async () => decideOutcome(await storedOrder(orderId)).outcome !== 'UNDECIDED', {
          timeoutMs: 90_000,
          intervalMs: 100,
        });
        const cancel = await http('POST', `/orders/${orderId}/cancel`);
        // Dispatched already (409) or cancelled (202): either is an answer, and both keep the order.
        expect([202, 409]).toContain(cancel.status);
      }
    }
    for (const orderId of placed)
      await waitUntil(`order ${orderId} settled`, () => settled(orderId), { timeoutMs: 120_000, intervalMs: 250 });
    await waitUntil('every delivery handled', everyDeliveryHandled, { timeoutMs: 60_000, intervalMs: 250 });
    // The consumers' last log lines may trail their invocations.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const published = publishedOrder();
    for (const consumer of CONSUMERS) {
      const handed = handedOrder(consumer);
      for (const orderId of placed) {
        const expected = (published.get(orderId) ?? []).filter((type) => FILTERS[consumer].includes(type));
        expect(handed.get(orderId), `${consumer}, order ${orderId}`).toEqual(expected);
      }
    }
    // The faults did happen: records failed and were retried, records were delivered twice.
    const entries = handlerEntries(lines);
    expect(
      entries.filter((entry) => CONSUMERS.includes(entry.fn as never) && entry.level === 'WARN' && /Record failed/.test(entry.message))
        .length,
    ).toBeGreaterThan(0);
    const sources = Object.values(pipeline.invocationStats().eventSources);
    expect(sources.reduce((sum, stats) => sum + stats.duplicatedRecords, 0)).toBeGreaterThan(0);
    expect(sources.reduce((sum, stats) => sum + stats.outOfOrderSuccesses, 0)).toBe(0);
    for (const consumer of pipeline.consumers) {
      expect(pipeline.fauxqs.inspectQueue(consumer.deadLetterQueueName!)?.messages.ready ?? [], `${consumer.name} DLQ`).toHaveLength(0);
    }
  }, 240_000);
});
