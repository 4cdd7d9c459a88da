import { randomUUID } from 'node:crypto';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderCancelled, OrderPlaced } from '../../lib/events.js';
import { MAX_ITEMS, MAX_QUANTITY, type OrderItem } from '../../lib/order-schema.js';
import type { OrderRecord, StoredOrder } from '../../lib/order-store.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { storeCreatedOrder } from '../support/stored-order.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The stock protocol of lib/inventory.ts on dynalite, in the tables the packaged template declares:
// one counter per SKU, a marker `applying.<orderId> = op:attempt:until` while an operation is in
// flight, the result recorded once on the order. What a customer and the shop care about: units
// are never sold twice nor lost, every order gets one answer, and a popular SKU's item stays small.
// Crashes between the steps are written by hand as the state they would leave.

let stack: ProvisionedStack;
let inventory: typeof import('../../lib/inventory.js');
let orders: typeof import('../../lib/order-store.js');
let outcome: typeof import('../../lib/order-outcome.js');
let awsClients: typeof import('../../lib/aws-clients.js');

/** The consumers' function timeout: a marker's `until` is twice this after its attempt started. */
const CONSUMER_TIMEOUT_SECONDS = 30;
const QUANTITY = 3;

beforeAll(async () => {
  stack = await startProvisionedStack();
  Object.assign(process.env, {
    CONSUMER_TIMEOUT_SECONDS: String(CONSUMER_TIMEOUT_SECONDS),
    POWERTOOLS_LOG_LEVEL: process.env.DEBUG_LOG ?? 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  // Imported once the environment points at the emulators.
  [inventory, orders, outcome, awsClients] = await Promise.all([
    import('../../lib/inventory.js'),
    import('../../lib/order-store.js'),
    import('../../lib/order-outcome.js'),
    import('../../lib/aws-clients.js'),
  ]);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

const inventoryTable = () => stack.table('InventoryTable');
const ordersTable = () => stack.table('OrdersTable');

let skuCounter = 0;
/** A new SKU with `available` units and no operation in flight (the `applying` map must exist). */
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-STOCK-${skuCounter}`;
  await putStock(sku, available);
  return sku;
}

/** Writes a stock item as it would stand at some moment: the counter and the markers given. */
async function putStock(sku: string, available: number, applying: Record<string, string> = {}): Promise<void> {
  await stack.db.send(new PutCommand({ TableName: inventoryTable(), Item: { sku, name: `Item ${sku}`, available, applying } }));
}

/** The stock as stored, read with the test's own client (never through the code under test). */
async function stock(sku: string): Promise<{ available: number; applying: Record<string, string> }> {
  const { Item } = await stack.db.send(new GetCommand({ TableName: inventoryTable(), Key: { sku }, ConsistentRead: true }));
  if (!Item) throw new Error(`no stock item ${sku}`);
  return { available: Item.available as number, applying: Item.applying as Record<string, string> };
}

/** The order item as stored. */
async function storedOrder(orderId: string): Promise<StoredOrder | undefined> {
  const { Item } = await stack.db.send(new GetCommand({ TableName: ordersTable(), Key: { orderId }, ConsistentRead: true }));
  return Item as StoredOrder | undefined;
}

/** Sets attributes on an order item by hand, as an earlier attempt's write would have. */
async function setOnOrder(orderId: string, values: Record<string, unknown>): Promise<void> {
  const names = Object.keys(values);
  await stack.db.send(
    new UpdateCommand({
      TableName: ordersTable(),
      Key: { orderId },
      UpdateExpression: `SET ${names.map((_, i) => `#n${i} = :v${i}`).join(', ')}`,
      ExpressionAttributeNames: Object.fromEntries(names.map((name, i) => [`#n${i}`, name])),
      ExpressionAttributeValues: Object.fromEntries(names.map((name, i) => [`:v${i}`, values[name]])),
    }),
  );
}

/** A marker as an attempt writes it; `until` relative to now. */
function marker(op: 'reserve' | 'release', attempt: string, untilFromNowMs: number): string {
  return `${op}:${attempt}:${Date.now() + untilFromNowMs}`;
}
const DEAD = -1000;
const LIVE = 60_000;

const ADDRESS = SAMPLE_ADDRESS;

/** An order stored as the order API stores it, undecided. */
async function placeOrder(items: OrderItem[]): Promise<OrderRecord> {
  return storeCreatedOrder('cus_stock', { items, payment: { token: 'tok_visa' }, shippingAddress: ADDRESS });
}

/** OrderPlaced as the order API published it. */
const placedEvent = (order: OrderRecord): OrderPlaced => orders.placedEventOf(order);

/** A placed order whose inventory result is SUCCEEDED (units taken), then cancelled by a payment decline. */
async function cancelledAfterReserving(items: OrderItem[]): Promise<{ order: OrderRecord; cancelled: OrderCancelled }> {
  const placed = await placeOrder(items);
  expect((await inventory.reserveStockForOrder(placedEvent(placed))).recorded).toBe('SUCCEEDED');
  const at = new Date().toISOString();
  expect(await outcome.recordResult(placed.orderId, 'payment', { outcome: 'REJECTED', at, declineCode: 'card_declined' })).toBeDefined();
  const decided = await outcome.recordResult(placed.orderId, 'shipping', { outcome: 'SUCCEEDED', at });
  if (!decided) throw new Error('the shipping result was not recorded');
  expect(decided.status).toBe('CANCELLED');
  const event = outcome.outcomeEventOf(decided);
  if (event?.eventType !== 'OrderCancelled') throw new Error(`expected OrderCancelled, got ${event?.eventType}`);
  return { order: decided, cancelled: event };
}

