import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderCancelled, OrderConfirmed, OrderEvent, OrderPlaced } from '../../lib/events.js';
import { sampleOrder } from '../../local/sample-order.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { capturePublishedEvents } from '../support/published-events.js';
import { storeCreatedOrder } from '../support/stored-order.js';

// A customer's cancellation (lib/cancel-order.ts) against the real emulators, with the events
// delivered to each participant by hand and in the orders a standard queue may choose: OrderCancelled
// before OrderPlaced, OrderConfirmed after the cancellation, a cancel racing the deciding result.
// Whatever the order, each order ends cancelled with nothing left standing: no units taken, no
// charge without its refund, no shipment left prepared or dispatched.

type Inventory = typeof import('../../lib/inventory.js');
type Payments = typeof import('../../lib/payments.js');
type Shipping = typeof import('../../lib/shipping.js');
type Outcome = typeof import('../../lib/order-outcome.js');
type Cancel = typeof import('../../lib/cancel-order.js');
type Tokens = typeof import('../../lib/payment-tokens.js');

let inventory: Inventory;
let payments: Payments;
let shipping: Shipping;
let outcome: Outcome;
let cancellation: Cancel;
let tokens: Tokens;
let awsClients: typeof import('../../lib/aws-clients.js');
let TransientProviderError: typeof import('../../lib/payment-provider.js').TransientProviderError;
let stack: ProvisionedStack;
const CAPTURE_QUEUE = 'cancel-test-published';
const CUSTOMER = 'cus_cancel';
/** Every event published for an order so far (inspection does not consume). */
let published: (orderId: string) => OrderEvent[];

