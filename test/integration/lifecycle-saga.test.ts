import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeCreatedOrder } from '../support/stored-order.js';
import type { OrderEvent, OrderPlaced } from '../../lib/events.js';
import type { OrderItem, OrderRequest } from '../../lib/order-schema.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { capturePublishedEvents } from '../support/published-events.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The saga's domain functions against the real emulators, on the tables and topic provisioned from
// the packaged template (test/support/provisioned-stack.ts): dynalite for DynamoDB, fauxqs for SNS
// (a raw-delivery queue of this test's own on the topic counts what was published). Environment
// first, then the lib modules, which read it when they first build a client.

type Inventory = typeof import('../../lib/inventory.js');
type Payments = typeof import('../../lib/payments.js');
type Shipping = typeof import('../../lib/shipping.js');
type Outcome = typeof import('../../lib/order-outcome.js');
type Orders = typeof import('../../lib/order-store.js');
type Provider = typeof import('../../lib/payment-provider.js');

let inventory: Inventory;
let payments: Payments;
let shipping: Shipping;
let outcome: Outcome;
let orders: Orders;
let provider: Provider;

let stack: ProvisionedStack;
const CAPTURE_QUEUE = 'published-order-events';

let topicArn: string;
/** Every event published on the topic so far (of one order, or all), left in place. */
let publishedEvents: (orderId?: string) => OrderEvent[];

