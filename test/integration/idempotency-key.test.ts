import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { OrderRequest } from '../../lib/order-schema.js';
import { findOrder } from '../../lib/order-store.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The order API's Idempotency-Key, through the createOrder handler against the orders table and the
// topic the packaged template declares: a replay of an accepted order answers the same order and
// counts and publishes nothing again; the key reused with another body is refused (422) naming the
// order it belongs to, and changes nothing.

let stack: ProvisionedStack;
let handler: (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

beforeAll(async () => {
  stack = await startProvisionedStack();
  ({ handler } = (await import('../../functions/createOrder.js')) as unknown as { handler: typeof handler });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** Every EMF blob the handler writes to stdout (Powertools Metrics), as { metric name: value }. */
let emitted: Array<Record<string, number>>;
beforeEach(() => {
  emitted = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split('\n')) {
      if (!line.includes('"_aws"')) continue;
      const blob = JSON.parse(line) as { _aws: { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> } } & Record<
        string,
        unknown
      >;
      const names = blob._aws.CloudWatchMetrics.flatMap((d) => d.Metrics.map((m) => m.Name));
      emitted.push(Object.fromEntries(names.map((name) => [name, Number(blob[name])])));
    }
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Sum of each metric over everything emitted so far. */
function metricTotals(): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const blob of emitted) for (const [name, value] of Object.entries(blob)) totals[name] = (totals[name] ?? 0) + value;
  return totals;
}

/** OrderPlaced publishes the topic received for one order (fauxqs's spy records each Publish before answering it). */
function publishedFor(orderId: string): number {
  return stack.emulators.fauxqs.spy
    .getAllMessages()
    .filter(
      (m) =>
        m.service === 'sns' &&
        m.messageAttributes.orderId?.StringValue === orderId &&
        m.messageAttributes.eventType?.StringValue === 'OrderPlaced',
    ).length;
}

function order(quantity = 1): OrderRequest {
  return {
    items: [{ sku: 'SKU-IDEMPOTENT', quantity }],
    payment: { token: 'tok_visa' },
    shippingAddress: { ...SAMPLE_ADDRESS },
  };
}

let requests = 0;
/** POST /orders as the customer whose token the JWT authorizer verified (its claims in the event). */
async function post(customer: string, body: OrderRequest, key: string): Promise<{ statusCode: number; body: Record<string, unknown> }> {
  requests += 1;
  const requestId = `req-${requests}`;
  const response = await handler(
    {
      version: '2.0',
      routeKey: 'POST /orders',
      rawPath: '/orders',
      rawQueryString: '',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
      isBase64Encoded: false,
      requestContext: {
        http: { method: 'POST', path: '/orders' },
        requestId,
        authorizer: { jwt: { claims: { sub: customer }, scopes: null } },
      },
    } as unknown as APIGatewayProxyEventV2,
    { functionName: 'createOrder', awsRequestId: requestId, getRemainingTimeInMillis: () => 10_000 } as unknown as Context,
  );
  return { statusCode: Number(response.statusCode), body: JSON.parse(String(response.body)) as Record<string, unknown> };
}

describe('Idempotency-Key', () => {
  it('replays of an accepted order answer the same order, and count and publish nothing again', async () => {
    const body = order();
    const first = await post('cus_idem_replay', body, 'key-replay');
    expect(first).toMatchObject({ statusCode: 202, body: { orderId: expect.stringMatching(/^ord_[0-9a-f]{32}$/), status: 'PENDING' } });
    const orderId = String(first.body.orderId);
    expect(metricTotals()).toEqual({ OrdersPlaced: 1 });
    expect(publishedFor(orderId)).toBe(1);
    const stored = await findOrder(orderId);

    // One after another, then many at once.
    const replays = [];
    for (let i = 0; i < 3; i++) replays.push(await post('cus_idem_replay', body, 'key-replay'));
    replays.push(...(await Promise.all(Array.from({ length: 20 }, () => post('cus_idem_replay', body, 'key-replay')))));
    for (const replay of replays) expect(replay).toEqual({ statusCode: 202, body: { orderId, status: 'PENDING' } });

    // Not one metric counted again (OrdersPlaced or any other), not one more publish, the order as it was.
    expect(metricTotals()).toEqual({ OrdersPlaced: 1 });
    expect(publishedFor(orderId)).toBe(1);
    expect(await findOrder(orderId)).toEqual(stored);
  });

  it('reused with another body: 422 naming the earlier order, which stays as it was; nothing counted or published', async () => {
    const body = order(1);
    const first = await post('cus_idem_reused', body, 'key-reused');
    expect(first.statusCode).toBe(202);
    const orderId = String(first.body.orderId);
    const stored = await findOrder(orderId);
    expect(metricTotals()).toEqual({ OrdersPlaced: 1 });

    // The same customer and key, another order (another quantity, then another card).
    for (const other of [order(2), { ...body, payment: { token: 'tok_mastercard' } }]) {
      const refused = await post('cus_idem_reused', other, 'key-reused');
      expect(refused).toEqual({
        statusCode: 422,
        body: { error: 'IdempotencyKeyReused', message: expect.stringContaining('already used for a different order'), orderId },
      });
    }
    expect(metricTotals()).toEqual({ OrdersPlaced: 1 });
    expect(publishedFor(orderId)).toBe(1);
    expect(await findOrder(orderId)).toEqual(stored);

    // The key still belongs to the first body: its replay is accepted, as the same order.
    expect(await post('cus_idem_reused', body, 'key-reused')).toEqual({ statusCode: 202, body: { orderId, status: 'PENDING' } });
    expect(metricTotals()).toEqual({ OrdersPlaced: 1 });
    expect(publishedFor(orderId)).toBe(1);
  });

  it("is one customer's: the same key from another customer is another order, counted once", async () => {
    const mine = await post('cus_idem_a', order(), 'key-shared');
    const theirs = await post('cus_idem_b', order(), 'key-shared');
    expect([mine.statusCode, theirs.statusCode]).toEqual([202, 202]);
    expect(theirs.body.orderId).not.toBe(mine.body.orderId);
    await post('cus_idem_b', order(), 'key-shared');
    expect(metricTotals()).toEqual({ OrdersPlaced: 2 });
    expect([publishedFor(String(mine.body.orderId)), publishedFor(String(theirs.body.orderId))]).toEqual([1, 1]);
  });
});
