import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderPlaced } from '../../lib/events.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';

// The order lifecycle through the local pipeline (local/runtime.ts: HTTP API, real SQS pollers,
// Lambda-like worker environments, emulators, all built from the packaged template): orders go in
// through POST /orders and are watched through GET /orders/{id} and GET /inventory/{sku}; the
// ledger and the shipments are read from the emulated tables. The test brings its own SKUs, so it
// does not depend on the seed data.

const STAGE_FUNCTIONS = ['inventory', 'payment', 'shipping'] as const;

/** What this suite needs from the running pipeline. */
interface Pipeline {
  baseUrl: string;
  tables: { orders: string; inventory: string; payments: string; shipments: string };
  topicArn: string;
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
    quiet: true,
    // Shorter backoff for failed records (tok_flaky fails twice): 1 s, then 2 s.
    environmentOverrides: Object.fromEntries(STAGE_FUNCTIONS.map((fn) => [fn, { RETRY_BACKOFF_BASE_SECONDS: '1' }])),
  });
  if (!handle.resources.topicArn) throw new Error('The local pipeline has no order events topic');
  return {
    baseUrl: handle.apiUrl.replace(/\/$/, ''),
    tables: {
      orders: tableOf(handle, 'OrdersTable'),
      inventory: tableOf(handle, 'InventoryTable'),
      payments: tableOf(handle, 'PaymentsTable'),
      shipments: tableOf(handle, 'ShipmentsTable'),
    },
    topicArn: handle.resources.topicArn,
    handle,
  };
}

let pipeline: Pipeline;
let db: DynamoDBDocumentClient;
let sns: SNSClient;
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

interface OrderBody {
  orderId: string;
  status: 'PENDING' | 'CONFIRMED' | 'CANCELLED';
  reason?: string;
  stages: Record<'inventory' | 'payment' | 'shipping', { status: string; reason?: string; timeline: Array<{ what: string }> }>;
}

async function http<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${pipeline.baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
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
      Item: { sku, name: `Lifecycle test item ${skuCounter}`, available, reserved: 0, sold: 0, applying: {} },
    }),
  );
  return sku;
}

async function placeOrder(sku: string, quantity: number, token = 'tok_visa'): Promise<string> {
  const response = await http<{ orderId?: string }>('POST', '/orders', {
    customerId: 'cus_e2e',
    items: [{ sku, quantity }],
    payment: { token },
    shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
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

/** After the decision: a confirmed order's stock is committed and shipment dispatched; a cancelled one's stages compensated. */
function followUpsDone(order: OrderBody): boolean {
  const done = (stage: keyof OrderBody['stages'], what: string) => order.stages[stage].timeline.some((e) => e.what === what);
  if (order.status === 'CONFIRMED') return done('inventory', 'committed') && done('shipping', 'dispatched');
  return (['inventory', 'payment', 'shipping'] as const).every((stage) => order.stages[stage].status !== 'SUCCEEDED');
}

async function inventoryOf(sku: string) {
  const response = await http<{ sku: string; name: string; available: number; reserved: number }>('GET', `/inventory/${sku}`);
  expect(response.status).toBe(200);
  return response.body;
}

async function ledgerOf(orderId: string): Promise<string[]> {
  const result = await db.send(
    new QueryCommand({
      TableName: pipeline.tables.payments,
      KeyConditionExpression: 'orderId = :orderId',
      ExpressionAttributeValues: { ':orderId': orderId },
      ConsistentRead: true,
    }),
  );
  // Only the ledger proper: the payment simulator keeps its state under SIMULATOR# entry ids.
  return (result.Items ?? []).map((item) => String(item.entryId)).filter((id) => !id.startsWith('SIMULATOR#')).sort();
}

const chargeStanding = (ledger: string[]) => ledger.includes('CHARGE') && !ledger.includes('REFUND');

async function shipmentOf(orderId: string) {
  const result = await db.send(new GetCommand({ TableName: pipeline.tables.shipments, Key: { orderId }, ConsistentRead: true }));
  return result.Item as { status: string; carrier: string; trackingNumber: string } | undefined;
}

describe('order lifecycle through the local pipeline', () => {
  beforeAll(async () => {
    pipeline = await startPipeline();
    const { endpoints } = pipeline.handle;
    db = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: endpoints.dynamodb, region: 'us-east-1', credentials }));
    sns = new SNSClient({ endpoint: endpoints.sns, region: 'us-east-1', credentials });
  }, 300_000);

  afterAll(async () => {
    db?.destroy();
    sns?.destroy();
    await pipeline?.handle.stop();
  });

  it('a happy order is CONFIRMED: stock sold, one charge, shipment dispatched', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 2);
    const order = await waitForOutcome(orderId);
    expect(order.status).toBe('CONFIRMED');
    expect(await inventoryOf(sku)).toMatchObject({ sku, available: 3, reserved: 0 });
    expect(await ledgerOf(orderId)).toEqual(['CHARGE']);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'DISPATCHED' });
  }, 120_000);

  it('tok_decline is CANCELLED with PAYMENT_DECLINED: stock back, no charge, shipment cancelled', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 2, 'tok_decline');
    const order = await waitForOutcome(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    expect(await inventoryOf(sku)).toMatchObject({ available: 5, reserved: 0 });
    expect(chargeStanding(await ledgerOf(orderId))).toBe(false);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'CANCELLED' });
  }, 120_000);

  it('out of stock is CANCELLED with OUT_OF_STOCK: no charge standing, nothing reserved', async () => {
    const sku = await seedSku(1);
    const orderId = await placeOrder(sku, 3);
    const order = await waitForOutcome(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK' });
    expect(await inventoryOf(sku)).toMatchObject({ available: 1, reserved: 0 });
    expect(chargeStanding(await ledgerOf(orderId))).toBe(false);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'CANCELLED' });
  }, 120_000);

  it('tok_flaky is CONFIRMED with exactly one charge, after the transient failures were retried', async () => {
    const sku = await seedSku(5);
    const orderId = await placeOrder(sku, 1, 'tok_flaky');
    const order = await waitForOutcome(orderId, 110_000);
    expect(order.status).toBe('CONFIRMED');
    expect(await ledgerOf(orderId)).toEqual(['CHARGE']);
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
        `available ${stock.available}, reserved ${stock.reserved}, charges standing ${standing}, dispatched ${dispatched}`,
    );
    expect(confirmed).toBe(10);
    expect(cancelled).toBe(40);
    expect(outOfStock).toBe(40);
    expect(stock).toMatchObject({ available: 0, reserved: 0 });
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
    const placed = stored.Item?.placedEvent as OrderPlaced | undefined;
    if (!placed) throw new Error(`Order ${orderId} has no stored OrderPlaced event`);
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
    // Give the pollers time to deliver and handle the duplicates.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const order = await getOrder(orderId);
    expect(order.status).toBe('CONFIRMED');
    expect(await inventoryOf(sku)).toMatchObject({ available: 3, reserved: 0 });
    expect(await ledgerOf(orderId)).toEqual(['CHARGE']);
    expect(await shipmentOf(orderId)).toMatchObject({ status: 'DISPATCHED' });
    expect(order.stages.inventory.timeline.filter((e) => e.what.startsWith('reserved'))).toHaveLength(1);
    expect(order.stages.payment.timeline.filter((e) => e.what.startsWith('charged'))).toHaveLength(1);
    expect(order.stages.shipping.timeline.filter((e) => e.what.startsWith('prepared'))).toHaveLength(1);
  }, 120_000);
});