beforeAll(async () => {
  stack = await startProvisionedStack();
  topicArn = stack.resources.topicArn ?? '';
  if (!topicArn) throw new Error('The template subscribes no queue to a topic');
  // Every event published on the topic, whatever its type: no filter policy.
  publishedEvents = await capturePublishedEvents(stack, CAPTURE_QUEUE);
  Object.assign(process.env, { POWERTOOLS_LOG_LEVEL: 'WARN', POWERTOOLS_METRICS_DISABLED: 'true' });

  [inventory, payments, shipping, outcome, orders, provider] = await Promise.all([
    import('../../lib/inventory.js'),
    import('../../lib/payments.js'),
    import('../../lib/shipping.js'),
    import('../../lib/order-outcome.js'),
    import('../../lib/order-store.js'),
    import('../../lib/payment-provider.js'),
  ]);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-TEST-${skuCounter}`;
  await stack.db.send(
    new PutCommand({
      TableName: stack.table('InventoryTable'),
      Item: { sku, name: `Test item ${skuCounter}`, available, applying: {} },
    }),
  );
  return sku;
}

async function stock(sku: string) {
  const item = await inventory.findStockItem(sku);
  if (!item) throw new Error(`no ${sku}`);
  return item;
}

async function placeOrder(items: OrderItem[], token = 'tok_visa'): Promise<OrderPlaced> {
  const request: OrderRequest = {
    items,
    payment: { token },
    shippingAddress: { ...SAMPLE_ADDRESS },
  };
  return (await storeCreatedOrder('cus_test', request)).placedEvent;
}

describe('inventory', () => {
  it('treats an unknown SKU as out of stock and gives back the lines it had taken', async () => {
    const known = await seedSku(3);
    const placed = await placeOrder([
      { sku: known, quantity: 1 },
      { sku: 'SKU-NOT-THERE', quantity: 1 },
    ]);
    const completion = await inventory.reserveStockForOrder(placed);
    expect(completion.recorded).toBe('REJECTED');
    expect((await outcome.loadOrder(placed.orderId)).inventory).toMatchObject({ outcome: 'REJECTED', shortSku: 'SKU-NOT-THERE' });
    expect(await stock(known)).toMatchObject({ available: 3, applying: {} });
  });
});

describe('payments', () => {
  it('tok_flaky fails twice with a transient error, then is charged; a later call does not reach the provider', async () => {
    const order = await placeOrder([{ sku: 'SKU-ANY', quantity: 3 }], 'tok_flaky');
    const { orderId } = order;
    const attempt = () => payments.chargePayment(orderId, 'tok_flaky', order.data.items);
    await expect(attempt()).rejects.toBeInstanceOf(provider.TransientProviderError);
    await expect(attempt()).rejects.toBeInstanceOf(provider.TransientProviderError);
    const third = await attempt();
    const fourth = await attempt();
    expect(third).toMatchObject({
      outcome: 'SUCCEEDED',
      amount: 3 * payments.UNIT_PRICE_CENTS,
      chargeId: provider.SimulatedPaymentProvider.chargeIdFor(orderId),
    });
    expect(fourth.chargeId).toBe(third.chargeId);
    // Three calls reached the provider; the fourth was answered by the Powertools idempotency record.
    const simulator = await stack.db.send(
      new GetCommand({ TableName: stack.table('PaymentsTable'), Key: { orderId, entryId: 'SIMULATOR#ATTEMPTS' } }),
    );
    expect(simulator.Item).toMatchObject({ attempts: 3 });
  });

  it('a provider that charged but whose caller crashed before recording gives the same charge on retry', async () => {
    const sim = new provider.SimulatedPaymentProvider();
    const first = await sim.charge({ idempotencyKey: 'ord_provider_retry', token: 'tok_visa', amount: 1000 });
    const result = await payments.chargePayment('ord_provider_retry', 'tok_visa', [{ sku: 'X', quantity: 1 }], sim);
    expect(result).toMatchObject({ outcome: 'SUCCEEDED', chargeId: (first as { chargeId: string }).chargeId });
  });

  it('tok_decline is a declined outcome, not an error, and leaves nothing to refund', async () => {
    const placed = await placeOrder([{ sku: 'X', quantity: 1 }], 'tok_decline');
    const result = await payments.chargePayment(placed.orderId, 'tok_decline', placed.data.items);
    expect(result).toMatchObject({ outcome: 'REJECTED', declineCode: 'card_declined' });
    expect(await payments.refundPayment(await outcome.loadOrder(placed.orderId))).toEqual({ outcome: 'no-charge' });
  });

  it("refunds a cancelled order's charge at most once, even when asked concurrently", async () => {
    const placed = await placeOrder([{ sku: 'X', quantity: 2 }]);
    await payments.chargeForOrder(placed);
    await outcome.recordResult(placed.orderId, 'inventory', {
      outcome: 'REJECTED',
      at: new Date().toISOString(),
      attempt: 'test',
      shortSku: 'X',
    });
    await outcome.recordResult(placed.orderId, 'shipping', { outcome: 'SUCCEEDED', at: new Date().toISOString() });
    const cancelled = await outcome.loadOrder(placed.orderId);
    expect(cancelled.status).toBe('CANCELLED');
    // Concurrent duplicates: one reaches the provider; one that finds it in flight fails (its
    // record is retried), one that comes after gets the recorded refund.
    const settled = await Promise.allSettled([1, 2, 3, 4].map(() => payments.refundPayment(cancelled)));
    const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const failed of settled.filter((r) => r.status === 'rejected')) {
      expect((failed as PromiseRejectedResult).reason).toMatchObject({ name: 'IdempotencyAlreadyInProgressError' });
    }
    expect(results.filter((r) => r.outcome === 'refunded').length).toBeLessThanOrEqual(1);
    const later = await payments.refundPayment(await outcome.loadOrder(placed.orderId));
    expect(later.outcome).toBe('already-refunded');
    const refundIds = new Set([...results, later].map((r) => ('refundId' in r ? r.refundId : undefined)));
    expect(refundIds.size).toBe(1);
    expect((await outcome.loadOrder(placed.orderId)).refund?.refundId).toBe([...refundIds][0]);
  });

  it('a token gone before any charge (expired) is a decline, and the token is never needed again', async () => {
    const placed = await placeOrder([{ sku: 'X', quantity: 1 }]);
    await stack.db.send(
      new PutCommand({ TableName: stack.table('PaymentTokensTable'), Item: { orderId: placed.orderId, token: 'tok_visa', expiresAt: 1 } }),
    );
    const completion = await payments.chargeForOrder(placed);
    expect(completion.recorded).toBe('REJECTED');
    expect((await outcome.loadOrder(placed.orderId)).stages.payment).toMatchObject({ status: 'REJECTED', reason: 'PAYMENT_DECLINED' });
  });
});

describe('order outcome', () => {
  it('two participants finishing at the same moment: exactly one decision and one publish', async () => {
    const sku = await seedSku(5);
    const placed = await placeOrder([{ sku, quantity: 1 }]);
    await inventory.reserveStockForOrder(placed);
    const [payment, ship] = await Promise.all([payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]);
    const winners = [payment, ship].filter((c) => c.settle.decision === 'decided-here');
    expect(winners).toHaveLength(1);
    const order = await outcome.loadOrder(placed.orderId);
    expect(order.status).toBe('CONFIRMED');
    // Decided, but its dispatch is still to come: it stays in the sweep's index.
    expect(order.sweepShard).toMatch(/^S[0-7]$/);
    expect(order.sweepAttempts).toBe(0);
    const published = publishedEvents(placed.orderId);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ eventType: 'OrderConfirmed', eventId: `${placed.orderId}:OrderConfirmed` });
  });

  it('a result is recorded once: a second write of it changes nothing and decides nothing', async () => {
    const placed = await placeOrder([{ sku: 'SKU-ANY', quantity: 1 }]);
    const at = new Date().toISOString();
    expect(await outcome.recordResult(placed.orderId, 'payment', { outcome: 'SUCCEEDED', at, chargeId: 'ch_1', amount: 1 })).toBeDefined();
    expect(await outcome.recordResult(placed.orderId, 'payment', { outcome: 'REJECTED', at, declineCode: 'late' })).toBeUndefined();
    expect((await outcome.loadOrder(placed.orderId)).payment).toMatchObject({ outcome: 'SUCCEEDED', chargeId: 'ch_1' });
    // And an order that does not exist gets no result at all.
    expect(await outcome.recordResult('ord_0000000000000000000000000000dead', 'payment', { outcome: 'SUCCEEDED', at })).toBeUndefined();
    expect(await orders.findOrder('ord_0000000000000000000000000000dead')).toBeUndefined();
  });

  it('all three participants racing, many times over: exactly one decision and one publish per order', async () => {
    const ROUNDS = 5;
    const ORDERS_PER_ROUND = 20;
    for (let round = 0; round < ROUNDS; round += 1) {
      // Every fourth order declined, so CANCELLED decisions race as well as CONFIRMED ones.
      const placedOrders = await Promise.all(
        Array.from({ length: ORDERS_PER_ROUND }, async (_, i) =>
          placeOrder([{ sku: await seedSku(1), quantity: 1 }], i % 4 === 3 ? 'tok_decline' : 'tok_visa'),
        ),
      );
      const completions = await Promise.all(
        placedOrders.map((placed) =>
          Promise.all([inventory.reserveStockForOrder(placed), payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]),
        ),
      );
      for (const [i, placed] of placedOrders.entries()) {
        const declined = i % 4 === 3;
        const label = `round ${round}, order ${i}`;
        const deciders = completions[i]!.filter((c) => c.settle.decision === 'decided-here').map((c) => c.participant);
        expect(deciders, label).toHaveLength(1);
        const order = await outcome.loadOrder(placed.orderId);
        expect(order.status, label).toBe(declined ? 'CANCELLED' : 'CONFIRMED');
        expect(
          publishedEvents(placed.orderId).map((e) => e.eventType),
          label,
        ).toEqual([declined ? 'OrderCancelled' : 'OrderConfirmed']);
      }
    }
  });

  it('a decline cancels with PAYMENT_DECLINED; compensation releases, refunds nothing and cancels the shipment once', async () => {
    const sku = await seedSku(5);
    const placed = await placeOrder([{ sku, quantity: 2 }], 'tok_decline');
    await inventory.reserveStockForOrder(placed);
    await shipping.prepareShipmentForOrder(placed);
    await payments.chargeForOrder(placed);
    const order = await outcome.loadOrder(placed.orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED', decidedBy: 'payment' });
    expect(await stock(sku)).toMatchObject({ available: 3 });
    const [cancelled] = publishedEvents(placed.orderId);
    expect(cancelled).toMatchObject({ eventType: 'OrderCancelled', data: { reason: 'PAYMENT_DECLINED' } });
    if (cancelled?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');

    for (let delivery = 0; delivery < 2; delivery += 1) {
      await Promise.all([
        inventory.releaseStockForOrder(cancelled),
        payments.refundForOrder(cancelled),
        shipping.cancelShipmentForOrder(cancelled),
      ]);
    }
    expect(await stock(sku)).toMatchObject({ available: 5, applying: {} });
    const after = await outcome.loadOrder(placed.orderId);
    expect(after.refund).toBeUndefined();
    expect(after.stages.inventory).toMatchObject({ status: 'COMPENSATED' });
    expect(after.stages.inventory.timeline.map((e) => e.what)).toEqual(['reserved 2 unit(s) of 1 SKU(s)', 'released']);
    expect(after.stages.payment).toMatchObject({ status: 'REJECTED', reason: 'PAYMENT_DECLINED' });
    expect(after.stages.shipping.status).toBe('COMPENSATED');
    expect(after.stages.shipping.timeline.filter((e) => e.what === 'cancelled')).toHaveLength(1);
    // Every follow-up done: the order left the sweep's index.
    expect(after.sweepShard).toBeUndefined();
  });

  it('out of stock cancels with OUT_OF_STOCK; the charge is refunded once', async () => {
    const sku = await seedSku(1);
    const placed = await placeOrder([{ sku, quantity: 2 }]);
    await payments.chargeForOrder(placed);
    await shipping.prepareShipmentForOrder(placed);
    await inventory.reserveStockForOrder(placed);
    expect(await outcome.loadOrder(placed.orderId)).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK' });
    const [cancelled] = publishedEvents(placed.orderId);
    if (cancelled?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    for (let delivery = 0; delivery < 3; delivery += 1) await payments.refundForOrder(cancelled);
    await Promise.all([1, 2].map(() => inventory.releaseStockForOrder(cancelled)));
    const after = await outcome.loadOrder(placed.orderId);
    expect(after.refund?.refundId).toBe(provider.SimulatedPaymentProvider.refundIdFor(placed.orderId));
    expect(after.stages.payment.status).toBe('COMPENSATED');
    expect(after.stages.payment.timeline.filter((e) => e.what === 'refunded')).toHaveLength(1);
    expect(after.stages.inventory).toMatchObject({ status: 'REJECTED', reason: 'OUT_OF_STOCK' });
    expect(await stock(sku)).toMatchObject({ available: 1, applying: {} });
  });

  it('confirmation dispatches once, noted once on the timeline, and the order leaves the sweep index', async () => {
    const sku = await seedSku(4);
    const placed = await placeOrder([{ sku, quantity: 3 }]);
    await Promise.all([inventory.reserveStockForOrder(placed), payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]);
    const [confirmed] = publishedEvents(placed.orderId);
    if (confirmed?.eventType !== 'OrderConfirmed') throw new Error('expected OrderConfirmed');
    const dispatches = [];
    for (let delivery = 0; delivery < 2; delivery += 1) {
      dispatches.push(...(await Promise.all([shipping.dispatchShipmentForOrder(confirmed), shipping.dispatchShipmentForOrder(confirmed)])));
    }
    expect(dispatches.filter((d) => d.dispatched)).toHaveLength(1);
    expect(await stock(sku)).toMatchObject({ available: 1, applying: {} });
    const after = await outcome.loadOrder(placed.orderId);
    expect(after.stages.shipping.timeline.filter((e) => e.what === 'dispatched')).toHaveLength(1);
    expect(after.stages.shipping.status).toBe('SUCCEEDED');
    expect(after.sweepShard).toBeUndefined();
    // A cancel of a dispatched shipment does nothing.
    expect(await shipping.cancelShipmentForOrder({ ...confirmed, eventType: 'OrderCancelled', data: { reason: 'OUT_OF_STOCK' } })).toEqual({
      cancelled: false,
    });
  });

  it('a dispatch for an order that is not confirmed fails (it goes to the DLQ) and dispatches nothing', async () => {
    const placed = await placeOrder([{ sku: 'X', quantity: 1 }]);
    const bogus = {
      eventId: `${placed.orderId}:OrderConfirmed`,
      eventType: 'OrderConfirmed',
      orderId: placed.orderId,
      occurredAt: new Date().toISOString(),
      data: {},
    } as const;
    await expect(shipping.dispatchShipmentForOrder(bogus)).rejects.toThrow(/PENDING, not CONFIRMED/);
    expect((await outcome.loadOrder(placed.orderId)).dispatchedAt).toBeUndefined();
  });

  it("heals a crash between the deciding write and the publish: the decider's retry publishes", async () => {
    const sku = await seedSku(2);
    const placed = await placeOrder([{ sku, quantity: 1 }]);
    await inventory.reserveStockForOrder(placed);
    await payments.chargeForOrder(placed);
    // The "crash": publishing fails after the deciding result was written.
    process.env.ORDER_EVENTS_TOPIC_ARN = 'arn:aws:sns:us-east-1:000000000000:no-such-topic';
    try {
      await expect(shipping.prepareShipmentForOrder(placed)).rejects.toThrow();
    } finally {
      process.env.ORDER_EVENTS_TOPIC_ARN = topicArn;
    }
    const decided = await outcome.loadOrder(placed.orderId);
    expect(decided).toMatchObject({ status: 'CONFIRMED', decidedBy: 'shipping' });
    expect(publishedEvents(placed.orderId)).toEqual([]);

    // Another participant seeing the decided order does not publish: only the decider's retry does.
    expect((await inventory.reserveStockForOrder(placed)).settle.decision).toBe('decided-elsewhere');
    expect(publishedEvents(placed.orderId)).toEqual([]);

    const retry = await shipping.prepareShipmentForOrder(placed);
    expect(retry).toMatchObject({ recorded: 'earlier', settle: { decision: 'decided-here', published: true } });
    expect(publishedEvents(placed.orderId).map((e) => e.eventType)).toEqual(['OrderConfirmed']);
    // Once the outcome has been acted on (dispatched), a further retry publishes nothing more.
    const [confirmed] = publishedEvents(placed.orderId);
    if (confirmed?.eventType !== 'OrderConfirmed') throw new Error('expected OrderConfirmed');
    await shipping.dispatchShipmentForOrder(confirmed);
    await shipping.prepareShipmentForOrder(placed);
    expect(publishedEvents(placed.orderId)).toHaveLength(1);
  });

  it('a late OrderPlaced after the order was cancelled and released reserves nothing again', async () => {
    const sku = await seedSku(3);
    const placed = await placeOrder([{ sku, quantity: 1 }], 'tok_decline');
    await Promise.all([inventory.reserveStockForOrder(placed), payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]);
    const [cancelled] = publishedEvents(placed.orderId);
    if (cancelled?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    await inventory.releaseStockForOrder(cancelled);
    await inventory.reserveStockForOrder(placed);
    expect(await stock(sku)).toMatchObject({ available: 3, applying: {} });
  });

  it('keeps a single-line order item under 1 KB through its whole life, so each write costs one unit', async () => {
    const sku = await seedSku(2);
    const placed = await placeOrder([{ sku, quantity: 1 }]);
    await Promise.all([inventory.reserveStockForOrder(placed), payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]);
    const [confirmed] = publishedEvents(placed.orderId);
    if (confirmed?.eventType !== 'OrderConfirmed') throw new Error('expected OrderConfirmed');
    await shipping.dispatchShipmentForOrder(confirmed);
    const { Item } = await stack.db.send(new GetCommand({ TableName: stack.table('OrdersTable'), Key: { orderId: placed.orderId } }));
    // DynamoDB's item size: attribute names plus values; JSON is a close upper bound for these types.
    expect(JSON.stringify(Item).length).toBeLessThan(1024);
    expect(Item).not.toHaveProperty('placedEvent');
  });
});
