import { SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeCreatedOrder } from '../support/stored-order.js';
import type { OrderEvent, OrderPlaced } from '../../lib/events.js';
import type { OrderItem, OrderRequest } from '../../lib/order.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';

// The saga's domain functions against the real emulators, on the tables and topic provisioned from
// the packaged template (test/support/provisioned-stack.ts): dynalite for DynamoDB, fauxqs for SNS
// (a raw-delivery queue of this test's own on the topic counts what was published). Environment
// first, then the lib modules, which read it when they first build a client.

type Inventory = typeof import('../../lib/inventory.js');
type Payments = typeof import('../../lib/payments.js');
type Shipping = typeof import('../../lib/shipping.js');
type Outcome = typeof import('../../lib/order-outcome.js');
type Orders = typeof import('../../lib/orders.js');
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

beforeAll(async () => {
  stack = await startProvisionedStack();
  topicArn = stack.resources.topicArn ?? '';
  if (!topicArn) throw new Error('The template subscribes no queue to a topic');
  // Every event published on the topic, whatever its type: no filter policy.
  const { QueueUrl } = await stack.sqs.send(new CreateQueueCommand({ QueueName: CAPTURE_QUEUE }));
  const { Attributes } = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  await stack.sns.send(
    new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: Attributes?.QueueArn, Attributes: { RawMessageDelivery: 'true' } }),
  );
  Object.assign(process.env, { POWERTOOLS_LOG_LEVEL: 'WARN', POWERTOOLS_METRICS_DISABLED: 'true' });

  [inventory, payments, shipping, outcome, orders, provider] = await Promise.all([
    import('../../lib/inventory.js'),
    import('../../lib/payments.js'),
    import('../../lib/shipping.js'),
    import('../../lib/order-outcome.js'),
    import('../../lib/orders.js'),
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
      Item: { sku, name: `Test item ${skuCounter}`, available, reserved: 0, sold: 0, applying: {} },
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
    shippingAddress: { name: 'Ada', line1: '1 Main St', city: 'Springfield', postalCode: '12345', country: 'US' },
  };
  return (await storeCreatedOrder('cus_test', request)).placedEvent;
}

/** Every event published on the topic so far, left in place (inspection does not consume). */
function publishedEvents(orderId?: string): OrderEvent[] {
  const queue = stack.emulators.fauxqs.inspectQueue(CAPTURE_QUEUE);
  const messages = [...(queue?.messages.ready ?? []), ...(queue?.messages.delayed ?? [])];
  return messages
    .map((message) => JSON.parse(message.body) as OrderEvent)
    .filter((event) => orderId === undefined || event.orderId === orderId);
}

