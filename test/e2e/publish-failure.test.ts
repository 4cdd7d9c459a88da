import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from '../../local/emulators.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';

// No order stuck between the table and the topic: every publish of the order API fails
// (FAULT_PUBLISH_FAILURE_RATE=1 on createOrder), so POST /orders stores the order and answers 503.
// A retry with the same Idempotency-Key names the same order (and fails to publish again); the
// scheduled sweep (sped up: every 2 s, for orders pending 1 s) publishes the stored event,
// possibly several times, and the order still ends CONFIRMED with exactly one charge.

let handle: LocalPipeline;
let db: DynamoDBDocumentClient;
let baseUrl: string;
const sku = `SKU-PUBFAIL-${Date.now().toString(36).toUpperCase()}`;

beforeAll(async () => {
  handle = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    quiet: true,
    seed: false,
    scheduleScale: 30,
    environmentOverrides: {
      createOrder: { FAULT_PUBLISH_FAILURE_RATE: '1', ORDER_SWEEP_AFTER_SECONDS: '1' },
      sweepOrders: { ORDER_SWEEP_BACKOFF_BASE_SECONDS: '1' },
      ...Object.fromEntries(['inventory', 'payment', 'shipping'].map((fn) => [fn, { RETRY_BACKOFF_BASE_SECONDS: '1' }])),
    },
  });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
  db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(handle.endpoints.dynamodb)));
  await db.send(
    new PutCommand({
      TableName: handle.resources.tables.InventoryTable!,
      Item: { sku, name: 'Publish failure test item', available: 10, reserved: 0, sold: 0, applying: {} },
    }),
  );
});

afterAll(async () => {
  db?.destroy();
  await handle?.stop();
});

const order = {
  customerId: 'cus_pubfail',
  items: [{ sku, quantity: 2 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
};

async function post(key: string) {
  const response = await fetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(order),
  });
  return { status: response.status, body: (await response.json()) as { orderId?: string; status?: string; error?: string } };
}

describe('an order whose publish failed', () => {
  it('answers 503 with the orderId, keeps it on retry, and ends CONFIRMED exactly once', { timeout: 90_000 }, async () => {
    const key = `pubfail-${Date.now()}`;
    const first = await post(key);
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ error: 'ServiceUnavailable', status: 'PENDING' });
    expect(first.body.orderId).toMatch(/^ord_[0-9a-f]{32}$/);

    const retry = await post(key);
    expect(retry.status).toBe(503);
    expect(retry.body.orderId).toBe(first.body.orderId);

    // The sweep finishes it.
    const deadline = Date.now() + 60_000;
    let view: { status: string; stages: { inventory: { timeline: Array<{ what: string }> } } } | undefined;
    for (;;) {
      const response = await fetch(`${baseUrl}/orders/${first.body.orderId}`);
      view = (await response.json()) as typeof view;
      if (view?.status === 'CONFIRMED' && view.stages.inventory.timeline.some((e) => e.what === 'committed')) break;
      if (Date.now() > deadline) throw new Error(`not confirmed in time: ${JSON.stringify(view)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(view?.status).toBe('CONFIRMED');

    // Once the order is decided, a retry with the same key is a replay: 202, same order, no publish.
    const late = await post(key);
    expect(late.status).toBe(202);
    expect(late.body).toMatchObject({ orderId: first.body.orderId, status: 'CONFIRMED' });

    // Let any further republish (there may have been several) settle, then count the ledger.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const ledger = await db.send(
      new QueryCommand({
        TableName: handle.resources.tables.PaymentsTable!,
        KeyConditionExpression: 'orderId = :id',
        ExpressionAttributeValues: { ':id': first.body.orderId },
        ConsistentRead: true,
      }),
    );
    const entries = (ledger.Items ?? []).map((item) => String(item.entryId)).filter((id) => !id.startsWith('SIMULATOR#'));
    expect(entries).toEqual(['CHARGE']);

    const published = handle.fauxqs.spy
      .getAllMessages()
      .filter((m) => m.service === 'sns' && m.body.includes(first.body.orderId!) && m.body.includes('"OrderPlaced"'));
    expect(published.length).toBeGreaterThanOrEqual(1);
  });
});
