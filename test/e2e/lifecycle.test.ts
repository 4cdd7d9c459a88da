import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SqsSpyMessage } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderPlaced } from '../../lib/events.js';
import { placedEventOf, type StoredOrder } from '../../lib/order-store.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { handlerEntries, waitUntil } from '../support/handler-log.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The order lifecycle through the local pipeline (local/runtime.ts: HTTP API, real SQS pollers,
// Lambda-like worker environments, emulators, all built from the packaged template): orders go in
// through POST /orders and are watched through GET /orders/{id} and GET /inventory/{sku}; the
// ledger and the shipments are read from the emulated orders table. The test brings its own SKUs, so it
// does not depend on the seed data. The handlers' log lines are kept (`write`), to see when a
// record was handled, on which receive, and when a duplicate was answered from the stored result.

const STAGE_FUNCTIONS = ['inventory', 'payment', 'shipping'] as const;
/** RETRY_BACKOFF_BASE_SECONDS given to the stage functions below. */
const BACKOFF_BASE_SECONDS = 1;
/** The local stage's batching window (serverless.yml `batchWindowSeconds`): each handling waits it out. */
const BATCH_WINDOW_MS = 1_000;

/** What this suite needs from the running pipeline. */
interface Pipeline {
  baseUrl: string;
  tables: { orders: string; inventory: string; payments: string };
  topicArn: string;
  paymentQueueUrl: string;
  handle: LocalPipeline;
}

function tableOf(handle: LocalPipeline, logicalId: string): string {
  const name = handle.resources.tables[logicalId];
  if (!name) throw new Error(`The local pipeline has no ${logicalId}`);
  return name;
}

async function startPipeline(): Promise<Pipeline> {
  const handle = await startLocalPipeline({
    // Any free ports, so the suite runs next to a developer's `npm start`.
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    write: (line) => lines.push(line),
    // Shorter backoff for failed records (tok_flaky fails twice): 1 s, then 2 s.
    environmentOverrides: Object.fromEntries(
      STAGE_FUNCTIONS.map((fn) => [fn, { RETRY_BACKOFF_BASE_SECONDS: String(BACKOFF_BASE_SECONDS) }]),
    ),
  });
  if (!handle.resources.topicArn) throw new Error('The local pipeline has no order events topic');
  const paymentQueue = Object.values(handle.resources.queues).find((queue) => queue.logicalId === 'PaymentQueue');
  if (!paymentQueue) throw new Error('The local pipeline has no payment queue');
  return {
    baseUrl: handle.apiUrl.replace(/\/$/, ''),
    tables: {
      orders: tableOf(handle, 'OrdersTable'),
      inventory: tableOf(handle, 'InventoryTable'),
      payments: tableOf(handle, 'PaymentsTable'),
    },
    topicArn: handle.resources.topicArn,
    paymentQueueUrl: paymentQueue.url,
    handle,
  };
}

let pipeline: Pipeline;
let db: DynamoDBDocumentClient;
let sns: SNSClient;
let sqs: SQSClient;
/** Every line the pipeline wrote: its invocation lines and the handlers' own. */
const lines: string[] = [];
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

interface OrderBody {
  orderId: string;
  status: 'PENDING' | 'CONFIRMED' | 'CANCELLED';
  reason?: string;
  stages: Record<'inventory' | 'payment' | 'shipping', { status: string; reason?: string; timeline: Array<{ what: string }> }>;
}

/** As customer cus_e2e: a token from the local issuer, as every customer route wants. */
async function http<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const authorization = `Bearer ${await pipeline.handle.tokenFor('cus_e2e')}`;
  const response = await fetch(`${pipeline.baseUrl}${path}`, {
    method,
    headers: body === undefined ? { authorization } : { 'content-type': 'application/json', authorization },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-LIFECYCLE-${Date.now().toString(36).toUpperCase()}-${skuCounter}`;
  await db.send(
    new PutCommand({
      TableName: pipeline.tables.inventory,
      Item: { sku, name: `Lifecycle test item ${skuCounter}`, available, applying: {} },
    }),
  );
  return sku;
}

async function placeOrder(sku: string, quantity: number, token = 'tok_visa'): Promise<string> {
  const response = await http<{ orderId?: string }>('POST', '/orders', {
    items: [{ sku, quantity }],
    payment: { token },
    shippingAddress: { ...SAMPLE_ADDRESS },
  });
  expect([201, 202]).toContain(response.status);
  if (!response.body.orderId) throw new Error(`POST /orders answered ${response.status} without an orderId`);
  return response.body.orderId;
}

async function getOrder(orderId: string): Promise<OrderBody> {
  const response = await http<OrderBody>('GET', `/orders/${orderId}`);
  expect(response.status).toBe(200);
  return response.body;
}

/** Polls until the order is decided and the compensation or follow-up it causes has settled. */
async function waitForOutcome(orderId: string, timeoutMs = 90_000): Promise<OrderBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const order = await getOrder(orderId);
    if (order.status !== 'PENDING' && followUpsDone(order)) return order;
    if (Date.now() > deadline) throw new Error(`Order ${orderId} not settled in time: ${JSON.stringify(order)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** After the decision: a confirmed order's shipment dispatched; a cancelled one's participants compensated. */
function followUpsDone(order: OrderBody): boolean {
  const done = (stage: keyof OrderBody['stages'], what: string) => order.stages[stage].timeline.some((e) => e.what === what);
  if (order.status === 'CONFIRMED') return done('shipping', 'dispatched');
  return (['inventory', 'payment', 'shipping'] as const).every((stage) => order.stages[stage].status !== 'SUCCEEDED');
}

async function inventoryOf(sku: string) {
  const response = await http<{ sku: string; name: string; available: number }>('GET', `/inventory/${sku}`);
  expect(response.status).toBe(200);
  return response.body;
}

/** The order's payment entries as recorded on it: CHARGE for a charge, REFUND for its refund. */
async function ledgerOf(orderId: string): Promise<string[]> {
  const { Item } = await db.send(new GetCommand({ TableName: pipeline.tables.orders, Key: { orderId }, ConsistentRead: true }));
  return [...(Item?.payment?.outcome === 'SUCCEEDED' ? ['CHARGE'] : []), ...(Item?.refund ? ['REFUND'] : [])];
}

const chargeStanding = (ledger: string[]) => ledger.includes('CHARGE') && !ledger.includes('REFUND');

/** The order's shipment as recorded on it: PREPARED, then DISPATCHED or CANCELLED. */
async function shipmentOf(orderId: string) {
  const { Item } = await db.send(new GetCommand({ TableName: pipeline.tables.orders, Key: { orderId }, ConsistentRead: true }));
  if (Item?.shipping?.outcome !== 'SUCCEEDED') return undefined;
  return { status: Item.dispatchedAt ? 'DISPATCHED' : Item.shipmentCancelledAt ? 'CANCELLED' : 'PREPARED' };
}

describe('order lifecycle through the local pipeline', () => {
  beforeAll(async () => {
    pipeline = await startPipeline();
    const { endpoints } = pipeline.handle;
    db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: endpoints.dynamodb, region: 'us-east-1', credentials }));
    sns = new SNSClient({ endpoint: endpoints.sns, region: 'us-east-1', credentials });
    sqs = new SQSClient({ endpoint: endpoints.sqs, region: 'us-east-1', credentials });
  }, 300_000);

  afterAll(async () => {
    db?.destroy();
    sns?.destroy();
    sqs?.destroy();
    await pipeline?.handle.stop();
  });

  it('a happy order is CONFIRMED: stock sold, one charge, shipment dispatched', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 2);
    const order = await waitForOutcome(orderId);
    expect(order.status).toBe('CONFIRMED');
    expect(await inventoryOf(sku)).toMatchObject({ sku, available: 3 });
    expect(await ledgerOf(orderId)).toEqual(['CHARGE']);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'DISPATCHED' });
  }, 120_000);

  it('a customer cancels right after placing: 202, then CANCELLED with CUSTOMER_CANCELLED and nothing standing', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 2);
    // At once: the cancel races the three participants, on standard queues in any order.
    const cancelled = await http<{ status: string; reason?: string }>('POST', `/orders/${orderId}/cancel`);
    expect(cancelled).toMatchObject({ status: 202, body: { status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' } });
    const order = await waitForOutcome(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' });
    // Every delivery of the order's events handled (OrderCancelled again included, if a late result
    // asked for it): then nothing more is coming for this order.
    const spy = pipeline.handle.fauxqs.spy;
    await waitUntil(
      "every delivery of the order's events handled",
      async () => {
        const deliveries = spy.getAllMessages().filter((m) => m.service === 'sqs' && 'body' in m && m.body.includes(orderId));
        const done = new Set(deliveries.filter((m) => m.status !== 'published').map((m) => (m as { messageId: string }).messageId));
        await new Promise((resolve) => setTimeout(resolve, 500));
        return deliveries.filter((m) => m.status === 'published').every((m) => done.has((m as { messageId: string }).messageId));
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(await inventoryOf(sku)).toMatchObject({ available: 5 });
    const ledger = await ledgerOf(orderId);
    expect(!ledger.includes('CHARGE') || ledger.includes('REFUND'), 'no charge without its refund').toBe(true);
    expect((await shipmentOf(orderId))?.status ?? 'none').not.toMatch(/PREPARED|DISPATCHED/);
    // Again: the same answer. Someone else: not found.
    expect((await http('POST', `/orders/${orderId}/cancel`)).status).toBe(202);
    const stranger = await fetch(`${pipeline.baseUrl}/orders/${orderId}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await pipeline.handle.tokenFor('cus_stranger')}` },
    });
    expect(stranger.status).toBe(404);
  }, 120_000);

  it('a dispatched order cannot be cancelled: 409 naming why', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 1);
    expect((await waitForOutcome(orderId)).status).toBe('CONFIRMED');
    const refused = await http<{ error: string; message: string }>('POST', `/orders/${orderId}/cancel`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/can no longer be cancelled: its parcel was dispatched at /);
    expect((await getOrder(orderId)).status).toBe('CONFIRMED');
  }, 120_000);

  it('tok_decline is CANCELLED with PAYMENT_DECLINED: stock back, no charge, shipment cancelled', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 2, 'tok_decline');
    const order = await waitForOutcome(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    // The release is recorded first and the units go back on sale with the marker's removal, the
    // write after (lib/inventory.ts): wait for that write, not only for the record.
    await waitUntil('the units back on sale', async () => (await inventoryOf(sku)).available === 5, { timeoutMs: 10_000, intervalMs: 100 });
    expect(await inventoryOf(sku)).toMatchObject({ available: 5 });
    expect(chargeStanding(await ledgerOf(orderId))).toBe(false);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'CANCELLED' });
  }, 120_000);

  it('out of stock is CANCELLED with OUT_OF_STOCK: no charge standing, nothing reserved', async () => {
    const sku = await seedSku(1);
    const orderId = await placeOrder(sku, 3);
    const order = await waitForOutcome(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK' });
    expect(await inventoryOf(sku)).toMatchObject({ available: 1 });
    expect(chargeStanding(await ledgerOf(orderId))).toBe(false);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'CANCELLED' });
  }, 120_000);

  it('tok_flaky is CONFIRMED with exactly one charge, after two retries whose backoff doubled', async () => {
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: pipeline.paymentQueueUrl, AttributeNames: ['VisibilityTimeout'] }),
    );
    const visibilityTimeoutMs = Number(Attributes?.VisibilityTimeout) * 1000;
    expect(visibilityTimeoutMs).toBeGreaterThanOrEqual(10_000);
    const sku = await seedSku(5);
    const placedAt = Date.now();
    const orderId = await placeOrder(sku, 1, 'tok_flaky');
    // Settled within one visibility timeout of the payment queue: had a failed record come back
    // after the visibility timeout instead of its backoff, even once, it could not be.
    const order = await waitForOutcome(orderId, visibilityTimeoutMs - 1_000);
    const settledMs = Date.now() - placedAt;
    expect(order.status).toBe('CONFIRMED');
    expect(settledMs).toBeLessThan(visibilityTimeoutMs);
    expect(await ledgerOf(orderId)).toEqual(['CHARGE']);
    // The provider was asked three times for this charge: two simulated timeouts, then the charge.
    const simulator = await db.send(
      new GetCommand({ TableName: pipeline.tables.payments, Key: { orderId, entryId: 'SIMULATOR#ATTEMPTS' }, ConsistentRead: true }),
    );
    expect(simulator.Item?.attempts).toBe(3);

    // One SQS message, handled on its receives 1, 2 and 3; the first two failed with the timeout.
    const paymentLines = () =>
      handlerEntries(lines).filter((e) => e.fn === 'payment' && e.orderId === orderId && e.eventType === 'OrderPlaced');
    const handled = await waitUntil(
      "the payment stage's three 'Handling event' lines",
      () => {
        const found = paymentLines().filter((e) => e.message === 'Handling event');
        return found.length >= 3 && found.sort((a, b) => a.at - b.at);
      },
      { timeoutMs: 10_000, describe: () => paymentLines().map((e) => [e.message, e.receiveCount]) },
    );
    expect(handled.map((e) => e.receiveCount)).toEqual([1, 2, 3]);
    expect(new Set(handled.map((e) => e.messageId)).size).toBe(1);
    const failed = paymentLines()
      .filter((e) => e.message.startsWith('Record failed'))
      .sort((a, b) => a.at - b.at);
    expect(failed.map((e) => e.receiveCount)).toEqual([1, 2]);
    for (const failure of failed) expect(JSON.stringify(failure.error)).toContain('Simulated provider timeout');

    // Receive n failed, so the record stayed hidden base × 2^(n-1) seconds, and then the poller
    // gathered its batch for the batching window before handling it again. So the time from the
    // failure (logged before the backoff is set) to the next handling is at least backoff + window
    // (a backoff that does not double fails the second: 1 s + window < 2 s + window), and at most
    // that plus some scheduling: far from a visibility timeout.
    const gaps = [handled[1]!.at - failed[0]!.at, handled[2]!.at - failed[1]!.at];
    console.log(`e2e tok_flaky: settled in ${settledMs} ms; from failure to next handling ${gaps.join(' ms, then ')} ms`);
    gaps.forEach((gap, index) => {
      const backoffMs = BACKOFF_BASE_SECONDS * 2 ** index * 1000;
      expect(gap, `after failed receive ${index + 1}`).toBeGreaterThanOrEqual(backoffMs + BATCH_WINDOW_MS);
      expect(gap, `after failed receive ${index + 1}`).toBeLessThan(backoffMs + BATCH_WINDOW_MS + 4_000);
    });
  }, 120_000);

  it('50 concurrent orders for a 10-unit SKU: 10 CONFIRMED, 40 CANCELLED, stock 0, 10 charges standing', async () => {
    const sku = await seedSku(10);
    const orderIds = await Promise.all(Array.from({ length: 50 }, () => placeOrder(sku, 1)));
    const orders = await Promise.all(orderIds.map((id) => waitForOutcome(id, 240_000)));
    const confirmed = orders.filter((o) => o.status === 'CONFIRMED').length;
    const cancelled = orders.filter((o) => o.status === 'CANCELLED').length;
    const outOfStock = orders.filter((o) => o.reason === 'OUT_OF_STOCK').length;
    const stock = await inventoryOf(sku);
    const standing = (await Promise.all(orderIds.map(ledgerOf))).filter(chargeStanding).length;
    const dispatched = (await Promise.all(orderIds.map(shipmentOf))).filter((s) => s?.status === 'DISPATCHED').length;
    console.log(
      `e2e 50 orders / 10 units: ${confirmed} CONFIRMED, ${cancelled} CANCELLED (${outOfStock} OUT_OF_STOCK), ` +
        `available ${stock.available}, charges standing ${standing}, dispatched ${dispatched}`,
    );
    expect(confirmed).toBe(10);
    expect(cancelled).toBe(40);
    expect(outOfStock).toBe(40);
    expect(stock).toMatchObject({ available: 0 });
    expect(standing).toBe(10);
    expect(dispatched).toBe(10);
  }, 300_000);

  it('the same OrderPlaced published twice: one reservation, one charge, one shipment', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 2);
    await waitForOutcome(orderId);
    // The event exactly as createOrder published it (same eventId), sent to the topic once more:
    // every queue gets a second delivery of it, each with a new message id.
    const stored = await db.send(new GetCommand({ TableName: pipeline.tables.orders, Key: { orderId }, ConsistentRead: true }));
    if (!stored.Item) throw new Error(`Order ${orderId} is not stored`);
    const placed: OrderPlaced = placedEventOf(stored.Item as StoredOrder);

    const spy = pipeline.handle.fauxqs.spy;
    const stageQueues = Object.fromEntries(
      STAGE_FUNCTIONS.map((stage) => {
        const logicalId = `${stage[0]!.toUpperCase()}${stage.slice(1)}Queue`;
        const name = Object.entries(pipeline.handle.resources.queues).find(([, queue]) => queue.logicalId === logicalId)?.[0];
        if (!name) throw new Error(`The local pipeline has no ${logicalId}`);
        return [name, stage];
      }),
    ) as Record<string, (typeof STAGE_FUNCTIONS)[number]>;
    const isDeliveryOfPlaced = (m: { service: string; status: string }): m is SqsSpyMessage => {
      if (m.service !== 'sqs' || m.status !== 'published') return false;
      const message = m as SqsSpyMessage;
      if (!(message.queueName in stageQueues) || !message.body.includes(orderId)) return false;
      return (JSON.parse(message.body) as { eventId?: string }).eventId === placed.eventId;
    };
    const originals = spy.getAllMessages().filter(isDeliveryOfPlaced);
    expect(originals.map((m) => m.queueName).sort()).toEqual(Object.keys(stageQueues).sort());
    const originalIds = new Set(originals.map((m) => m.messageId));

    for (let i = 0; i < 2; i += 1) {
      await sns.send(
        new PublishCommand({
          TopicArn: pipeline.topicArn,
          Message: JSON.stringify(placed),
          MessageAttributes: {
            eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
            orderId: { DataType: 'String', StringValue: orderId },
          },
        }),
      );
    }
    // Two new deliveries to each stage queue ...
    const duplicates = (await spy.waitForMessages((m) => isDeliveryOfPlaced(m) && !originalIds.has(m.messageId), {
      count: 6,
      status: 'published',
      timeout: 30_000,
    })) as SqsSpyMessage[];
    expect(duplicates.map((m) => m.queueName).sort()).toEqual(
      Object.keys(stageQueues)
        .flatMap((name) => [name, name])
        .sort(),
    );
    // ... each received, handled successfully and deleted by its stage's poller ...
    await Promise.all(duplicates.map((m) => spy.waitForMessageWithId(m.messageId, 'consumed', 60_000)));
    // ... by being answered from the stored result (the consumers' DuplicatesSkipped path), not by
    // doing the work again.
    const duplicateLines = () => handlerEntries(lines).filter((e) => e.orderId === orderId && e.message.startsWith('Duplicate delivery'));
    await waitUntil('a duplicate-delivery line for each duplicate', () => duplicateLines().length >= duplicates.length, {
      timeoutMs: 10_000,
      describe: () => duplicateLines().map((e) => [e.fn, e.messageId]),
    });
    expect(
      duplicateLines()
        .map((e) => `${e.fn} ${String(e.messageId)}`)
        .sort(),
    ).toEqual(duplicates.map((m) => `${stageQueues[m.queueName]} ${m.messageId}`).sort());

    // Only now can "nothing changed" mean anything: the duplicates were consumed.
    const order = await getOrder(orderId);
    expect(order.status).toBe('CONFIRMED');
    expect(await inventoryOf(sku)).toMatchObject({ available: 3 });
    expect(await ledgerOf(orderId)).toEqual(['CHARGE']);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'DISPATCHED' });
    expect(order.stages.inventory.timeline.filter((e) => e.what.startsWith('reserved'))).toHaveLength(1);
    expect(order.stages.payment.timeline.filter((e) => e.what.startsWith('charged'))).toHaveLength(1);
    expect(order.stages.shipping.timeline.filter((e) => e.what.startsWith('prepared'))).toHaveLength(1);
  }, 120_000);
});
