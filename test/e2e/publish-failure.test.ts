import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { SpyMessage } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepShardOf, type StoredOrder, toOrderRecord } from '../../lib/order-store.js';
import { clientConfig } from '../../local/emulators.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { waitUntil } from '../support/handler-log.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// No order stuck between the table and the topic: every publish of the order API fails
// (FAULT_PUBLISH_FAILURE_RATE=1 on createOrder), so POST /orders stores the order and answers 503.
// A retry with the same Idempotency-Key names the same order (and fails to publish again); the
// scheduled sweep (sped up: every 2 s, for orders pending 1 s) publishes the stored event,
// possibly several times, and the order still ends CONFIRMED with exactly one charge. Everything is
// counted once the order has left the sweep's UnfinishedOrders index and the sweep has run since
// without touching it: after that nothing more can happen to the order.

let handle: LocalPipeline;
let db: DynamoDBDocumentClient;
let baseUrl: string;
/** Every line the pipeline and its handlers wrote. */
const lines: string[] = [];
const sku = `SKU-PUBFAIL-${Date.now().toString(36).toUpperCase()}`;

beforeAll(async () => {
  handle = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    write: (line) => lines.push(line),
    seed: false,
    scheduleScale: 30,
    environmentOverrides: {
      createOrder: { FAULT_PUBLISH_FAILURE_RATE: '1', ORDER_SWEEP_AFTER_SECONDS: '1' },
      sweepOrders: { ORDER_SWEEP_BACKOFF_BASE_SECONDS: '1' },
      ...Object.fromEntries(['inventory', 'payment', 'shipping'].map((fn) => [fn, { RETRY_BACKOFF_BASE_SECONDS: '1' }])),
    },
  });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
  db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(handle.endpoints.dynamodb)));
  await db.send(
    new PutCommand({
      TableName: handle.resources.tables.InventoryTable!,
      Item: { sku, name: 'Publish failure test item', available: 10, applying: {} },
    }),
  );
});

afterAll(async () => {
  db?.destroy();
  await handle?.stop();
});

const order = {
  items: [{ sku, quantity: 2 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { ...SAMPLE_ADDRESS },
};

/** The customer's token: POST and GET /orders want one. */
const bearer = async () => ({ authorization: `Bearer ${await handle.tokenFor('cus_pubfail')}` });

async function post(key: string) {
  const response = await fetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key, ...(await bearer()) },
    body: JSON.stringify(order),
  });
  return { status: response.status, body: (await response.json()) as { orderId?: string; status?: string; error?: string } };
}

describe('an order whose publish failed', () => {
  it('answers 503 with the orderId, keeps it on retry, and ends CONFIRMED exactly once', { timeout: 90_000 }, async () => {
    const key = `pubfail-${Date.now()}`;
    const first = await post(key);
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ error: 'ServiceUnavailable', status: 'PENDING' });
    expect(first.body.orderId).toMatch(/^ord_[0-9a-f]{32}$/);

    const retry = await post(key);
    expect(retry.status).toBe(503);
    expect(retry.body.orderId).toBe(first.body.orderId);

    const orderId = first.body.orderId!;

    // The sweep finishes it: the order leaves the UnfinishedOrders index with its last follow-up.
    const ordersTable = handle.resources.tables.OrdersTable!;
    const stored = await waitUntil(
      'the order to leave the UnfinishedOrders index',
      async () => {
        const { Item } = await db.send(new GetCommand({ TableName: ordersTable, Key: { orderId }, ConsistentRead: true }));
        const order = Item && toOrderRecord(Item as StoredOrder);
        return order && order.status !== 'PENDING' && order.sweepShard === undefined && order.sweepDueAt === undefined && order;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const indexed = await db.send(
      new QueryCommand({
        TableName: ordersTable,
        IndexName: 'UnfinishedOrders',
        KeyConditionExpression: 'sweepShard = :shard',
        ExpressionAttributeValues: { ':shard': sweepShardOf(orderId) },
      }),
    );
    expect((indexed.Items ?? []).map((item) => item.orderId)).not.toContain(orderId);
    // Left the index because it is finished: confirmed, parcel dispatched.
    const view = (await (await fetch(`${baseUrl}/orders/${orderId}`, { headers: await bearer() })).json()) as {
      status: string;
      stages: Record<string, { timeline: Array<{ what: string }> }>;
    };
    expect(stored.status).toBe('CONFIRMED');
    expect(view.status).toBe('CONFIRMED');
    expect(view.stages.shipping?.timeline.map((e) => e.what)).toContain('dispatched');

    // The sweep has gone idle for it: two whole runs since it left the index (every 2 s here).
    const sweeps = () => handle.invocationStats().functions.sweepOrders!;
    const sweepRunsSince = async (started: number) =>
      waitUntil('two sweep runs', () => sweeps().running === 0 && sweeps().invocations >= started + 2, { timeoutMs: 20_000 });
    await sweepRunsSince(sweeps().invocations);
    const spy = handle.fauxqs.spy;
    const ofOrder = (m: SpyMessage): m is Extract<SpyMessage, { body: string }> => 'body' in m && m.body.includes(orderId);
    const publishedEvents = () =>
      spy
        .getAllMessages()
        .filter((m) => m.service === 'sns' && ofOrder(m))
        .map((m) => (JSON.parse((m as { body: string }).body) as { eventType: string }).eventType);
    const publishedBefore = publishedEvents();
    // createOrder never published (every publish of it fails): the sweep did, at least once.
    expect(publishedBefore.filter((type) => type === 'OrderPlaced').length).toBeGreaterThanOrEqual(1);
    expect(publishedBefore).toContain('OrderConfirmed');

    // Once the order is decided, a retry with the same key is a replay: 202, same order, no publish.
    const late = await post(key);
    expect(late.status).toBe(202);
    expect(late.body).toMatchObject({ orderId, status: 'CONFIRMED' });
    await sweepRunsSince(sweeps().invocations);
    expect(publishedEvents()).toEqual(publishedBefore);

    // Every delivery of the order's events, republished ones included, was handled and deleted:
    // none waits on a queue, none went to a DLQ.
    const deliveries = spy.getAllMessages().filter((m) => m.service === 'sqs' && m.status === 'published' && ofOrder(m));
    // (Filter policies: OrderPlaced reaches the three participants' queues, OrderConfirmed shipping's alone.)
    const count = (type: string) => publishedBefore.filter((t) => t === type).length;
    expect(deliveries).toHaveLength(3 * count('OrderPlaced') + count('OrderConfirmed'));
    await Promise.all(deliveries.map((m) => spy.waitForMessageWithId((m as { messageId: string }).messageId, 'consumed', 30_000)));
    expect(spy.getAllMessages().filter((m) => m.service === 'sqs' && m.status === 'dlq' && ofOrder(m))).toEqual([]);

    // And after all that, one charge: recorded once on the order, made once by the provider.
    expect(stored.payment).toMatchObject({ outcome: 'SUCCEEDED' });
    expect(stored.refund).toBeUndefined();
    const charges = lines.filter((line) => line.includes('Simulated provider: charged') && line.includes(orderId));
    expect(charges).toHaveLength(1);
  });
});