describe('inventory reservations', () => {
  it('concurrent orders for a scarce SKU, raced round after round on fresh SKUs: exactly the stock is reserved, never more', async () => {
    // [units in stock, units per order, orders racing]: each round a race of its own on a new SKU.
    const rounds: Array<[number, number, number]> = [
      [10, 1, 50],
      [10, 1, 50],
      [7, 2, 40],
      [10, 3, 40],
      [1, 1, 40],
      [5, 5, 30],
    ];
    for (const [round, [units, quantity, racers]] of rounds.entries()) {
      const sku = await seedSku(units);
      const orderIds = Array.from({ length: racers }, (_, i) => `ord_race_${round}_${i}`);
      const results = await Promise.all(orderIds.map((orderId) => inventory.reserveInventory(orderId, [{ sku, quantity }])));
      const winners = Math.floor(units / quantity);
      const reserved = results.filter((r) => r.outcome === 'reserved').length;
      const item = await stock(sku);
      const label = `round ${round}: ${racers} orders of ${quantity} for ${units} units`;
      console.log(`reservation race, ${label}: ${reserved} reserved, available ${item.available}, reserved ${item.reserved}`);
      expect(reserved, label).toBe(winners);
      expect(results.filter((r) => r.outcome === 'out-of-stock'), label).toHaveLength(racers - winners);
      expect(item, label).toMatchObject({ available: units - winners * quantity, reserved: winners * quantity, applying: {} });
      const lines = await Promise.all(orderIds.map((orderId) => inventory.findReservationLine(orderId, sku)));
      expect(lines.filter((line) => line?.state === 'RESERVED'), label).toHaveLength(winners);
      // Each loser holds nothing: its one line is the short one, released without units.
      expect(lines.filter((line) => line?.state === 'RELEASED' && line.shortSku === sku), label).toHaveLength(racers - winners);
    }
  });

  it('is all or none: a short later line releases the earlier ones and reports OUT_OF_STOCK', async () => {
    const plenty = await seedSku(5);
    const scarce = await seedSku(1);
    const result = await inventory.reserveInventory('ord_allornone', [
      { sku: plenty, quantity: 2 },
      { sku: scarce, quantity: 2 },
    ]);
    expect(result).toEqual({ outcome: 'out-of-stock', sku: scarce, released: 1 });
    expect(await stock(plenty)).toMatchObject({ available: 5, reserved: 0, applying: {} });
    expect(await stock(scarce)).toMatchObject({ available: 1, reserved: 0, applying: {} });
  });

  it('treats an unknown SKU as out of stock', async () => {
    const known = await seedSku(3);
    const result = await inventory.reserveInventory('ord_unknown', [
      { sku: known, quantity: 1 },
      { sku: 'SKU-NOT-THERE', quantity: 1 },
    ]);
    expect(result.outcome).toBe('out-of-stock');
    expect(await stock(known)).toMatchObject({ available: 3, reserved: 0 });
  });

  it('a retry after a crash between two lines does not reserve the first line twice', async () => {
    const first = await seedSku(5);
    const second = await seedSku(5);
    const items = [
      { sku: first, quantity: 2 },
      { sku: second, quantity: 3 },
    ];
    // The "crash": the first attempt only got through line one.
    await inventory.reserveInventory('ord_crash', items.slice(0, 1));
    const retried = await inventory.reserveInventory('ord_crash', items);
    expect(retried.outcome).toBe('reserved');
    expect(await stock(first)).toMatchObject({ available: 3, reserved: 2, applying: {} });
    expect(await stock(second)).toMatchObject({ available: 2, reserved: 3, applying: {} });
    expect(await inventory.findReservationLine('ord_crash', first)).toMatchObject({ quantity: 2, state: 'RESERVED' });
    expect(await inventory.findReservationLine('ord_crash', second)).toMatchObject({ quantity: 3, state: 'RESERVED' });
    // And once more, as a duplicate delivery would.
    await inventory.reserveInventory('ord_crash', items);
    expect(await stock(first)).toMatchObject({ available: 3, reserved: 2 });
  });

  it('commits and releases at most once', async () => {
    const sku = await seedSku(10);
    const items = [{ sku, quantity: 4 }];
    await inventory.reserveInventory('ord_commit', items);
    await inventory.reserveInventory('ord_release', items);
    // One after the other, as redeliveries come: two at once are kept apart by the consumer's
    // idempotency record, not by these functions (docs/decisions.md).
    const commits: number[] = [];
    const releases: number[] = [];
    for (let delivery = 0; delivery < 3; delivery += 1) {
      commits.push(await inventory.commitReservation('ord_commit', items));
      releases.push(await inventory.releaseReservation('ord_release', items));
    }
    expect(commits.reduce((a, b) => a + b)).toBe(1);
    expect(releases.reduce((a, b) => a + b)).toBe(1);
    // Releasing what was committed, or never reserved, does nothing.
    expect(await inventory.releaseReservation('ord_commit', items)).toBe(0);
    expect(await inventory.releaseReservation('ord_never', items)).toBe(0);
    expect(await stock(sku)).toMatchObject({ available: 6, reserved: 0, sold: 4, applying: {} });
  });
});

