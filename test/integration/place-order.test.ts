import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OrderEvent } from '../../lib/events.js';
import { writeOutages } from '../../lib/fault-injection.js';
import type { OrderRequest } from '../../lib/order.js';
import { findOrder } from '../../lib/orders.js';
import { placeOrder } from '../../lib/place-order.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';

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
function request(): OrderRequest {
  counter += 1;
  return {
    customerId: `cus_place_${counter}`,
    items: [{ sku: 'SKU-PLACE', quantity: 1 }],
    payment: { token: 'tok_visa' },
    shippingAddress: { name: 'Ada', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
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
  it('200 concurrent requests with one Idempotency-Key publish OrderPlaced once', async () => {
    const body = request();
    const { published, publish } = countingPublisher();
    const results = await Promise.all(Array.from({ length: 200 }, () => placeOrder(body, 'burst-key', publish)));
    expect(new Set(results.map((r) => r.order.orderId)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(results.every((r) => r.outcome === 'accepted')).toBe(true);
    expect(published).toHaveLength(1);
  });

  it('a replay after a failed publish publishes again, and once that succeeded, replays publish nothing', async () => {
    const body = request();
    let failing = true;
    const { published, publish } = countingPublisher(() => failing);
    const first = await placeOrder(body, 'retry-key', publish);
    expect(first).toMatchObject({ outcome: 'not-published', created: true });
    expect((await findOrder(first.order.orderId))?.placedPublishFailedAt).toBeDefined();

    failing = false;
    const retry = await placeOrder(body, 'retry-key', publish);
    expect(retry).toMatchObject({ outcome: 'accepted', replayed: true, created: false });
    expect(published).toHaveLength(1);
    expect((await findOrder(first.order.orderId))?.placedPublishFailedAt).toBeUndefined();

    await Promise.all(Array.from({ length: 20 }, () => placeOrder(body, 'retry-key', publish)));
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
          requestContext: { http: { method: 'POST', path: '/orders' }, requestId: key },
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
