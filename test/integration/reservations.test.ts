import { randomUUID } from 'node:crypto';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig, LOCAL_ACCOUNT_ID, LOCAL_REGION, startEmulators, type Emulators } from '../../local/emulators.js';
import { packageStack } from '../../local/package-stack.js';
import { provisionStack, type ProvisionedResources } from '../../local/provision.js';
import { readTemplate, StackResolver } from '../../local/template.js';
import type { OrderConfirmed } from '../../lib/events.js';
import type { LineState, Operation } from '../../lib/inventory.js';
import type { OrderItem } from '../../lib/order.js';
import { lambdaContext, sqsEvent, sqsRecord } from '../support/sqs-events.js';

// Reservations on dynalite, in the tables the packaged template declares (so the code's keys are the
// template's): a hot SKU's item stays small whatever number of orders wait on it, and each step of
// an operation can be interrupted and retried without applying anything twice.

type Inventory = typeof import('../../lib/inventory.js');
type Orders = typeof import('../../lib/orders.js');

let emulators: Emulators;
let resources: ProvisionedResources;
let raw: DynamoDBClient;
let db: DynamoDBDocumentClient;
let inventory: Inventory;
let orders: Orders;
let tables: { inventory: string; reservations: string };

beforeAll(async () => {
  const packaged = await packageStack({ stage: 'local' });
  const template = await readTemplate(packaged.templatePath);
  const resolver = new StackResolver(template, { region: LOCAL_REGION, accountId: LOCAL_ACCOUNT_ID, partition: 'aws', stackName: `${packaged.serviceName}-local` });
  emulators = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
  const sqs = new SQSClient(clientConfig(emulators.endpoints.sqs));
  const sns = new SNSClient(clientConfig(emulators.endpoints.sns));
  raw = new DynamoDBClient(clientConfig(emulators.endpoints.dynamodb));
  resources = await provisionStack(resolver, { sqs, sns, dynamodb: raw });
  sqs.destroy();
  sns.destroy();
  db = DynamoDBDocumentClient.from(raw);
  const table = (id: string) => {
    const name = resources.tables[id];
    if (!name) throw new Error(`The template declares no ${id}`);
    return name;
  };
  tables = { inventory: table('InventoryTable'), reservations: table('ReservationsTable') };

  Object.assign(process.env, {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: emulators.endpoints.dynamodb,
    AWS_ENDPOINT_URL_SQS: emulators.endpoints.sqs,
    AWS_ENDPOINT_URL_SNS: emulators.endpoints.sns,
    INVENTORY_TABLE: tables.inventory,
    RESERVATIONS_TABLE: tables.reservations,
    ORDERS_TABLE: table('OrdersTable'),
    IDEMPOTENCY_TABLE: table('IdempotencyTable'),
    ORDER_REQUESTS_TABLE: table('OrderRequestsTable'),
    PAYMENT_TOKENS_TABLE: table('PaymentTokensTable'),
    ORDER_EVENTS_TOPIC_ARN: resources.topicArn ?? '',
    POWERTOOLS_LOG_LEVEL: process.env.DEBUG_LOG ?? 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  [inventory, orders] = await Promise.all([import('../../lib/inventory.js'), import('../../lib/orders.js')]);
}, 180_000);

afterAll(async () => {
  raw?.destroy();
  await emulators?.stop();
});

const newOrderId = () => `ord_${randomUUID().replaceAll('-', '')}`;

let skuCounter = 0;
async function seedSku(available: number, fields: Record<string, unknown> = {}): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-RES-${skuCounter}`;
  await putStock(sku, { available, ...fields });
  return sku;
}

/** Writes a stock item as it would stand at some moment: counters and the markers given. */
async function putStock(
  sku: string,
  { available, reserved = 0, sold = 0, applying = {} }: { available: number; reserved?: number; sold?: number; applying?: Record<string, Operation> },
): Promise<void> {
  await db.send(new PutCommand({ TableName: tables.inventory, Item: { sku, name: `Item ${sku}`, available, reserved, sold, applying } }));
}

async function putLine(orderId: string, sku: string, quantity: number, state: LineState, shortSku?: string): Promise<void> {
  await db.send(
    new PutCommand({
      TableName: tables.reservations,
      Item: { orderId, sku, quantity, state, at: new Date().toISOString(), ...(shortSku ? { shortSku } : {}) },
    }),
  );
}

async function stock(sku: string) {
  const item = await inventory.findStockItem(sku);
  if (!item) throw new Error(`no ${sku}`);
  return { available: item.available, reserved: item.reserved, sold: item.sold, applying: item.applying };
}

/** The stock item as DynamoDB stores it (attribute-value JSON), as its size is billed and limited. */
async function storedStockItem(sku: string): Promise<string> {
  const { Item } = await raw.send(new GetItemCommand({ TableName: tables.inventory, Key: { sku: { S: sku } }, ConsistentRead: true }));
  return JSON.stringify(Item);
}

async function inBatches<T>(values: T[], size: number, run: (value: T) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < values.length; start += size) await Promise.all(values.slice(start, start + size).map(run));
}

describe('a hot SKU', () => {
  it('300 orders pending on one SKU: its item stays under 1 KB, holds no per-order key, and the counters add up', async () => {
    const sku = await seedSku(1000);
    const pending = Array.from({ length: 300 }, (_, i) => ({ orderId: newOrderId(), items: [{ sku, quantity: 1 + (i % 3) }] }));
    const reserveAll = (batch: typeof pending) =>
      inBatches(batch, 10, async ({ orderId, items }) => expect(await inventory.reserveInventory(orderId, items)).toEqual({ outcome: 'reserved', lines: 1 }));

    await reserveAll(pending.slice(0, 10));
    const after10 = await storedStockItem(sku);
    await reserveAll(pending.slice(10));
    const after300 = await storedStockItem(sku);
    const units = pending.reduce((sum, order) => sum + order.items[0]!.quantity, 0);
    console.log(`hot SKU: stock item ${Buffer.byteLength(after10)} bytes with 10 orders pending, ${Buffer.byteLength(after300)} bytes with 300 (${units} units reserved)`);

    // The old layout added an entry of about 40 bytes per pending order: ~12 KB here, 400 KB at ~10,000.
    expect(Buffer.byteLength(after300)).toBeLessThan(1024);
    expect(Math.abs(Buffer.byteLength(after300) - Buffer.byteLength(after10))).toBeLessThanOrEqual(4);
    for (const { orderId } of pending) expect(after300).not.toContain(orderId);
    expect(await stock(sku)).toEqual({ available: 1000 - units, reserved: units, sold: 0, applying: {} });
    const ids = new Set(pending.map((order) => order.orderId));
    expect((await inventory.heldReservations(db, tables, [sku], ids)).get(sku)).toBe(300);

    // Every one of them is then decided: half sold, half given back.
    const [confirmed, cancelled] = [pending.filter((_, i) => i % 2 === 0), pending.filter((_, i) => i % 2 === 1)];
    await inBatches(confirmed, 10, async ({ orderId, items }) => expect(await inventory.commitReservation(orderId, items)).toBe(1));
    await inBatches(cancelled, 10, async ({ orderId, items }) => expect(await inventory.releaseReservation(orderId, items)).toBe(1));
    const soldUnits = confirmed.reduce((sum, order) => sum + order.items[0]!.quantity, 0);
    expect(await stock(sku)).toEqual({ available: 1000 - soldUnits, reserved: 0, sold: soldUnits, applying: {} });
    expect((await inventory.heldReservations(db, tables, [sku], ids)).get(sku)).toBe(0);
    expect(Buffer.byteLength(await storedStockItem(sku))).toBeLessThan(1024);
  }, 120_000);
});

describe('a crash between two steps heals on retry, nothing applied twice', () => {
  // One line of 3 units on a SKU of 10: the stock and the line before and after each operation.
  const BEFORE_RESERVE = { available: 10, reserved: 0, sold: 0 };
  const RESERVED = { available: 7, reserved: 3, sold: 0 };
  const cases: Array<{ op: Operation; before: typeof RESERVED; after: typeof RESERVED; from?: LineState; to: LineState }> = [
    { op: 'reserve', before: BEFORE_RESERVE, after: RESERVED, to: 'RESERVED' },
    { op: 'commit', before: RESERVED, after: { available: 7, reserved: 0, sold: 3 }, from: 'RESERVED', to: 'COMMITTED' },
    { op: 'release', before: RESERVED, after: BEFORE_RESERVE, from: 'RESERVED', to: 'RELEASED' },
  ];
  const run = (op: Operation, orderId: string, items: OrderItem[]) =>
    op === 'reserve' ? inventory.reserveInventory(orderId, items) : op === 'commit' ? inventory.commitReservation(orderId, items) : inventory.releaseReservation(orderId, items);

  it.each(cases)('$op, crashed after step 2 (counters and marker written, line not): the retry finishes the line', async ({ op, after, from, to }) => {
    const orderId = newOrderId();
    const sku = await seedSku(0);
    await putStock(sku, { ...after, applying: { [orderId]: op } });
    if (from) await putLine(orderId, sku, 3, from);

    const retried = await run(op, orderId, [{ sku, quantity: 3 }]);
    expect(retried).toEqual(op === 'reserve' ? { outcome: 'reserved', lines: 1 } : 1);
    expect(await stock(sku)).toEqual({ ...after, applying: {} });
    expect(await inventory.findReservationLine(orderId, sku)).toMatchObject({ quantity: 3, state: to });
    // And once more, as a further redelivery would.
    await run(op, orderId, [{ sku, quantity: 3 }]);
    expect(await stock(sku)).toEqual({ ...after, applying: {} });
  });

  it.each(cases)('$op, crashed after step 3 (line written, marker left): the retry only removes the marker', async ({ op, after, to }) => {
    const orderId = newOrderId();
    const sku = await seedSku(0);
    await putStock(sku, { ...after, applying: { [orderId]: op } });
    await putLine(orderId, sku, 3, to);

    const retried = await run(op, orderId, [{ sku, quantity: 3 }]);
    expect(retried).toEqual(op === 'reserve' ? { outcome: 'reserved', lines: 1 } : 0);
    expect(await stock(sku)).toEqual({ ...after, applying: {} });
    expect(await inventory.findReservationLine(orderId, sku)).toMatchObject({ quantity: 3, state: to });
  });

  it.each(cases)('$op, run whole from its starting state, moves the counters once', async ({ op, before, after, from, to }) => {
    const orderId = newOrderId();
    const sku = await seedSku(0);
    await putStock(sku, before);
    if (from) await putLine(orderId, sku, 3, from);
    await run(op, orderId, [{ sku, quantity: 3 }]);
    await run(op, orderId, [{ sku, quantity: 3 }]);
    expect(await stock(sku)).toEqual({ ...after, applying: {} });
    expect(await inventory.findReservationLine(orderId, sku)).toMatchObject({ state: to });
  });

  it('an out-of-stock release crashed half done, the short SKU restocked since: the retry still reports out of stock and releases once', async () => {
    // Left by an attempt that found B short, recorded B as the short line, gave A's 2 units back
    // (step 2 of its release) and crashed before writing A's line.
    const orderId = newOrderId();
    const a = await seedSku(0);
    const b = await seedSku(0);
    await putStock(a, { available: 5, reserved: 0, applying: { [orderId]: 'release' } });
    await putLine(orderId, a, 2, 'RESERVED');
    await putLine(orderId, b, 2, 'RELEASED', b);
    await putStock(b, { available: 10 }); // restocked meanwhile

    const retried = await inventory.reserveInventory(orderId, [
      { sku: a, quantity: 2 },
      { sku: b, quantity: 2 },
    ]);
    // Reading A as "reserved" (its line says so) would reserve B now and report the order reserved
    // with A's units already given back: a later commit would take them a second time.
    expect(retried).toEqual({ outcome: 'out-of-stock', sku: b, released: 1 });
    expect(await stock(a)).toEqual({ available: 5, reserved: 0, sold: 0, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, reserved: 0, sold: 0, applying: {} });
    expect(await inventory.findReservationLine(orderId, a)).toMatchObject({ state: 'RELEASED', shortSku: b });
    expect(await inventory.commitReservation(orderId, [{ sku: a, quantity: 2 }])).toBe(0);
    expect(await stock(a)).toMatchObject({ available: 5, reserved: 0, sold: 0 });
  });

  it('a release half done with no short line recorded is finished, never read as reserved', async () => {
    // What releasing without first recording the short line would leave: A's line still RESERVED,
    // its units given back. Read as reserved, the retry would reserve the restocked B and report the
    // order reserved; a later commit would then take A's 2 units from other orders' reservations.
    const orderId = newOrderId();
    const a = await seedSku(0);
    const b = await seedSku(10);
    await putStock(a, { available: 5, reserved: 0, applying: { [orderId]: 'release' } });
    await putLine(orderId, a, 2, 'RESERVED');

    const retried = await inventory.reserveInventory(orderId, [
      { sku: a, quantity: 2 },
      { sku: b, quantity: 2 },
    ]);
    expect(retried).toMatchObject({ outcome: 'out-of-stock' });
    expect(await stock(a)).toEqual({ available: 5, reserved: 0, sold: 0, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, reserved: 0, sold: 0, applying: {} });
    expect(await inventory.findReservationLine(orderId, a)).toMatchObject({ state: 'RELEASED' });
  });

  it('a commit meeting a release in flight on the same line refuses instead of applying both', async () => {
    // Not reachable through the saga (an order is confirmed or cancelled, not both), but a marker
    // is only ever overwritten when it is a finished reserve's, so a bug here cannot sell units that
    // were given back.
    const orderId = newOrderId();
    const sku = await seedSku(0);
    // This order's 3 units are given back already; the 3 reserved are another order's.
    await putStock(sku, { available: 10, reserved: 3, applying: { [orderId]: 'release' } });
    await putLine(orderId, sku, 3, 'RESERVED');
    await expect(inventory.commitReservation(orderId, [{ sku, quantity: 3 }])).rejects.toBeInstanceOf(inventory.InventoryInconsistencyError);
    expect(await stock(sku)).toEqual({ available: 10, reserved: 3, sold: 0, applying: { [orderId]: 'release' } });
  });

  it('crashed after recording the short line, before releasing: the retry releases, even with the short SKU restocked', async () => {
    const orderId = newOrderId();
    const a = await seedSku(0);
    const b = await seedSku(0);
    await putStock(a, { available: 3, reserved: 2 });
    await putLine(orderId, a, 2, 'RESERVED');
    await putLine(orderId, b, 2, 'RELEASED', b);
    await putStock(b, { available: 10 });

    const retried = await inventory.reserveInventory(orderId, [
      { sku: a, quantity: 2 },
      { sku: b, quantity: 2 },
    ]);
    expect(retried).toEqual({ outcome: 'out-of-stock', sku: b, released: 1 });
    expect(await stock(a)).toEqual({ available: 5, reserved: 0, sold: 0, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, reserved: 0, sold: 0, applying: {} });
  });
});

describe('the operations', () => {
  it('out of stock on the second of three lines releases the first, leaves the third alone, and stays out of stock', async () => {
    const [a, b, c] = [await seedSku(5), await seedSku(1), await seedSku(5)];
    const orderId = newOrderId();
    const items = [
      { sku: a, quantity: 2 },
      { sku: b, quantity: 2 },
      { sku: c, quantity: 2 },
    ];
    expect(await inventory.reserveInventory(orderId, items)).toEqual({ outcome: 'out-of-stock', sku: b, released: 1 });
    expect(await stock(a)).toEqual({ available: 5, reserved: 0, sold: 0, applying: {} });
    expect(await stock(b)).toEqual({ available: 1, reserved: 0, sold: 0, applying: {} });
    expect(await stock(c)).toEqual({ available: 5, reserved: 0, sold: 0, applying: {} });
    expect(await inventory.findReservationLine(orderId, a)).toMatchObject({ quantity: 2, state: 'RELEASED', shortSku: b });
    expect(await inventory.findReservationLine(orderId, b)).toMatchObject({ quantity: 2, state: 'RELEASED', shortSku: b });
    expect(await inventory.findReservationLine(orderId, c)).toBeUndefined();

    // Redelivered after B was restocked: the order was found out of stock, and stays so.
    await putStock(b, { available: 10 });
    expect(await inventory.reserveInventory(orderId, items)).toEqual({ outcome: 'out-of-stock', sku: b, released: 0 });
    expect(await stock(a)).toMatchObject({ available: 5, reserved: 0 });
    expect(await stock(b)).toMatchObject({ available: 10, reserved: 0 });
    expect(await stock(c)).toMatchObject({ available: 5, reserved: 0 });
  });

  it('commit and release after reserve move the counters once; the other one then does nothing', async () => {
    const sku = await seedSku(10);
    const [sold, given] = [newOrderId(), newOrderId()];
    expect(await inventory.reserveInventory(sold, [{ sku, quantity: 3 }])).toEqual({ outcome: 'reserved', lines: 1 });
    expect(await inventory.reserveInventory(given, [{ sku, quantity: 4 }])).toEqual({ outcome: 'reserved', lines: 1 });
    expect(await stock(sku)).toEqual({ available: 3, reserved: 7, sold: 0, applying: {} });

    expect(await inventory.commitReservation(sold, [{ sku, quantity: 3 }])).toBe(1);
    expect(await inventory.releaseReservation(given, [{ sku, quantity: 4 }])).toBe(1);
    expect(await stock(sku)).toEqual({ available: 7, reserved: 0, sold: 3, applying: {} });
    expect(await inventory.findReservationLine(sold, sku)).toMatchObject({ quantity: 3, state: 'COMMITTED' });
    expect(await inventory.findReservationLine(given, sku)).toMatchObject({ quantity: 4, state: 'RELEASED' });
    expect((await inventory.findReservationLine(given, sku))?.shortSku).toBeUndefined();

    // Redeliveries, and the opposite operation on each: nothing.
    expect(await inventory.commitReservation(sold, [{ sku, quantity: 3 }])).toBe(0);
    expect(await inventory.releaseReservation(given, [{ sku, quantity: 4 }])).toBe(0);
    expect(await inventory.releaseReservation(sold, [{ sku, quantity: 3 }])).toBe(0);
    expect(await inventory.commitReservation(given, [{ sku, quantity: 4 }])).toBe(0);
    expect(await inventory.releaseReservation(newOrderId(), [{ sku, quantity: 1 }])).toBe(0);
    expect(await stock(sku)).toEqual({ available: 7, reserved: 0, sold: 3, applying: {} });
  });

  it('a reserve redelivered after the commit changes nothing', async () => {
    const sku = await seedSku(5);
    const orderId = newOrderId();
    await inventory.reserveInventory(orderId, [{ sku, quantity: 2 }]);
    expect(await inventory.commitReservation(orderId, [{ sku, quantity: 2 }])).toBe(1);
    expect(await inventory.reserveInventory(orderId, [{ sku, quantity: 2 }])).toEqual({ outcome: 'reserved', lines: 1 });
    expect(await stock(sku)).toEqual({ available: 3, reserved: 0, sold: 2, applying: {} });
    expect(await inventory.findReservationLine(orderId, sku)).toMatchObject({ state: 'COMMITTED' });
  });
});

describe('the inventory consumer', () => {
  it('turns away a concurrent duplicate with its in-progress idempotency record, and commits once', async () => {
    // The operations above are safe against a crash and a later retry, not against two attempts at
    // once: that is the idempotency record's job (docs/decisions.md). A batch holding one event
    // twice runs both records at the same time.
    const sku = await seedSku(10);
    const stored = await orders.storeNewOrder(
      'cus_reservations',
      {
        items: [{ sku, quantity: 4 }],
        payment: { token: 'tok_visa' },
        shippingAddress: { name: 'Ada', line1: '1 Main St', city: 'London', postalCode: 'N1', country: 'GB' },
      },
      randomUUID(),
    );
    if (stored.outcome !== 'created') throw new Error(`expected a new order, got ${stored.outcome}`);
    const { order } = stored;
    await inventory.reserveInventory(order.orderId, order.items);
    const confirmed: OrderConfirmed = {
      eventId: `${order.orderId}:OrderConfirmed`,
      eventType: 'OrderConfirmed',
      orderId: order.orderId,
      occurredAt: new Date().toISOString(),
      data: {},
    };
    const { handler } = (await import('../../functions/inventory.js')) as { handler: (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse> };
    const first = sqsRecord(confirmed);
    const duplicate = sqsRecord(confirmed);
    const response = await handler(sqsEvent(first, duplicate), lambdaContext());
    expect(response.batchItemFailures).toHaveLength(1);
    expect(await stock(sku)).toEqual({ available: 6, reserved: 0, sold: 4, applying: {} });

    // The turned-away record comes back later and is answered from the stored result.
    const retry = await handler(sqsEvent(sqsRecord(confirmed, {}, 2)), lambdaContext());
    expect(retry.batchItemFailures).toEqual([]);
    expect(await stock(sku)).toEqual({ available: 6, reserved: 0, sold: 4, applying: {} });
  });
});