describe('payments', () => {
  it('tok_flaky fails twice with a transient error, then charges exactly once', async () => {
    const order = await placeOrder([{ sku: 'SKU-ANY', quantity: 3 }], 'tok_flaky');
    const { orderId } = order;
    const attempt = () => payments.chargePayment(orderId, 'tok_flaky', order.data.items);
    await expect(attempt()).rejects.toBeInstanceOf(provider.TransientProviderError);
    await expect(attempt()).rejects.toBeInstanceOf(provider.TransientProviderError);
    const third = await attempt();
    const fourth = await attempt();
    expect(third).toMatchObject({ outcome: 'charged', amount: 3 * payments.UNIT_PRICE_CENTS });
    expect(fourth).toEqual(third);
    const ledger = await payments.ledgerOf(orderId);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ entryId: 'CHARGE', tokenMasked: 'tok_****laky' });
    const simulator = await stack.db.send(new GetCommand({ TableName: stack.table('PaymentsTable'), Key: { orderId, entryId: 'SIMULATOR#CHARGE' } }));
    expect(simulator.Item).toMatchObject({ attempts: 3, chargeId: (third as { chargeId: string }).chargeId });
  });

  it('a provider that charged but crashed before the ledger write gives the same charge on retry', async () => {
    const sim = new provider.SimulatedPaymentProvider();
    const first = await sim.charge({ idempotencyKey: 'ord_provider_retry', token: 'tok_visa', amount: 1000 });
    const result = await payments.chargePayment('ord_provider_retry', 'tok_visa', [{ sku: 'X', quantity: 1 }], sim);
    expect(result).toMatchObject({ outcome: 'charged', chargeId: (first as { chargeId: string }).chargeId });
  });

  it('tok_decline is a declined outcome, not an error, and leaves no charge', async () => {
    const result = await payments.chargePayment('ord_declined', 'tok_decline', [{ sku: 'X', quantity: 1 }]);
    expect(result).toEqual({ outcome: 'declined', declineCode: 'card_declined' });
    expect(await payments.ledgerOf('ord_declined')).toEqual([]);
    expect(await payments.refundPayment('ord_declined')).toEqual({ outcome: 'no-charge' });
  });

  it('refunds a charge at most once, even when asked concurrently', async () => {
    await payments.chargePayment('ord_refund', 'tok_visa', [{ sku: 'X', quantity: 2 }]);
    const results = await Promise.all([1, 2, 3, 4].map(() => payments.refundPayment('ord_refund')));
    expect(results.filter((r) => r.outcome === 'refunded')).toHaveLength(1);
    const refundIds = new Set(results.map((r) => ('refundId' in r ? r.refundId : undefined)));
    expect(refundIds.size).toBe(1);
    const ledger = await payments.ledgerOf('ord_refund');
    expect(ledger.map((e) => e.entryId).sort()).toEqual(['CHARGE', 'REFUND']);
  });
});

describe('shipping', () => {
  it('prepares once, then dispatches or cancels once', async () => {
    const address = { name: 'Ada', line1: '1 Main St', city: 'Springfield', postalCode: '1', country: 'US' };
    const items = [{ sku: 'X', quantity: 1 }];
    const [a, b] = await Promise.all([
      shipping.prepareShipment('ord_ship_1', items, address),
      shipping.prepareShipment('ord_ship_1', items, address),
    ]);
    expect(a.trackingNumber).toBe(b.trackingNumber);
    const dispatches = await Promise.all([1, 2, 3].map(() => shipping.dispatchShipment('ord_ship_1')));
    expect(dispatches.filter(Boolean)).toHaveLength(1);
    expect(await shipping.cancelShipment('ord_ship_1')).toBe(false);
    expect(await shipping.findShipment('ord_ship_1')).toMatchObject({ status: 'DISPATCHED' });

    await shipping.prepareShipment('ord_ship_2', items, address);
    const cancels = await Promise.all([1, 2, 3].map(() => shipping.cancelShipment('ord_ship_2')));
    expect(cancels.filter(Boolean)).toHaveLength(1);
    expect(await shipping.findShipment('ord_ship_2')).toMatchObject({ status: 'CANCELLED' });
    expect(await shipping.cancelShipment('ord_never_shipped')).toBe(false);
  });
});