/** A delivery retried while the stock is busy with another attempt at the same order, as SQS would. */
async function deliverUntilDone<T>(run: () => Promise<T>, tries = 200): Promise<{ value: T; busy: number }> {
  for (let busy = 0; ; busy += 1) {
    try {
      return { value: await run(), busy };
    } catch (error) {
      if (!(error instanceof inventory.StockBusyError) || busy >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function inBatches<T, R>(values: T[], size: number, run: (value: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let start = 0; start < values.length; start += size)
    results.push(...(await Promise.all(values.slice(start, start + size).map(run))));
  return results;
}

interface Command {
  name: string;
  input: { TableName?: string; UpdateExpression?: string; ConditionExpression?: string };
}

/**
 * Runs `action` around the code under test's DynamoDB calls (its own client, lib/aws-clients.ts):
 * `before` ahead of each call, `after` once it returned. Removed when `body` ends.
 */
async function aroundCalls<T>(
  hooks: { before?: (command: Command) => Promise<void>; after?: (command: Command) => Promise<void> },
  body: () => Promise<T>,
): Promise<T> {
  const name = `stockTestHook${randomUUID()}`;
  const middlewareStack = awsClients.dynamoDbClient().middlewareStack;
  middlewareStack.add(
    (next, context) => async (args) => {
      const command = { name: context.commandName ?? '', input: args.input as Command['input'] };
      await hooks.before?.(command);
      const result = await next(args);
      await hooks.after?.(command);
      return result;
    },
    { step: 'initialize', name },
  );
  try {
    return await body();
  } finally {
    middlewareStack.remove(name);
  }
}

describe('many orders race for the last units', () => {
  it('50 orders for a SKU with 10 units: exactly 10 get them, 40 are told out of stock, none is lost or sold twice', async () => {
    const sku = await seedSku(10);
    const placed = await inBatches(Array.from({ length: 50 }), 10, () => placeOrder([{ sku, quantity: 1 }]));

    const completions = await Promise.all(placed.map((order) => inventory.reserveStockForOrder(placedEvent(order))));

    expect(completions.filter((c) => c.recorded === 'SUCCEEDED')).toHaveLength(10);
    expect(completions.filter((c) => c.recorded === 'REJECTED')).toHaveLength(40);
    const results = await Promise.all(placed.map(async (order) => (await storedOrder(order.orderId))?.inventory));
    const succeeded = results.filter((r) => r?.outcome === 'SUCCEEDED');
    const rejected = results.filter((r) => r?.outcome === 'REJECTED');
    expect(succeeded).toHaveLength(10);
    for (const result of succeeded) expect(result?.shortSku).toBeUndefined();
    expect(rejected).toHaveLength(40);
    for (const result of rejected) expect(result?.shortSku).toBe(sku);
    // Each completion says what its order holds.
    for (const [i] of placed.entries()) expect(results[i]?.outcome).toBe(completions[i]?.recorded);
    expect(await stock(sku)).toEqual({ available: 0, applying: {} });
    for (const order of placed)
      expect((await orders.findOrder(order.orderId))?.stages.inventory.status).toBe(results[placed.indexOf(order)]?.outcome);
  });
});

describe('a duplicate delivery of OrderPlaced', () => {
  it('handled twice, one after the other: units taken once, one result, the second reports it recorded earlier', async () => {
    const sku = await seedSku(10);
    const order = await placeOrder([{ sku, quantity: QUANTITY }]);

    const first = await inventory.reserveStockForOrder(placedEvent(order));
    const recorded = (await storedOrder(order.orderId))?.inventory;
    // The stock after each of the redelivery's calls: answered from the order, it holds no units
    // away from other customers, not even for a moment.
    const seen: number[] = [];
    const second = await aroundCalls({ after: async () => void seen.push((await stock(sku)).available) }, () =>
      inventory.reserveStockForOrder(placedEvent(order)),
    );

    expect(first.recorded).toBe('SUCCEEDED');
    expect(second.recorded).toBe('earlier');
    expect(seen.length).toBeGreaterThan(0);
    expect(Math.min(...seen)).toBe(10 - QUANTITY);
    expect((await storedOrder(order.orderId))?.inventory).toEqual(recorded);
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
  });

  it('handled two and three times at once, on orders of two lines: units taken once per order, one result each, no marker left', async () => {
    const [a, b] = [await seedSku(100), await seedSku(100)];
    const placed = await inBatches(Array.from({ length: 10 }), 10, () =>
      placeOrder([
        { sku: a, quantity: 2 },
        { sku: b, quantity: 3 },
      ]),
    );

    const deliveries = await Promise.all(
      placed.map((order, i) =>
        // An attempt that meets another one's marker in flight is turned away (StockBusyError) and redelivered.
        Promise.all(Array.from({ length: 2 + (i % 2) }, () => deliverUntilDone(() => inventory.reserveStockForOrder(placedEvent(order))))),
      ),
    );

    for (const [i, order] of placed.entries()) {
      const reported = deliveries[i]!.map((d) => d.value.recorded).sort();
      expect(reported).toEqual(i % 2 === 0 ? ['SUCCEEDED', 'earlier'] : ['SUCCEEDED', 'earlier', 'earlier']);
      expect((await storedOrder(order.orderId))?.inventory?.outcome).toBe('SUCCEEDED');
    }
    expect(await stock(a)).toEqual({ available: 100 - 2 * placed.length, applying: {} });
    expect(await stock(b)).toEqual({ available: 100 - 3 * placed.length, applying: {} });
  });

  it('handled twice at once on a single line: units taken once, one SUCCEEDED, the other reports earlier', async () => {
    const sku = await seedSku(10);
    const order = await placeOrder([{ sku, quantity: QUANTITY }]);

    const both = await Promise.all([0, 1].map(() => deliverUntilDone(() => inventory.reserveStockForOrder(placedEvent(order)))));

    expect(both.map((d) => d.value.recorded).sort()).toEqual(['SUCCEEDED', 'earlier']);
    expect((await storedOrder(order.orderId))?.inventory?.outcome).toBe('SUCCEEDED');
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
  });
});

describe('a crash between two steps of a reservation heals on redelivery, nothing applied twice', () => {
  it('(a) units taken and marked by an attempt now dead, nothing recorded: the retry adopts its units instead of taking more', async () => {
    const order = await placeOrder([{ sku: await seedSku(0), quantity: QUANTITY }]);
    const sku = order.items[0]!.sku;
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('reserve', 'deadbeef', DEAD) });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('SUCCEEDED');

    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
    const recorded = (await storedOrder(order.orderId))?.inventory;
    expect(recorded).toMatchObject({ outcome: 'SUCCEEDED' });
    // And once more, as a further redelivery would.
    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
    expect((await storedOrder(order.orderId))?.inventory).toEqual(recorded);
  });

  it("(a) a dead attempt's units on the first line, the second line short: the adopted units are given back", async () => {
    const [a, b] = [await seedSku(0), await seedSku(1)];
    const order = await placeOrder([
      { sku: a, quantity: QUANTITY },
      { sku: b, quantity: 2 },
    ]);
    await putStock(a, 10 - QUANTITY, { [order.orderId]: marker('reserve', 'deadbeef', DEAD) });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('REJECTED');

    expect((await storedOrder(order.orderId))?.inventory).toMatchObject({ outcome: 'REJECTED', shortSku: b });
    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 1, applying: {} });
  });

  it('(b) units taken and marked by an attempt still alive: the retry is turned away and changes nothing; once that attempt is dead, a retry adopts', async () => {
    const order = await placeOrder([{ sku: await seedSku(0), quantity: QUANTITY }]);
    const sku = order.items[0]!.sku;
    const live = marker('reserve', 'a11ce000', 2500);
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: live });

    await expect(inventory.reserveStockForOrder(placedEvent(order))).rejects.toBeInstanceOf(inventory.StockBusyError);
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: { [order.orderId]: live } });
    expect((await storedOrder(order.orderId))?.inventory).toBeUndefined();

    // The attempt never finished; past its `until` it is dead, and the next retry finishes its work.
    const until = Number(live.split(':')[2]);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now()) + 50));
    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('SUCCEEDED');
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
  });

  it('(b) a live marker with its whole lifetime ahead: turned away however often it is retried, nothing changes', async () => {
    const order = await placeOrder([{ sku: await seedSku(0), quantity: QUANTITY }]);
    const sku = order.items[0]!.sku;
    const live = marker('reserve', 'a11ce000', LIVE);
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: live });

    for (let i = 0; i < 3; i += 1) {
      await expect(inventory.reserveStockForOrder(placedEvent(order))).rejects.toBeInstanceOf(inventory.StockBusyError);
    }
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: { [order.orderId]: live } });
    expect((await storedOrder(order.orderId))?.inventory).toBeUndefined();
  });

  it('(c) result recorded, crashed before removing the marker: a redelivery removes it and the units stay taken', async () => {
    const order = await placeOrder([{ sku: await seedSku(0), quantity: QUANTITY }]);
    const sku = order.items[0]!.sku;
    const result = { outcome: 'SUCCEEDED', at: new Date().toISOString(), attempt: 'c0ffee00' };
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('reserve', 'c0ffee00', LIVE) });
    await setOnOrder(order.orderId, { inventory: result });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');

    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
    expect((await storedOrder(order.orderId))?.inventory).toEqual(result);
  });

  it('(c) a rejection recorded, crashed before giving the first line back: a redelivery gives it back, and only once', async () => {
    const [a, b] = [await seedSku(0), await seedSku(1)];
    const order = await placeOrder([
      { sku: a, quantity: QUANTITY },
      { sku: b, quantity: 2 },
    ]);
    await putStock(a, 10 - QUANTITY, { [order.orderId]: marker('reserve', 'c0ffee00', LIVE) });
    await setOnOrder(order.orderId, { inventory: { outcome: 'REJECTED', at: new Date().toISOString(), attempt: 'c0ffee00', shortSku: b } });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');
    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');
    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 1, applying: {} });
  });

  it('(d) a marker of an attempt that lost the race to record: a redelivery gives its units back and removes it', async () => {
    const order = await placeOrder([{ sku: await seedSku(0), quantity: QUANTITY }]);
    const sku = order.items[0]!.sku;
    const result = { outcome: 'SUCCEEDED', at: new Date().toISOString(), attempt: 'a1a1a1a1' };
    // The winner's units taken and its marker gone; the loser's units taken too, its marker left.
    await putStock(sku, 10 - 2 * QUANTITY, { [order.orderId]: marker('reserve', 'b2b2b2b2', LIVE) });
    await setOnOrder(order.orderId, { inventory: result });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');

    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
    expect((await storedOrder(order.orderId))?.inventory).toEqual(result);
    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
  });

  it('another delivery records the reservation between this one reading the order and marking the stock: the units are taken once, never twice', async () => {
    const sku = await seedSku(10);
    const order = await placeOrder([{ sku, quantity: QUANTITY }]);
    const result = { outcome: 'SUCCEEDED', at: new Date().toISOString(), attempt: 'f00df00d' };
    let otherDeliveryRan = false;
    const seen: number[] = [];

    const completion = await aroundCalls(
      {
        before: async ({ input }) => {
          const marking = input.TableName === inventoryTable() && input.ConditionExpression?.includes('attribute_not_exists(applying.');
          if (otherDeliveryRan || !marking) return;
          otherDeliveryRan = true;
          // The other delivery's steps 1 and 2: units taken, marker written, result recorded.
          await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('reserve', result.attempt, LIVE) });
          await setOnOrder(order.orderId, { inventory: result });
        },
        after: async ({ input }) => {
          if (input.TableName === inventoryTable()) seen.push((await stock(sku)).available);
        },
      },
      () => inventory.reserveStockForOrder(placedEvent(order)),
    );

    expect(otherDeliveryRan).toBe(true);
    expect(completion.recorded).toBe('earlier');
    expect(Math.min(...seen)).toBe(10 - QUANTITY);
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
    expect((await storedOrder(order.orderId))?.inventory).toEqual(result);
  });
});

