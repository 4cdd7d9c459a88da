import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OrderEvent } from '../../lib/events.js';
import { writeOutages } from '../../lib/fault-injection.js';
import type { OrderRequest } from '../../lib/order-schema.js';
import { findOrder } from '../../lib/order-store.js';
import { placeOrder } from '../../lib/place-order.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The order API's two writes (store, then publish) on dynalite with the orders table the template
// declares: a burst of retries must not multiply the pipeline's work, a failed publish must be
// retried by the next replay, and an order is counted once, when it is stored.

let stack: ProvisionedStack;
const outagesFile = join(mkdtempSync(join(tmpdir(), 'place-order-')), 'outages.json');

beforeAll(async () => {
  stack = await startProvisionedStack();
  process.env.FAULT_OUTAGES_FILE = outagesFile;
  writeOutages(outagesFile, {});
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

afterEach(() => {
  writeOutages(outagesFile, {});
  vi.restoreAllMocks();
});

let counter = 0;
/** A new customer for each test, so that keys never meet across tests. */
let customer = 'cus_place_0';
function request(): OrderRequest {
  counter += 1;
  customer = `cus_place_${counter}`;
  return {
    items: [{ sku: 'SKU-PLACE', quantity: 1 }],
    payment: { token: 'tok_visa' },
    shippingAddress: { ...SAMPLE_ADDRESS },
  };
}

function countingPublisher(fail: () => boolean = () => false) {
  const published: OrderEvent[] = [];
  const publish = async (event: OrderEvent) => {
    // A publish takes a moment, as it does on SNS: the replays overlap it.
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (fail()) throw new Error('topic unavailable');
    published.push(event);
    return 'captured';
  };
  return { published, publish };
}

describe('placing an order', () => {
  it("keys are the caller's own: one key from two customers makes two orders, each its customer's", async () => {
    const body = request();
    const { published, publish } = countingPublisher();
    const [first, second] = await Promise.all([
      placeOrder('cus_alice', body, 'shared-key', publish),
      placeOrder('cus_bob', body, 'shared-key', publish),
    ]);
    if (first?.outcome !== 'accepted' || second?.outcome !== 'accepted') throw new Error('both orders should be accepted');
    expect(first.order.orderId).not.toBe(second.order.orderId);
    expect([first.order.customerId, second.order.customerId]).toEqual(['cus_alice', 'cus_bob']);
    expect(published).toHaveLength(2);
    // Order ids are random: nothing derives them from the customer and the key any more.
    expect(first.order.orderId).toMatch(/^ord_[0-9a-f]{12}7[0-9a-f]{19}$/);
  });

  it("a key reused for another body answers with the caller's earlier order, and stores nothing", async () => {
    const body = request();
    const { published, publish } = countingPublisher();
    const first = await placeOrder(customer, body, 'reused-key', publish);
    if (first.outcome !== 'accepted') throw new Error(`expected accepted, got ${first.outcome}`);
    const other = await placeOrder(customer, { ...body, items: [{ sku: 'SKU-OTHER', quantity: 2 }] }, 'reused-key', publish);
    expect(other).toEqual({ outcome: 'key-reused', orderId: first.order.orderId, created: false });
    expect(published).toHaveLength(1);
  });

  it('the card token goes to the payment tokens table, in no event and on no order', async () => {
    const body = { ...request(), payment: { token: 'tok_mastercard_debit' } };
    const { published, publish } = countingPublisher();
    const placed = await placeOrder(customer, body, undefined, publish);
    if (placed.outcome !== 'accepted') throw new Error(`expected accepted, got ${placed.outcome}`);
    const { GetCommand } = await import('@aws-sdk/lib-dynamodb');
    const { Item: order } = await stack.db.send(
      new GetCommand({ TableName: stack.table('OrdersTable'), Key: { orderId: placed.order.orderId }, ConsistentRead: true }),
    );
    const { Item: token } = await stack.db.send(
      new GetCommand({ TableName: stack.table('PaymentTokensTable'), Key: { orderId: placed.order.orderId }, ConsistentRead: true }),
    );
    expect(JSON.stringify(order)).not.toContain('tok_mastercard_debit');
    expect(JSON.stringify(published)).not.toContain('tok_mastercard_debit');
    expect(order?.paymentTokenMasked).toBe('tok_****ebit');
    expect(token).toMatchObject({ orderId: placed.order.orderId, token: 'tok_mastercard_debit' });
    expect(token?.expiresAt).toBeGreaterThan(Date.now() / 1000 + 13 * 24 * 3600);
  });

  it('200 concurrent requests with one Idempotency-Key publish OrderPlaced once', async () => {
    const body = request();
    const { published, publish } = countingPublisher();
    const results = await Promise.all(Array.from({ length: 200 }, () => placeOrder(customer, body, 'burst-key', publish)));
    expect(new Set(results.map((r) => (r.outcome === 'key-reused' ? r.orderId : r.order.orderId))).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(results.every((r) => r.outcome === 'accepted')).toBe(true);
    expect(published).toHaveLength(1);
  });

  it('a replay after a failed publish publishes again, and once that succeeded, replays publish nothing', async () => {
    const body = request();
    let failing = true;
    const { published, publish } = countingPublisher(() => failing);
    const first = await placeOrder(customer, body, 'retry-key', publish);
    if (first.outcome !== 'not-published') throw new Error(`expected not-published, got ${first.outcome}`);
    expect(first.created).toBe(true);
    expect((await findOrder(first.order.orderId))?.placedPublishFailedAt).toBeDefined();

    failing = false;
    const retry = await placeOrder(customer, body, 'retry-key', publish);
    expect(retry).toMatchObject({ outcome: 'accepted', replayed: true, created: false });
    expect(published).toHaveLength(1);
    expect((await findOrder(first.order.orderId))?.placedPublishFailedAt).toBeUndefined();

    await Promise.all(Array.from({ length: 20 }, () => placeOrder(customer, body, 'retry-key', publish)));
    expect(published).toHaveLength(1);
  });

  it('the API counts OrdersPlaced once, when the order is stored, even when its publish failed', async () => {
    const { handler } = await import('../../functions/createOrder.js');
    const emitted: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      emitted.push(String(chunk));
      return true;
    });
    const ordersPlaced = () =>
      emitted
        .flatMap((text) => text.split('\n'))
        .filter((line) => line.includes('"_aws"'))
        .reduce((sum, line) => sum + Number((JSON.parse(line) as { OrdersPlaced?: number }).OrdersPlaced ?? 0), 0);
    // Every publish fails: stored, 503, and still counted once.
    writeOutages(outagesFile, { topic: { from: 0, until: Date.now() + 60_000 } });
    const body = request();
    const send = (key: string, order: OrderRequest = body) =>
      handler(
        {
          version: '2.0',
          routeKey: 'POST /orders',
          rawPath: '/orders',
          rawQueryString: '',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify(order),
          isBase64Encoded: false,
          requestContext: {
            http: { method: 'POST', path: '/orders' },
            requestId: key,
            authorizer: { jwt: { claims: { sub: 'cus_metric' }, scopes: null } },
          },
        } as unknown as APIGatewayProxyEventV2,
        { functionName: 'createOrder', awsRequestId: key, getRemainingTimeInMillis: () => 10_000 } as unknown as Context,
      );
    const first = await send('metric-key');
    expect(first).toMatchObject({ statusCode: 503 });
    expect(ordersPlaced()).toBe(1);
    // The retry (still failing, then succeeding) is the same order: not counted again.
    expect(await send('metric-key')).toMatchObject({ statusCode: 503 });
    writeOutages(outagesFile, {});
    expect(await send('metric-key')).toMatchObject({ statusCode: 202 });
    expect(ordersPlaced()).toBe(1);
    // A new order is.
    expect(await send('metric-key-2', request())).toMatchObject({ statusCode: 202 });
    expect(ordersPlaced()).toBe(2);
  });
});
