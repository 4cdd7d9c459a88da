import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeOutages } from '../../lib/fault-injection.js';
import { missingFollowUps, type StoredOrder, toOrderRecord } from '../../lib/order-store.js';
import { clientConfig } from '../../local/emulators.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { type HandlerLogEntry, handlerEntries, waitUntil } from '../support/handler-log.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The payment provider's circuit breaker inside the pipeline (lib/payment-provider.ts,
// lib/payments.ts), through the local pipeline. The provider is down (an outage written to the
// file FAULT_OUTAGES_FILE names, which every payment execution environment reads): charges fail
// with transient errors until the breaker opens and records fail fast on it. As soon as that is
// seen the outage ends, but the circuit stays open for its cool-down, so the records keep failing
// fast with the provider back, and are retried (backoff 1, 2, 4, 8 s here). Once the circuit
// half-opens the charges go through: every order ends CONFIRMED with one charge, none cancelled,
// no record in the payment DLQ. That the cool-down fits inside the retry budget for the template's
// own parameters is checked on the packaged template (test/infra/circuit-breaker-budget.test.ts).

const ORDERS = 5;
let handle: LocalPipeline;
let db: DynamoDBDocumentClient;
let baseUrl: string;
let outagesDir: string;
let outagesFile: string;
const lines: string[] = [];
const sku = `SKU-CIRCUIT-${Date.now().toString(36).toUpperCase()}`;

beforeAll(async () => {
  outagesDir = mkdtempSync(path.join(tmpdir(), 'circuit-breaker-e2e-'));
  outagesFile = path.join(outagesDir, 'outages.json');
  writeOutages(outagesFile, {});
  handle = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    seed: false,
    write: (line) => lines.push(line),
    environmentOverrides: { payment: { FAULT_OUTAGES_FILE: outagesFile, RETRY_BACKOFF_BASE_SECONDS: '1' } },
  });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
  db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(handle.endpoints.dynamodb)));
  await db.send(
    new PutCommand({
      TableName: handle.resources.tables.InventoryTable!,
      Item: { sku, name: 'Circuit breaker test item', available: 100, applying: {} },
    }),
  );
});

afterAll(async () => {
  db?.destroy();
  await handle?.stop();
  if (outagesDir) rmSync(outagesDir, { recursive: true, force: true });
});

async function placeOrder(): Promise<string> {
  const response = await fetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await handle.tokenFor('cus_circuit')}` },
    body: JSON.stringify({
      items: [{ sku, quantity: 1 }],
      payment: { token: 'tok_visa' },
      shippingAddress: { ...SAMPLE_ADDRESS },
    }),
  });
  const body = (await response.json()) as { orderId?: string };
  expect(response.status).toBe(202);
  return body.orderId!;
}

describe('the payment circuit breaker in the pipeline', () => {
  it('an open circuit makes the payment record retry, never cancels the order, and the order confirms with one charge once the provider is back', async () => {
    const outageFrom = Date.now();
    writeOutages(outagesFile, { provider: { from: outageFrom, until: outageFrom + 10 * 60_000 } });
    // Placed at once, so that the payment poller gathers them in one batch (its batching window):
    // their failures count on one breaker.
    const orderIds = await Promise.all(Array.from({ length: ORDERS }, () => placeOrder()));
    const ours = new Set(orderIds);
    const paymentFailures = () =>
      handlerEntries(lines).filter((e) => e.fn === 'payment' && ours.has(String(e.orderId)) && e.message.startsWith('Record failed'));
    const errorName = (e: HandlerLogEntry) => (e.error as { name?: string } | undefined)?.name;

    const ordersTable = handle.resources.tables.OrdersTable!;
    const readOrders = async () =>
      Promise.all(
        orderIds.map(async (orderId) => {
          const { Item } = await db.send(new GetCommand({ TableName: ordersTable, Key: { orderId }, ConsistentRead: true }));
          if (!Item) throw new Error(`Order ${orderId} not found`);
          return toOrderRecord(Item as StoredOrder);
        }),
      );

    // The provider fails the charges until the breaker opens: then the records fail fast. (Or, were
    // an open circuit taken for an answer, an order would be decided: that is checked below.)
    await waitUntil(
      'a payment record failing on the open circuit',
      async () =>
        paymentFailures().some((e) => errorName(e) === 'CircuitOpenError') || (await readOrders()).some((o) => o.status !== 'PENDING'),
      { timeoutMs: 30_000, intervalMs: 250, describe: () => paymentFailures().map((e) => [e.receiveCount, errorName(e)]) },
    );
    const outageUntil = Date.now();
    writeOutages(outagesFile, { provider: { from: outageFrom, until: outageUntil } });

    // Every order ends CONFIRMED, its follow-ups done.
    const orders = await waitUntil(
      'every order decided and settled',
      async () => {
        const items = await readOrders();
        return items.every((order) => order.status !== 'PENDING' && missingFollowUps(order).length === 0) && items;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    for (const order of orders) {
      expect({ status: order.status, reason: order.reason, payment: order.stages.payment.status }, order.orderId).toEqual({
        status: 'CONFIRMED',
        reason: undefined,
        payment: 'SUCCEEDED',
      });
    }
    // The charges failed on the outage first (transient errors, counted by the breaker).
    expect(paymentFailures().some((e) => errorName(e) === 'TransientProviderError' && JSON.stringify(e.error).includes('outage'))).toBe(
      true,
    );

    // The open circuit, not the outage, held some of them back: records failed fast on it after
    // the provider was back, and those records were handled again later, on a later receive.
    const failures = paymentFailures();
    const failedFastAfterOutage = failures.filter((e) => errorName(e) === 'CircuitOpenError' && e.at >= outageUntil);
    console.log(
      `e2e circuit: ${failures.length} payment failures (${failures.filter((e) => errorName(e) === 'CircuitOpenError').length} on the open circuit, ` +
        `${failedFastAfterOutage.length} of them with the provider back); receives up to ${Math.max(...failures.map((e) => Number(e.receiveCount)))}`,
    );
    expect(failedFastAfterOutage.length).toBeGreaterThanOrEqual(1);
    const handled = handlerEntries(lines).filter((e) => e.fn === 'payment' && e.message === 'Handling event');
    for (const failure of failedFastAfterOutage) {
      expect(handled.some((e) => e.messageId === failure.messageId && Number(e.receiveCount) > Number(failure.receiveCount))).toBe(true);
    }

    // One charge per order, asked of the provider once (the outage and the open circuit kept every
    // other attempt from reaching it); nothing in the payment DLQ: the cool-down fit in the retries.
    const charged = handlerEntries(lines).filter((e) => e.fn === 'payment' && e.message === 'Simulated provider: charged');
    for (const orderId of orderIds) {
      const { Item } = await db.send(
        new GetCommand({ TableName: handle.resources.tables.OrdersTable!, Key: { orderId }, ConsistentRead: true }),
      );
      expect(Item?.payment, orderId).toMatchObject({ outcome: 'SUCCEEDED' });
      expect(
        charged.filter((e) => e.idempotencyKey === orderId),
        orderId,
      ).toHaveLength(1);
    }
    const dlq = handle.fauxqs.spy.getAllMessages().filter((m) => m.service === 'sqs' && m.status === 'dlq');
    expect(dlq).toEqual([]);
  }, 120_000);
});