describe('a delivery that is the last of its event settles what earlier attempts left on every line', () => {
  // An attempt that dies halfway is healed by a later delivery of the same event; when a delivery
  // ends the event's life without passing every line, it settles the lines it skipped itself.
  it("a short first line stops an order of more lines than go at once: a dead attempt's units on the lines never started go back", async () => {
    const lines = inventory.LINES_IN_FLIGHT + 8;
    const skus = await Promise.all(Array.from({ length: lines }, (_, i) => seedSku(i === 0 ? 0 : 10)));
    const order = await placeOrder(skus.map((sku) => ({ sku, quantity: QUANTITY })));
    // A dead attempt took units on the lines after those that go at once, and recorded nothing.
    const dead = marker('reserve', 'deadbeef', DEAD);
    const late = skus.slice(inventory.LINES_IN_FLIGHT);
    for (const sku of late) await putStock(sku, 10 - QUANTITY, { [order.orderId]: dead });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('REJECTED');

    expect((await storedOrder(order.orderId))?.inventory).toMatchObject({ outcome: 'REJECTED', shortSku: skus[0] });
    for (const sku of skus) expect(await stock(sku)).toEqual({ available: sku === skus[0] ? 0 : 10, applying: {} });
  });

  it("cancelled by the customer before its reservation: a dead attempt's units go back, and the delivery skips", async () => {
    const [a, b] = [await seedSku(10), await seedSku(10)];
    const order = await placeOrder([
      { sku: a, quantity: QUANTITY },
      { sku: b, quantity: 1 },
    ]);
    await putStock(b, 9, { [order.orderId]: marker('reserve', 'deadbeef', DEAD) });
    await setOnOrder(order.orderId, { cancel: { at: new Date().toISOString() } });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('skipped');

    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.inventory).toBeUndefined();
  });

  it('cancelled by the customer while an attempt still holds a line: turned away until that attempt is surely dead, then its units go back', async () => {
    const sku = await seedSku(10);
    const order = await placeOrder([{ sku, quantity: QUANTITY }]);
    const live = marker('reserve', 'a11ce000', 2500);
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: live });
    await setOnOrder(order.orderId, { cancel: { at: new Date().toISOString() } });

    await expect(inventory.reserveStockForOrder(placedEvent(order))).rejects.toBeInstanceOf(inventory.StockBusyError);
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: { [order.orderId]: live } });

    const until = Number(live.split(':')[2]);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now()) + 50));
    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('skipped');
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
  });

  it('cancelled by the customer, and another delivery that had not seen it records the reservation meanwhile: settled as a duplicate, its units stay taken for the release', async () => {
    const sku = await seedSku(10);
    const order = await placeOrder([{ sku, quantity: QUANTITY }]);
    await setOnOrder(order.orderId, { cancel: { at: new Date().toISOString() } });
    const result = { outcome: 'SUCCEEDED', at: new Date().toISOString(), attempt: 'f00df00d' };
    let otherDeliveryRan = false;

    const completion = await aroundCalls(
      {
        after: async ({ input }) => {
          // Once this delivery has read the order: the other one's steps 1 and 2.
          if (otherDeliveryRan || input.TableName !== ordersTable()) return;
          otherDeliveryRan = true;
          await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('reserve', result.attempt, LIVE) });
          await setOnOrder(order.orderId, { inventory: result });
        },
      },
      () => inventory.reserveStockForOrder(placedEvent(order)),
    );

    expect(otherDeliveryRan).toBe(true);
    expect(completion.recorded).toBe('earlier');
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });
  });
});