describe('order outcome', () => {
  it('two stages finishing at the same moment: exactly one decision and one publish', async () => {
    const sku = await seedSku(5);
    const placed = await placeOrder([{ sku, quantity: 1 }]);
    await inventory.reserveStockForOrder(placed);
    const [payment, ship] = await Promise.all([payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]);
    const winners = [payment, ship].filter((c) => c.settle.decision === 'decided-here');
    expect(winners).toHaveLength(1);
    const order = await outcome.loadOrder(placed.orderId);
    expect(order).toMatchObject({ status: 'CONFIRMED', decidedBy: winners[0]?.stage });
    expect(order.outcomePublishedAt).toBeDefined();
    // Decided, but its follow-ups are still to come: it stays in the sweep's index, due a
    // threshold after the decision, its attempts counted afresh.
    expect(order.sweepShard).toMatch(/^S[0-7]$/);
    expect(Date.parse(order.sweepDueAt!)).toBeGreaterThan(Date.parse(order.decidedAt!));
    expect(order.sweepAttempts).toBe(0);
    const published = publishedEvents(placed.orderId);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ eventType: 'OrderConfirmed', eventId: `${placed.orderId}:OrderConfirmed` });
  });

  it('two settle calls on the same complete order: the conditional decision write lets exactly one win', async () => {
    const placed = await placeOrder([{ sku: 'SKU-ANY', quantity: 1 }]);
    await outcome.recordStageResult(placed.orderId, 'inventory', { status: 'SUCCEEDED', what: 'reserved' });
    // Both writes land before either stage settles, so both see all three stages in.
    const [afterPayment, afterShipping] = await Promise.all([
      outcome.recordStageResult(placed.orderId, 'payment', { status: 'SUCCEEDED', what: 'charged' }),
      outcome.recordStageResult(placed.orderId, 'shipping', { status: 'SUCCEEDED', what: 'prepared' }),
    ]);
    const complete = await outcome.loadOrder(placed.orderId);
    if (!afterPayment || !afterShipping) throw new Error('both stage writes should have landed');
    const results = await Promise.all([
      outcome.settleOrder(complete, 'payment'),
      outcome.settleOrder(complete, 'shipping'),
      outcome.settleOrder(complete, 'inventory'),
    ]);
    expect(results.filter((r) => r.decision === 'decided-here')).toHaveLength(1);
    expect(results.filter((r) => r.decision === 'decided-elsewhere')).toHaveLength(2);
    expect(publishedEvents(placed.orderId).map((e) => e.eventType)).toEqual(['OrderConfirmed']);
    // A stage recorded twice is recorded once.
    expect(await outcome.recordStageResult(placed.orderId, 'payment', { status: 'SUCCEEDED', what: 'charged' })).toBeUndefined();
  });

  it('all three stages racing, many times over: exactly one decision and one publish per order', async () => {
    const ROUNDS = 5;
    const ORDERS_PER_ROUND = 20;
    for (let round = 0; round < ROUNDS; round += 1) {
      // Every fourth order declined, so CANCELLED decisions race as well as CONFIRMED ones.
      const placedOrders = await Promise.all(
        Array.from({ length: ORDERS_PER_ROUND }, async (_, i) => placeOrder([{ sku: await seedSku(1), quantity: 1 }], i % 4 === 3 ? 'tok_decline' : 'tok_visa')),
      );
      // All three stages of all the orders at once.
      const completions = await Promise.all(
        placedOrders.map((placed) =>
          Promise.all([inventory.reserveStockForOrder(placed), payments.chargeForOrder(placed), shipping.prepareShipmentForOrder(placed)]),
        ),
      );
      for (const [i, placed] of placedOrders.entries()) {
        const declined = i % 4 === 3;
        const label = `round ${round}, order ${i}`;
        const deciders = completions[i]!.filter((c) => c.settle.decision === 'decided-here').map((c) => c.stage);
        expect(deciders, label).toHaveLength(1);
        const order = await outcome.loadOrder(placed.orderId);
        expect({ status: order.status, decidedBy: order.decidedBy }, label).toEqual({ status: declined ? 'CANCELLED' : 'CONFIRMED', decidedBy: deciders[0] });
        expect(publishedEvents(placed.orderId).map((e) => e.eventType), label).toEqual([declined ? 'OrderCancelled' : 'OrderConfirmed']);
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
    expect(await stock(sku)).toMatchObject({ available: 5, reserved: 0, applying: {} });
    expect(await payments.ledgerOf(placed.orderId)).toEqual([]);
    expect(await shipping.findShipment(placed.orderId)).toMatchObject({ status: 'CANCELLED' });
    const after = await outcome.loadOrder(placed.orderId);
    expect(after.stages.inventory).toMatchObject({ status: 'COMPENSATED' });
    expect(after.stages.inventory.timeline.map((e) => e.what)).toEqual(['reserved 2 unit(s) of 1 SKU(s)', 'released']);
    expect(after.stages.payment).toMatchObject({ status: 'REJECTED', reason: 'PAYMENT_DECLINED' });
    expect(after.stages.shipping.status).toBe('COMPENSATED');
    expect(after.stages.shipping.timeline.filter((e) => e.what === 'cancelled')).toHaveLength(1);
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
    await Promise.all([1, 2, 3].map(() => payments.refundForOrder(cancelled)));
    await Promise.all([1, 2].map(() => inventory.releaseStockForOrder(cancelled)));
    const ledger = await payments.ledgerOf(placed.orderId);
    expect(ledger.map((e) => e.entryId).sort()).toEqual(['CHARGE', 'REFUND']);
    const after = await outcome.loadOrder(placed.orderId);
    expect(after.stages.payment.status).toBe('COMPENSATED');
    expect(after.stages.payment.timeline.filter((e) => e.what === 'refunded')).toHaveLength(1);
    expect(after.stages.inventory).toMatchObject({ status: 'REJECTED', reason: 'OUT_OF_STOCK' });
    expect(await stock(sku)).toMatchObject({ available: 1, reserved: 0 });
  });

  it('confirmation commits stock and dispatches once, each noted once on the timeline', async () => {
    const sku = await seedSku(4);
    const placed = await placeOrder([{ sku, quantity: 3 }]);
    await Promise.all([
      inventory.reserveStockForOrder(placed),
      payments.chargeForOrder(placed),
      shipping.prepareShipmentForOrder(placed),
    ]);
    const [confirmed] = publishedEvents(placed.orderId);
    if (confirmed?.eventType !== 'OrderConfirmed') throw new Error('expected OrderConfirmed');
    for (let delivery = 0; delivery < 2; delivery += 1) {
      await Promise.all([inventory.commitStockForOrder(confirmed), shipping.dispatchShipmentForOrder(confirmed)]);
    }
    expect(await stock(sku)).toMatchObject({ available: 1, reserved: 0, sold: 3, applying: {} });
    expect(await shipping.findShipment(placed.orderId)).toMatchObject({ status: 'DISPATCHED' });
    const after = await outcome.loadOrder(placed.orderId);
    expect(after.stages.inventory.timeline.map((e) => e.what)).toEqual(['reserved 3 unit(s) of 1 SKU(s)', 'committed']);
    expect(after.stages.shipping.timeline.filter((e) => e.what === 'dispatched')).toHaveLength(1);
    expect(after.stages.shipping.status).toBe('SUCCEEDED');
  });

  it('heals a crash between the decision write and the publish: the retry publishes', async () => {
    const sku = await seedSku(2);
    const placed = await placeOrder([{ sku, quantity: 1 }]);
    await inventory.reserveStockForOrder(placed);
    await payments.chargeForOrder(placed);
    // The "crash": publishing fails after the decision was written.
    process.env.ORDER_EVENTS_TOPIC_ARN = 'arn:aws:sns:us-east-1:000000000000:no-such-topic';
    try {
      await expect(shipping.prepareShipmentForOrder(placed)).rejects.toThrow();
    } finally {
      process.env.ORDER_EVENTS_TOPIC_ARN = topicArn;
    }
    const decided = await outcome.loadOrder(placed.orderId);
    expect(decided).toMatchObject({ status: 'CONFIRMED', decidedBy: 'shipping' });
    expect(decided.outcomePublishedAt).toBeUndefined();
    expect(publishedEvents(placed.orderId)).toEqual([]);

    // Another stage seeing the decided order does not publish: only the decider's retry does.
    expect((await inventory.reserveStockForOrder(placed)).settle.decision).toBe('decided-elsewhere');
    expect(publishedEvents(placed.orderId)).toEqual([]);

    const retry = await shipping.prepareShipmentForOrder(placed);
    expect(retry).toMatchObject({ recorded: 'earlier', settle: { decision: 'decided-here', published: true } });
    expect(publishedEvents(placed.orderId).map((e) => e.eventType)).toEqual(['OrderConfirmed']);
    expect((await outcome.loadOrder(placed.orderId)).outcomePublishedAt).toBeDefined();
    // A further retry publishes nothing more.
    await shipping.prepareShipmentForOrder(placed);
    expect(publishedEvents(placed.orderId)).toHaveLength(1);
  });

  it('a late OrderPlaced after the order was cancelled and released reserves nothing again', async () => {
    const sku = await seedSku(3);
    const placed = await placeOrder([{ sku, quantity: 1 }], 'tok_decline');
    await Promise.all([
      inventory.reserveStockForOrder(placed),
      payments.chargeForOrder(placed),
      shipping.prepareShipmentForOrder(placed),
    ]);
    const [cancelled] = publishedEvents(placed.orderId);
    if (cancelled?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    await inventory.releaseStockForOrder(cancelled);
    await inventory.reserveStockForOrder(placed);
    expect(await stock(sku)).toMatchObject({ available: 3, reserved: 0, applying: {} });
  });
});