beforeAll(async () => {
  stack = await startProvisionedStack();
  published = await capturePublishedEvents(stack, CAPTURE_QUEUE);
  Object.assign(process.env, { POWERTOOLS_LOG_LEVEL: 'WARN', POWERTOOLS_METRICS_DISABLED: 'true' });
  [inventory, payments, shipping, outcome, cancellation, tokens] = await Promise.all([
    import('../../lib/inventory.js'),
    import('../../lib/payments.js'),
    import('../../lib/shipping.js'),
    import('../../lib/order-outcome.js'),
    import('../../lib/cancel-order.js'),
    import('../../lib/payment-tokens.js'),
  ]);
  ({ TransientProviderError } = await import('../../lib/payment-provider.js'));
  awsClients = await import('../../lib/aws-clients.js');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-CANCEL-${skuCounter}`;
  await stack.db.send(new PutCommand({ TableName: stack.table('InventoryTable'), Item: { sku, name: sku, available, applying: {} } }));
  return sku;
}

async function place(sku: string, quantity = 2): Promise<OrderPlaced> {
  return (await storeCreatedOrder(CUSTOMER, sampleOrder([{ sku, quantity }]))).placedEvent;
}

const placedTo = {
  inventory: (event: OrderPlaced) => inventory.reserveStockForOrder(event),
  payment: (event: OrderPlaced) => payments.chargeForOrder(event),
  shipping: (event: OrderPlaced) => shipping.prepareShipmentForOrder(event),
};
const cancelledTo = {
  inventory: (event: OrderCancelled) => inventory.releaseStockForOrder(event),
  payment: (event: OrderCancelled) => payments.refundForOrder(event),
  shipping: (event: OrderCancelled) => shipping.cancelShipmentForOrder(event),
};

/** Delivers every OrderCancelled published for the order to all three participants, as their queues would (again and again is fine). */
async function deliverCancellations(orderId: string): Promise<void> {
  for (const event of published(orderId)) {
    if (event.eventType === 'OrderCancelled') await Promise.all(Object.values(cancelledTo).map((handle) => handle(event)));
  }
}

/** What must hold for every cancelled order, once its events are delivered. */
async function expectNothingStanding(placed: OrderPlaced, sku: string, initial: number): Promise<void> {
  const order = await outcome.loadOrder(placed.orderId);
  expect(order).toMatchObject({ status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' });
  const item = await inventory.findStockItem(sku);
  expect(item, 'no units taken').toMatchObject({ available: initial, applying: {} });
  expect(order.payment?.outcome !== 'SUCCEEDED' || order.refund !== undefined, 'no charge without its refund').toBe(true);
  expect(order.dispatchedAt, 'not dispatched').toBeUndefined();
  expect(order.shipping?.outcome !== 'SUCCEEDED' || order.shipmentCancelledAt !== undefined, 'no shipment left prepared').toBe(true);
  const { missingFollowUps } = await import('../../lib/order-store.js');
  expect(missingFollowUps(order)).toEqual([]);
}

describe('POST /orders/{orderId}/cancel, in the domain', () => {
  it('cancels an order before any participant ran: the late OrderPlaced deliveries do nothing, or undo what they did', async () => {
    const sku = await seedSku(5);
    const placed = await place(sku);
    const result = await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    expect(result).toMatchObject({ outcome: 'cancelled', published: true, order: { status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' } });
    expect(published(placed.orderId).map((e) => e.eventType)).toEqual(['OrderCancelled']);
    // OrderCancelled first (nothing to compensate yet), then the OrderPlaced deliveries.
    await deliverCancellations(placed.orderId);
    const completions = await Promise.all(Object.values(placedTo).map((handle) => handle(placed)));
    // Inventory and payment find the cancellation and skip; shipping (which reads nothing first)
    // records its result, finds the order cancelled and asks for its compensation again.
    expect(completions.map((c) => c.recorded)).toEqual(['skipped', 'skipped', 'SUCCEEDED']);
    await deliverCancellations(placed.orderId);
    await expectNothingStanding(placed, sku, 5);
  });

  it('a participant that takes OrderCancelled before its OrderPlaced ends with nothing standing', async () => {
    const sku = await seedSku(5);
    const placed = await place(sku);
    await inventory.reserveStockForOrder(placed);
    await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    // Payment and shipping get OrderCancelled first; then their OrderPlaced comes in.
    const [cancelled] = published(placed.orderId);
    if (cancelled?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    await Promise.all([cancelledTo.payment(cancelled), cancelledTo.shipping(cancelled)]);
    await Promise.all([placedTo.payment(placed), placedTo.shipping(placed)]);
    // Inventory had reserved: its OrderCancelled releases.
    await cancelledTo.inventory(cancelled);
    await deliverCancellations(placed.orderId);
    await expectNothingStanding(placed, sku, 5);
    expect((await outcome.loadOrder(placed.orderId)).payment).toBeUndefined();
  });

  it('cancels a confirmed order before dispatch: a late OrderConfirmed dispatches nothing; refund, restock and shipment cancelled', async () => {
    const sku = await seedSku(5);
    const placed = await place(sku);
    await Promise.all(Object.values(placedTo).map((handle) => handle(placed)));
    const [confirmed] = published(placed.orderId);
    if (confirmed?.eventType !== 'OrderConfirmed') throw new Error('expected OrderConfirmed');
    expect(await cancellation.cancelOrder(CUSTOMER, placed.orderId)).toMatchObject({ outcome: 'cancelled' });
    expect(await shipping.dispatchShipmentForOrder(confirmed as OrderConfirmed)).toEqual({ dispatched: false });
    await deliverCancellations(placed.orderId);
    await expectNothingStanding(placed, sku, 5);
    expect((await outcome.loadOrder(placed.orderId)).refund).toBeDefined();
    // Asked again: the same answer, nothing more happens.
    expect(await cancellation.cancelOrder(CUSTOMER, placed.orderId)).toMatchObject({ outcome: 'already-cancelled' });
  });

  it('refuses once the parcel is dispatched, naming why, and changes nothing', async () => {
    const sku = await seedSku(5);
    const placed = await place(sku);
    await Promise.all(Object.values(placedTo).map((handle) => handle(placed)));
    const [confirmed] = published(placed.orderId);
    await shipping.dispatchShipmentForOrder(confirmed as OrderConfirmed);
    const result = await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    expect(result).toMatchObject({ outcome: 'refused', why: expect.stringMatching(/^its parcel was dispatched at /) });
    expect((await outcome.loadOrder(placed.orderId)).status).toBe('CONFIRMED');
    expect(await inventory.findStockItem(sku)).toMatchObject({ available: 3 });
  });

  it('refuses an order a participant rejected, and answers another customer as if it did not exist', async () => {
    const sku = await seedSku(1);
    const placed = await place(sku, 2);
    await inventory.reserveStockForOrder(placed);
    expect(await cancellation.cancelOrder(CUSTOMER, placed.orderId)).toMatchObject({
      outcome: 'refused',
      why: expect.stringContaining('inventory participant rejected it'),
    });
    expect(await cancellation.cancelOrder('cus_someone_else', placed.orderId)).toEqual({ outcome: 'not-found' });
  });

  it('a cancel racing the deciding result, many times over: every order ends cancelled with nothing standing', async () => {
    for (let round = 0; round < 12; round += 1) {
      const sku = await seedSku(5);
      const placed = await place(sku);
      await Promise.all([placedTo.inventory(placed), placedTo.payment(placed)]);
      // The last result and the cancellation at once: either may land first.
      const [cancel] = await Promise.all([cancellation.cancelOrder(CUSTOMER, placed.orderId), placedTo.shipping(placed)]);
      expect(cancel.outcome, `round ${round}`).toBe('cancelled');
      // Whatever came first, a late OrderConfirmed (if there was one) dispatches nothing.
      for (const event of published(placed.orderId)) {
        if (event.eventType === 'OrderConfirmed') expect((await shipping.dispatchShipmentForOrder(event)).dispatched).toBe(false);
      }
      await deliverCancellations(placed.orderId);
      await expectNothingStanding(placed, sku, 5);
    }
  });
});

describe('a charge made by an attempt that died before recording it, then a cancellation', () => {
  // Every delivery after the cancellation finds it; the one after such an attempt must still find
  // the charge, record it and have it refunded, never leave it standing unrecorded. The token is the
  // durable fact: taken (marked) before the provider is called, forgotten by the cancellation only
  // while untaken (lib/payment-tokens.ts).
  const tokenOf = async (orderId: string) =>
    (await stack.db.send(new GetCommand({ TableName: stack.table('PaymentTokensTable'), Key: { orderId }, ConsistentRead: true }))).Item;
  /** A provider that answers a key with the same charge, as a real one does, counts its calls, and can fail the next ones. */
  function countingProvider() {
    const calls: string[] = [];
    let failures: Error[] = [];
    return {
      calls,
      failNext: (...errors: Error[]) => {
        failures = errors;
      },
      charge: async (request: { idempotencyKey: string }) => {
        const failure = failures.shift();
        // An open circuit fails before the provider: no call goes out.
        if (failure?.name !== 'CircuitOpenError') calls.push(`charge ${request.idempotencyKey}`);
        if (failure) throw failure;
        return { status: 'succeeded' as const, chargeId: `ch_${request.idempotencyKey}` };
      },
      refund: async (request: { idempotencyKey: string }) => {
        calls.push(`refund ${request.idempotencyKey}`);
        return { status: 'refunded' as const, refundId: `re_${request.idempotencyKey}` };
      },
    };
  }
  /** The cancellation written on the order, its forgetting of the token not (yet). */
  const writeCancelOnly = (orderId: string) =>
    stack.db.send(
      new UpdateCommand({
        TableName: stack.table('OrdersTable'),
        Key: { orderId },
        UpdateExpression: 'SET cancel = :cancel',
        ExpressionAttributeValues: { ':cancel': { at: new Date().toISOString() } },
      }),
    );
  /** The OrderCancelled of a cancelled order, as the decider or the sweep publishes it. */
  const cancelledEventFor = (orderId: string): OrderCancelled => ({
    eventId: `${orderId}:OrderCancelled`,
    eventType: 'OrderCancelled',
    orderId,
    occurredAt: new Date().toISOString(),
    data: { reason: 'CUSTOMER_CANCELLED' },
  });
  /** Runs `before` ahead of each DeleteItem on the tokens table that the code under test sends. */
  async function aroundTokenDelete<T>(before: () => Promise<void>, body: () => Promise<T>): Promise<T> {
    const name = `tokenDeleteHook${Math.random()}`;
    const middlewareStack = awsClients.dynamoDbClient().middlewareStack;
    middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { TableName?: string };
        if (context.commandName === 'DeleteItemCommand' && input.TableName === stack.table('PaymentTokensTable')) await before();
        return next(args);
      },
      { step: 'initialize', name },
    );
    try {
      return await body();
    } finally {
      middlewareStack.remove(name);
    }
  }
  const cancelledEventOf = (orderId: string): OrderCancelled => {
    const event = published(orderId).find((e) => e.eventType === 'OrderCancelled');
    if (event?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    return event;
  };

  /**
   * An order whose payment attempt took the token, charged, and died before recording (no
   * Powertools record is left to say so: Powertools deletes it when a call fails, and it expires),
   * then cancelled by the customer.
   */
  async function chargedByADeadAttemptThenCancelled() {
    const placed = await place(await seedSku(5));
    const provider = countingProvider();
    expect(await tokens.takePaymentToken(placed.orderId)).toMatchObject({ take: 1 });
    await provider.charge({ idempotencyKey: placed.orderId });
    await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    return { placed, provider };
  }

  it('the cancellation keeps the token; the next delivery asks the provider again under the same key, through a failed call, records the charge, and it is refunded', async () => {
    const { placed, provider } = await chargedByADeadAttemptThenCancelled();
    expect(await tokenOf(placed.orderId), 'a taken token is not forgotten by the cancellation').toBeDefined();

    // The provider is down for the next delivery: nothing is concluded from that.
    provider.failNext(new TransientProviderError('provider unavailable'));
    await expect(payments.chargeForOrder(placed, provider)).rejects.toBeInstanceOf(TransientProviderError);
    expect(await tokenOf(placed.orderId)).toBeDefined();
    expect((await outcome.loadOrder(placed.orderId)).payment).toBeUndefined();

    expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('SUCCEEDED');
    expect((await outcome.loadOrder(placed.orderId)).payment).toMatchObject({ outcome: 'SUCCEEDED', chargeId: `ch_${placed.orderId}` });
    expect(await tokenOf(placed.orderId)).toBeUndefined();
    expect(await payments.refundForOrder(cancelledEventOf(placed.orderId), provider)).toMatchObject({ outcome: 'refunded' });
    expect((await outcome.loadOrder(placed.orderId)).refund).toBeDefined();
    // The same key every time: one charge at a real provider, refunded.
    expect(provider.calls).toEqual([...Array(3).fill(`charge ${placed.orderId}`), `refund ${placed.orderId}`]);
  });

  it('cancelled before any attempt took the token: the cancellation forgets it, and a later delivery charges nothing', async () => {
    const placed = await place(await seedSku(5));
    await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    expect(await tokenOf(placed.orderId)).toBeUndefined();
    const provider = countingProvider();

    expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('skipped');
    expect((await outcome.loadOrder(placed.orderId)).payment).toBeUndefined();
    expect(provider.calls).toEqual([]);
  });

  it('a delivery that takes the token between the cancellation and its forgetting charges nothing, and forgets the token itself', async () => {
    const placed = await place(await seedSku(5));
    await writeCancelOnly(placed.orderId);
    const provider = countingProvider();

    expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('skipped');
    expect(await tokenOf(placed.orderId)).toBeUndefined();
    expect((await outcome.loadOrder(placed.orderId)).payment).toBeUndefined();
    expect(provider.calls).toEqual([]);
  });

  it('a delivery that found the cancellation leaves the token to one that took it since: that one charges, records, and it is refunded', async () => {
    const placed = await place(await seedSku(5));
    await writeCancelOnly(placed.orderId);
    const provider = countingProvider();
    // While the first delivery decides to skip, a second takes the token, charges and dies.
    let secondRan = false;
    await aroundTokenDelete(
      async () => {
        if (secondRan) return;
        secondRan = true;
        expect(await tokens.takePaymentToken(placed.orderId)).toMatchObject({ take: 2 });
        await provider.charge({ idempotencyKey: placed.orderId });
      },
      async () => expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('skipped'),
    );
    expect(secondRan).toBe(true);
    expect(await tokenOf(placed.orderId), "kept for the second delivery's charge").toMatchObject({ takes: 1 });

    expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('SUCCEEDED');
    expect(await payments.refundForOrder(cancelledEventFor(placed.orderId), provider)).toMatchObject({ outcome: 'refunded' });
    expect(provider.calls).toEqual([`charge ${placed.orderId}`, `charge ${placed.orderId}`, `refund ${placed.orderId}`]);
  });

  it('a delivery whose call met an open circuit gives its take back: a cancellation then forgets the token, and nothing is charged', async () => {
    const placed = await place(await seedSku(5));
    const provider = countingProvider();
    const { CircuitOpenError } = await import('../../lib/payment-provider.js');
    provider.failNext(new CircuitOpenError('Payment provider circuit is open: failing fast'));
    await expect(payments.chargeForOrder(placed, provider)).rejects.toBeInstanceOf(CircuitOpenError);
    await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    expect(await tokenOf(placed.orderId)).toBeUndefined();

    expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('skipped');
    expect(provider.calls).toEqual([]);
  });

  it('a taken token past its expiry is still used: the charge it may stand for is recorded and refunded', async () => {
    const { placed, provider } = await chargedByADeadAttemptThenCancelled();
    // Retried for longer than the token's TTL (DynamoDB deletes expired items lazily).
    await stack.db.send(
      new UpdateCommand({
        TableName: stack.table('PaymentTokensTable'),
        Key: { orderId: placed.orderId },
        UpdateExpression: 'SET expiresAt = :past',
        ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 60 },
      }),
    );

    expect((await payments.chargeForOrder(placed, provider)).recorded).toBe('SUCCEEDED');
    expect(await payments.refundForOrder(cancelledEventFor(placed.orderId), provider)).toMatchObject({ outcome: 'refunded' });
  });

  /** One run of the sweep as if its time had come, capturing what it publishes for this order. */
  async function sweepFor(orderId: string): Promise<OrderEvent[]> {
    const { sweepUnfinishedOrders } = await import('../../lib/order-sweep.js');
    const events: OrderEvent[] = [];
    await sweepUnfinishedOrders({
      now: new Date(Date.now() + 2 * 24 * 3600 * 1000),
      publish: async (event) => {
        if (event.orderId === orderId) events.push(event);
        return undefined;
      },
    });
    return events;
  }
  const missingOf = async (orderId: string) =>
    (await import('../../lib/order-store.js')).missingFollowUps(await outcome.loadOrder(orderId));

  it('its OrderPlaced never comes again (left in a DLQ): OrderCancelled settles it, through a failed call and the sweep, and the charge is recorded and refunded', async () => {
    const { placed, provider } = await chargedByADeadAttemptThenCancelled();
    expect(await missingOf(placed.orderId), 'kept in the sweep while a charge may stand').toEqual(['payment:settled']);
    // The provider is down when the cancellation's OrderCancelled comes: nothing is concluded from that.
    provider.failNext(new TransientProviderError('provider unavailable'));
    await expect(payments.refundForOrder(cancelledEventOf(placed.orderId), provider)).rejects.toBeInstanceOf(TransientProviderError);
    expect(await missingOf(placed.orderId)).toEqual(['payment:settled']);

    // Its retries spent (in the DLQ too): the sweep publishes OrderCancelled again.
    const swept = await sweepFor(placed.orderId);
    expect(swept.map((event) => event.eventType)).toEqual(['OrderCancelled']);
    const [again] = swept;
    if (again?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    expect(await payments.refundForOrder(again, provider)).toMatchObject({ outcome: 'refunded' });
    expect((await outcome.loadOrder(placed.orderId)).payment).toMatchObject({ outcome: 'SUCCEEDED', chargeId: `ch_${placed.orderId}` });
    expect(await tokenOf(placed.orderId)).toBeUndefined();
    // The same key every time: one charge at a real provider, refunded.
    expect(provider.calls).toEqual([...Array(3).fill(`charge ${placed.orderId}`), `refund ${placed.orderId}`]);
    expect(await missingOf(placed.orderId)).toEqual([]);
    expect(await sweepFor(placed.orderId), 'finished: nothing more').toEqual([]);
    expect((await outcome.loadOrder(placed.orderId)).sweepShard, 'out of the index').toBeUndefined();
  });

  it('cancelled without its token forgotten (a crash between the two): the sweep has payment forget it, and nothing is charged', async () => {
    const placed = await place(await seedSku(5));
    await writeCancelOnly(placed.orderId);
    const provider = countingProvider();
    expect(await missingOf(placed.orderId)).toEqual(['payment:settled']);

    const [again] = await sweepFor(placed.orderId);
    if (again?.eventType !== 'OrderCancelled') throw new Error('expected OrderCancelled');
    expect(await payments.refundForOrder(again, provider)).toMatchObject({ outcome: 'no-charge' });
    expect(await tokenOf(placed.orderId)).toBeUndefined();
    expect(provider.calls).toEqual([]);
    expect(await missingOf(placed.orderId)).toEqual([]);
  });

  it("OrderCancelled while another delivery's call is in flight under the same key: it gives its take back and is retried, and the charge is refunded once recorded", async () => {
    const { placed, provider } = await chargedByADeadAttemptThenCancelled();
    const { IdempotencyAlreadyInProgressError } = await import('@aws-lambda-powertools/idempotency');
    provider.failNext(new IdempotencyAlreadyInProgressError('in progress'));
    await expect(payments.refundForOrder(cancelledEventOf(placed.orderId), provider)).rejects.toBeInstanceOf(
      IdempotencyAlreadyInProgressError,
    );
    expect(await tokenOf(placed.orderId), "only the dead attempt's take stands").toMatchObject({ takes: 1 });
    expect(await payments.refundForOrder(cancelledEventOf(placed.orderId), provider)).toMatchObject({ outcome: 'refunded' });
    expect(await missingOf(placed.orderId)).toEqual([]);
  });

  it('a cancellation that forgot the token leaves nothing to settle', async () => {
    const placed = await place(await seedSku(5));
    await cancellation.cancelOrder(CUSTOMER, placed.orderId);
    expect(await missingOf(placed.orderId)).toEqual([]);
    expect(await sweepFor(placed.orderId)).toEqual([]);
  });

  // An outside review: DynamoDB's TTL deleted a taken token 14 days after its last take, and the
  // delivery that then found no token recorded the order settled with its charge standing.
  it('a taken token does not expire: a take takes its TTL off, and the last take given back puts it back', async () => {
    const placed = await place(await seedSku(5));
    expect(await tokenOf(placed.orderId)).toHaveProperty('expiresAt');
    await tokens.takePaymentToken(placed.orderId);
    await tokens.takePaymentToken(placed.orderId);
    expect(await tokenOf(placed.orderId)).toMatchObject({ takes: 2 });
    expect(await tokenOf(placed.orderId), 'taken: kept until its charge is settled').not.toHaveProperty('expiresAt');
    await tokens.giveBackPaymentToken(placed.orderId);
    expect(await tokenOf(placed.orderId)).toMatchObject({ takes: 1 });
    expect(await tokenOf(placed.orderId), 'another take stands').not.toHaveProperty('expiresAt');
    const now = new Date();
    await tokens.giveBackPaymentToken(placed.orderId, now);
    expect(await tokenOf(placed.orderId)).toMatchObject({
      takes: 0,
      expiresAt: Math.floor(now.getTime() / 1000) + tokens.PAYMENT_TOKEN_TTL_SECONDS,
    });
    // Nothing left to give back: nothing changes.
    await tokens.giveBackPaymentToken(placed.orderId);
    expect(await tokenOf(placed.orderId)).toMatchObject({ takes: 0 });
  });

  // An outside review: the OrderCancelled that settles a payment records the charge before it forgets
  // the token. A retry of it (the delete failed, the publish of settleAfterRecording failed, the
  // invocation died) finds the payment recorded and only refunds: the token, taken and so without a
  // TTL, is never deleted, and the order leaves the sweep's index. A card token kept for ever.
  it('OrderCancelled that recorded the charge and failed before forgetting the token: its retry leaves no card token kept for ever', async () => {
    const { placed, provider } = await chargedByADeadAttemptThenCancelled();
    const event = cancelledEventOf(placed.orderId);
    await expect(
      aroundTokenDelete(
        async () => {
          throw new Error('DynamoDB unavailable');
        },
        () => payments.refundForOrder(event, provider),
      ),
    ).rejects.toThrow('DynamoDB unavailable');
    expect((await outcome.loadOrder(placed.orderId)).payment).toMatchObject({ outcome: 'SUCCEEDED' });

    // The record is retried.
    expect(await payments.refundForOrder(event, provider)).toMatchObject({ outcome: 'refunded' });
    expect(await missingOf(placed.orderId)).toEqual([]);
    expect(await sweepFor(placed.orderId), 'finished: the sweep never comes back to it').toEqual([]);
    const left = await tokenOf(placed.orderId);
    expect(left === undefined || left.expiresAt !== undefined, `card token deleted, or at least expiring: ${JSON.stringify(left)}`).toBe(
      true,
    );
  });

  // An outside review: refundForOrder has just read the order strongly (cancelled), but chargeForOrder
  // reads it again eventually consistently; a read that has not yet seen the cancellation (the
  // original OrderCancelled comes milliseconds after the cancel write) makes the only take charge.
  it('OrderCancelled settling an untaken token with a stale order read: nothing is charged (the cancelled order is already known)', async () => {
    const placed = await place(await seedSku(5));
    const before = (await stack.db.send(new GetCommand({ TableName: stack.table('OrdersTable'), Key: { orderId: placed.orderId } }))).Item;
    await writeCancelOnly(placed.orderId); // the cancellation's forgetting of the token failed
    const provider = countingProvider();
    const name = `staleRead${Math.random()}`;
    const middlewareStack = awsClients.dynamoDbClient().middlewareStack;
    middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { TableName?: string; ConsistentRead?: boolean };
        if (context.commandName === 'GetItemCommand' && input.TableName === stack.table('OrdersTable') && input.ConsistentRead === false) {
          // What an eventually consistent read may still answer just after the cancel write.
          return { output: { Item: before, $metadata: {} }, response: {} } as never;
        }
        return next(args);
      },
      { step: 'initialize', name },
    );
    try {
      expect(await payments.refundForOrder(cancelledEventFor(placed.orderId), provider)).toMatchObject({ outcome: 'no-charge' });
    } finally {
      middlewareStack.remove(name);
    }
    expect(provider.calls, 'a customer who cancelled before any charge is not charged').toEqual([]);
  });
});