describe('an attempt that fails on one line', () => {
  // A throttled write, or another attempt busy on a line: the record is retried. The lines this
  // attempt had marked must not turn those retries away until its lease ends.
  const throttleOnce = (sku: string) => {
    let thrown = false;
    return async ({ input }: Command) => {
      const marking = input.TableName === inventoryTable() && input.ConditionExpression?.includes('attribute_not_exists(applying.');
      if (thrown || !marking || !JSON.stringify(input).includes(sku)) return;
      thrown = true;
      throw Object.assign(new Error('Rate of requests exceeds the allowed throughput'), { name: 'ThrottlingException' });
    };
  };

  it('reserving: the units it took on the other lines go back at once, and the retry reserves', async () => {
    const [a, b] = [await seedSku(10), await seedSku(10)];
    const order = await placeOrder([
      { sku: a, quantity: QUANTITY },
      { sku: b, quantity: QUANTITY },
    ]);

    await expect(aroundCalls({ before: throttleOnce(b) }, () => inventory.reserveStockForOrder(placedEvent(order)))).rejects.toThrow(
      /allowed throughput/,
    );
    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, applying: {} });

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('SUCCEEDED');
    expect(await stock(a)).toEqual({ available: 10 - QUANTITY, applying: {} });
    expect(await stock(b)).toEqual({ available: 10 - QUANTITY, applying: {} });
  });

  it('releasing: its marks on the other lines go, nothing given back twice, and the retry releases', async () => {
    const [a, b] = [await seedSku(10), await seedSku(10)];
    const { cancelled } = await cancelledAfterReserving([
      { sku: a, quantity: QUANTITY },
      { sku: b, quantity: QUANTITY },
    ]);

    await expect(aroundCalls({ before: throttleOnce(b) }, () => inventory.releaseStockForOrder(cancelled))).rejects.toThrow(
      /allowed throughput/,
    );
    expect(await stock(a)).toEqual({ available: 10 - QUANTITY, applying: {} });
    expect(await stock(b)).toEqual({ available: 10 - QUANTITY, applying: {} });

    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 2 });
    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, applying: {} });
  });
});

describe('an order of several lines', () => {
  it('the second line short: the units taken on the others go back, REJECTED naming the second SKU', async () => {
    const [a, b, c] = [await seedSku(5), await seedSku(1), await seedSku(5)];
    const order = await placeOrder([
      { sku: a, quantity: 2 },
      { sku: b, quantity: 2 },
      { sku: c, quantity: 2 },
    ]);

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('REJECTED');

    expect((await storedOrder(order.orderId))?.inventory).toMatchObject({ outcome: 'REJECTED', shortSku: b });
    expect((await orders.findOrder(order.orderId))?.stages.inventory).toMatchObject({ status: 'REJECTED', reason: 'OUT_OF_STOCK' });
    expect(await stock(a)).toEqual({ available: 5, applying: {} });
    expect(await stock(b)).toEqual({ available: 1, applying: {} });
    expect(await stock(c)).toEqual({ available: 5, applying: {} });

    // Redelivered after the short SKU was restocked: the order was answered, and stays so.
    await putStock(b, 10);
    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('earlier');
    expect((await storedOrder(order.orderId))?.inventory).toMatchObject({ outcome: 'REJECTED', shortSku: b });
    expect(await stock(a)).toEqual({ available: 5, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, applying: {} });
    expect(await stock(c)).toEqual({ available: 5, applying: {} });
  });

  it("an unknown SKU on the second line: REJECTED naming it, the first line's units back", async () => {
    const a = await seedSku(5);
    const order = await placeOrder([
      { sku: a, quantity: 2 },
      { sku: 'SKU-STOCK-NO-SUCH', quantity: 1 },
    ]);

    expect((await inventory.reserveStockForOrder(placedEvent(order))).recorded).toBe('REJECTED');
    expect((await storedOrder(order.orderId))?.inventory).toMatchObject({ outcome: 'REJECTED', shortSku: 'SKU-STOCK-NO-SUCH' });
    expect(await stock(a)).toEqual({ available: 5, applying: {} });
  });
});

describe('release on OrderCancelled', () => {
  it('gives the units back once when the cancellation is delivered twice, and records the release once', async () => {
    const sku = await seedSku(10);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: {} });

    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 1 });
    const release = (await storedOrder(order.orderId))?.release;
    expect(release).toMatchObject({ attempt: expect.any(String), at: expect.any(String) });
    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });

    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.release).toEqual(release);
    expect((await orders.findOrder(order.orderId))?.stages.inventory.status).toBe('COMPENSATED');
  });

  it('gives the units back once when three deliveries of the cancellation run at once, on two lines', async () => {
    const [a, b] = [await seedSku(10), await seedSku(10)];
    const { order, cancelled } = await cancelledAfterReserving([
      { sku: a, quantity: 2 },
      { sku: b, quantity: 4 },
    ]);
    expect(await stock(a)).toEqual({ available: 8, applying: {} });
    expect(await stock(b)).toEqual({ available: 6, applying: {} });

    const runs = await Promise.all([0, 1, 2].map(() => deliverUntilDone(() => inventory.releaseStockForOrder(cancelled))));

    expect(runs.map((r) => r.value.releasedLines).sort()).toEqual([0, 0, 2]);
    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.release).toBeDefined();
  });

  // A release's marker is written first and its units given back when it is removed, after the
  // release is recorded: while it stands, the units are not on sale yet.

  it('a release marked by an attempt now dead, nothing recorded: the retry adopts it and gives the units back once', async () => {
    const sku = await seedSku(10);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('release', 'deadbeef', DEAD) });

    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 1 });

    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.release).toBeDefined();
    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
  });

  it('a release marked by an attempt still alive: the retry is turned away and changes nothing', async () => {
    const sku = await seedSku(10);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    const live = marker('release', 'a11ce000', LIVE);
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: live });

    await expect(inventory.releaseStockForOrder(cancelled)).rejects.toBeInstanceOf(inventory.StockBusyError);
    expect(await stock(sku)).toEqual({ available: 10 - QUANTITY, applying: { [order.orderId]: live } });
    expect((await storedOrder(order.orderId))?.release).toBeUndefined();
  });

  it('release recorded, crashed before removing the marker: a redelivery gives the units back, and only once', async () => {
    const sku = await seedSku(10);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    const release = { at: new Date().toISOString(), attempt: 'c0ffee00' };
    await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('release', 'c0ffee00', LIVE) });
    await setOnOrder(order.orderId, { release });

    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.release).toEqual(release);
  });

  it('a release marker of an attempt that lost the race to record: a redelivery drops it without giving anything back', async () => {
    const sku = await seedSku(10);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    const release = { at: new Date().toISOString(), attempt: 'a1a1a1a1' };
    // The winner's release done (units back, marker gone); the loser's marker left.
    await putStock(sku, 10, { [order.orderId]: marker('release', 'b2b2b2b2', LIVE) });
    await setOnOrder(order.orderId, { release });

    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.release).toEqual(release);
  });

  it('another delivery records the release between this one reading the order and marking the stock: the units never go back twice, not even for a moment', async () => {
    // Seen on the counter: units given back twice are on sale to other orders until the loser's
    // change is undone, and undoing it then takes them from whoever bought them (below zero).
    const sku = await seedSku(10);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    let otherDeliveryRan = false;
    const seen: number[] = [];

    const result = await aroundCalls(
      {
        before: async ({ input }) => {
          const marking = input.TableName === inventoryTable() && input.ConditionExpression?.includes('attribute_not_exists(applying.');
          if (otherDeliveryRan || !marking) return;
          otherDeliveryRan = true;
          // The other delivery's steps 1 and 2: marker written, release recorded (its units go back at step 3).
          const release = { at: new Date().toISOString(), attempt: 'f00df00d' };
          await putStock(sku, 10 - QUANTITY, { [order.orderId]: marker('release', release.attempt, LIVE) });
          await setOnOrder(order.orderId, { release });
          seen.push((await stock(sku)).available);
        },
        after: async ({ input }) => {
          if (input.TableName === inventoryTable()) seen.push((await stock(sku)).available);
        },
      },
      () => inventory.releaseStockForOrder(cancelled),
    );

    expect(otherDeliveryRan).toBe(true);
    expect(result).toEqual({ releasedLines: 0 });
    expect(Math.max(...seen)).toBe(10);
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
    expect((await storedOrder(order.orderId))?.release?.attempt).toBe('f00df00d');
  });

  it('another delivery runs whole between this one reading the order and marking the stock: no units go on sale twice, nobody buys units that are not there', async () => {
    // This one read the order before the release was recorded, so it goes on to release too; it
    // loses the race to record. Had it put units on sale before recording, a customer could buy
    // them before they were taken back, and taking them back would leave the counter below zero.
    const sku = await seedSku(QUANTITY);
    const { order, cancelled } = await cancelledAfterReserving([{ sku, quantity: QUANTITY }]);
    expect(await stock(sku)).toEqual({ available: 0, applying: {} });
    let otherDeliveryRan = false;
    const bought: Array<{ units: number; recorded: string }> = [];

    const result = await aroundCalls(
      {
        before: async ({ input }) => {
          const marking = input.TableName === inventoryTable() && input.ConditionExpression?.includes('attribute_not_exists(applying.');
          if (otherDeliveryRan || !marking) return;
          otherDeliveryRan = true;
          expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 1 });
        },
        after: async ({ input }) => {
          if (input.TableName !== inventoryTable() || bought.length > 0) return;
          // A customer buys whatever is on sale at that moment beyond the units this order gave back.
          const { available } = await stock(sku);
          if (available <= QUANTITY) return;
          const buyer = await placeOrder([{ sku, quantity: available }]);
          bought.push({ units: available, recorded: (await inventory.reserveStockForOrder(placedEvent(buyer))).recorded });
        },
      },
      () => inventory.releaseStockForOrder(cancelled),
    );

    expect(otherDeliveryRan).toBe(true);
    expect(result).toEqual({ releasedLines: 0 });
    expect(bought).toEqual([]);
    expect(await stock(sku)).toEqual({ available: QUANTITY, applying: {} });
    expect((await storedOrder(order.orderId))?.release).toBeDefined();
  });

  it('nothing goes back for a cancelled order whose reservation was rejected, nor for an order not cancelled', async () => {
    const sku = await seedSku(1);
    // Rejected as out of stock, then cancelled: it never held units.
    const rejected = await placeOrder([{ sku, quantity: 2 }]);
    expect((await inventory.reserveStockForOrder(placedEvent(rejected))).recorded).toBe('REJECTED');
    const at = new Date().toISOString();
    await outcome.recordResult(rejected.orderId, 'payment', { outcome: 'SUCCEEDED', at, chargeId: 'ch_1', amount: 100 });
    const decided = await outcome.recordResult(rejected.orderId, 'shipping', { outcome: 'SUCCEEDED', at });
    expect(decided?.status).toBe('CANCELLED');
    const cancelled = outcome.outcomeEventOf(decided!) as OrderCancelled;
    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });

    // Reserved and still undecided: an OrderCancelled for it (forged, or misrouted) gives nothing back.
    const pending = await placeOrder([{ sku, quantity: 1 }]);
    expect((await inventory.reserveStockForOrder(placedEvent(pending))).recorded).toBe('SUCCEEDED');
    expect(
      await inventory.releaseStockForOrder({ ...cancelled, orderId: pending.orderId, eventId: `${pending.orderId}:OrderCancelled` }),
    ).toEqual({
      releasedLines: 0,
    });

    expect(await stock(sku)).toEqual({ available: 0, applying: {} });
    expect((await storedOrder(rejected.orderId))?.release).toBeUndefined();
    expect((await storedOrder(pending.orderId))?.release).toBeUndefined();
  });
});

describe('a hot SKU', () => {
  it('300 orders reserved on one SKU: its item stays under 1 KB, holds nothing of any order, and the counter adds up', async () => {
    const sku = await seedSku(1000);
    const placed = await inBatches(
      Array.from({ length: 300 }, (_, i) => i),
      10,
      (i) => placeOrder([{ sku, quantity: 1 + (i % 3) }]),
    );

    const reported = await inBatches(placed, 10, async (order) => (await inventory.reserveStockForOrder(placedEvent(order))).recorded);

    expect(reported.every((r) => r === 'SUCCEEDED')).toBe(true);
    const { Item } = await stack.db.send(
      new GetItemCommand({ TableName: inventoryTable(), Key: { sku: { S: sku } }, ConsistentRead: true }),
    );
    const stored = JSON.stringify(Item);
    // A marker per order is ~60 bytes: left behind by 300 orders, 18 KB; by ~7,000, past the 400 KB item limit.
    expect(Buffer.byteLength(stored)).toBeLessThan(1024);
    for (const order of placed) expect(stored).not.toContain(order.orderId);
    const units = placed.reduce((sum, order) => sum + order.items[0]!.quantity, 0);
    expect(await stock(sku)).toEqual({ available: 1000 - units, applying: {} });
    expect(await inventory.markersLeft(stack.db, inventoryTable(), [sku])).toEqual(new Map([[sku, {}]]));
  }, 180_000);
});

describe('a business order of 5,000 lines', () => {
  /** Stock items for `skus`, `available` units each, written 25 to a request. */
  async function putStocks(skus: string[], available: (sku: string) => number, applying: Record<string, string> = {}): Promise<void> {
    const chunks = Array.from({ length: Math.ceil(skus.length / 25) }, (_, i) => skus.slice(i * 25, i * 25 + 25));
    await inBatches(chunks, 8, (chunk) =>
      stack.db.send(
        new BatchWriteCommand({
          RequestItems: {
            [inventoryTable()]: chunk.map((sku) => ({
              PutRequest: { Item: { sku, name: `Item ${sku}`, available: available(sku), applying } },
            })),
          },
        }),
      ),
    );
  }

  /** Every SKU's stock as stored, read 100 to a request with the test's own client. */
  async function stocks(skus: string[]): Promise<Map<string, { available: number; applying: Record<string, string> }>> {
    const chunks = Array.from({ length: Math.ceil(skus.length / 100) }, (_, i) => skus.slice(i * 100, i * 100 + 100));
    const found = new Map<string, { available: number; applying: Record<string, string> }>();
    await inBatches(chunks, 8, async (chunk) => {
      const { Responses } = await stack.db.send(
        new BatchGetCommand({ RequestItems: { [inventoryTable()]: { Keys: chunk.map((sku) => ({ sku })), ConsistentRead: true } } }),
      );
      for (const item of Responses?.[inventoryTable()] ?? []) found.set(item.sku, { available: item.available, applying: item.applying });
    });
    return found;
  }

  /** The largest order there is: 5,000 distinct random 64-character SKUs (random: what compresses worst). */
  function largestSkus(): string[] {
    const skus = new Set<string>();
    while (skus.size < MAX_ITEMS)
      skus.add(`L${randomUUID().replaceAll('-', '').toUpperCase()}${randomUUID().replaceAll('-', '').toUpperCase()}`.slice(0, 64));
    return [...skus];
  }

  it('every unit of every line taken, no marker left; cancelled, every unit given back and the release recorded once', async () => {
    const skus = largestSkus();
    await putStocks(skus, () => 1500);
    const items = skus.map((sku) => ({ sku, quantity: MAX_QUANTITY }));
    const placed = await placeOrder(items);
    expect(placed.items).toHaveLength(5000);

    expect((await inventory.reserveStockForOrder(placedEvent(placed))).recorded).toBe('SUCCEEDED');
    const reserved = await stocks(skus);
    expect(reserved.size).toBe(5000);
    for (const sku of skus) expect(reserved.get(sku)).toEqual({ available: 500, applying: {} });
    expect((await storedOrder(placed.orderId))?.inventory?.outcome).toBe('SUCCEEDED');

    const at = new Date().toISOString();
    await outcome.recordResult(placed.orderId, 'payment', { outcome: 'REJECTED', at, declineCode: 'card_declined' });
    const decided = await outcome.recordResult(placed.orderId, 'shipping', { outcome: 'SUCCEEDED', at });
    const cancelled = decided && outcome.outcomeEventOf(decided);
    if (cancelled?.eventType !== 'OrderCancelled') throw new Error(`expected OrderCancelled, got ${cancelled?.eventType}`);
    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 5000 });
    expect(await inventory.releaseStockForOrder(cancelled)).toEqual({ releasedLines: 0 });
    const released = await stocks(skus);
    for (const sku of skus) expect(released.get(sku)).toEqual({ available: 1500, applying: {} });
    expect((await storedOrder(placed.orderId))?.release).toBeDefined();
  }, 300_000);

  it('an attempt that died after marking every line (a timeout): the retry takes its 5,000 markers over, units taken once', async () => {
    const skus = Array.from(
      { length: MAX_ITEMS },
      (_, i) => `SKU-DIED-${randomUUID().slice(0, 8).toUpperCase()}-${String(i).padStart(4, '0')}`,
    );
    const placed = await placeOrder(skus.map((sku) => ({ sku, quantity: 2 })));
    // What the dead attempt left: 2 units taken on every line, under its marker, nothing recorded.
    const dead = marker('reserve', 'deadbeef', DEAD);
    await putStocks(skus, () => 8, { [placed.orderId]: dead });

    expect((await inventory.reserveStockForOrder(placedEvent(placed))).recorded).toBe('SUCCEEDED');
    const after = await stocks(skus);
    for (const sku of skus) expect(after.get(sku)).toEqual({ available: 8, applying: {} });
  }, 300_000);

  it('a short SKU at line 4,000 rejects the order naming it, and every unit taken on any line is given back', async () => {
    const skus = Array.from(
      { length: MAX_ITEMS },
      (_, i) => `SKU-BULK-${randomUUID().slice(0, 8).toUpperCase()}-${String(i).padStart(4, '0')}`,
    );
    const short = skus[3999]!;
    await putStocks(skus, (sku) => (sku === short ? 1 : 10));
    const placed = await placeOrder(skus.map((sku) => ({ sku, quantity: 2 })));

    expect((await inventory.reserveStockForOrder(placedEvent(placed))).recorded).toBe('REJECTED');
    expect((await storedOrder(placed.orderId))?.inventory).toMatchObject({ outcome: 'REJECTED', shortSku: short });
    const after = await stocks(skus);
    for (const sku of skus) expect(after.get(sku)).toEqual({ available: sku === short ? 1 : 10, applying: {} });
  }, 300_000);
});

describe('an event for an order that does not exist', () => {
  const missingOrderId = () => `ord_${randomUUID().replaceAll('-', '')}`;
  const placedFor = (orderId: string, items: OrderItem[]): OrderPlaced => ({
    eventId: `${orderId}:OrderPlaced`,
    eventType: 'OrderPlaced',
    orderId,
    occurredAt: new Date().toISOString(),
    data: { customerId: 'cus_stock', items, shippingAddress: ADDRESS },
  });

  it('OrderPlaced: OrderNotFoundError, the stock unchanged, no order made up', async () => {
    const [a, b] = [await seedSku(10), await seedSku(1)];
    const [fits, short] = [missingOrderId(), missingOrderId()];

    await expect(inventory.reserveStockForOrder(placedFor(fits, [{ sku: a, quantity: QUANTITY }]))).rejects.toBeInstanceOf(
      outcome.OrderNotFoundError,
    );
    await expect(
      inventory.reserveStockForOrder(
        placedFor(short, [
          { sku: a, quantity: QUANTITY },
          { sku: b, quantity: 2 },
        ]),
      ),
    ).rejects.toBeInstanceOf(outcome.OrderNotFoundError);

    expect(await stock(a)).toEqual({ available: 10, applying: {} });
    expect(await stock(b)).toEqual({ available: 1, applying: {} });
    expect(await storedOrder(fits)).toBeUndefined();
    expect(await storedOrder(short)).toBeUndefined();
  });

  it('OrderCancelled: OrderNotFoundError, nothing given back', async () => {
    const sku = await seedSku(10);
    const orderId = missingOrderId();
    const cancelled: OrderCancelled = {
      eventId: `${orderId}:OrderCancelled`,
      eventType: 'OrderCancelled',
      orderId,
      occurredAt: new Date().toISOString(),
      data: { reason: 'PAYMENT_DECLINED' },
    };
    await expect(inventory.releaseStockForOrder(cancelled)).rejects.toBeInstanceOf(outcome.OrderNotFoundError);
    expect(await stock(sku)).toEqual({ available: 10, applying: {} });
  });
});
