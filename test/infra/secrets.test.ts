import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from '../../local/emulators.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';

// Card tokens stay out of logs, the payments ledger and API responses. The local pipeline runs the
// packaged handlers and hands every line they write (and its own invocation lines) to `write`, so
// the test sees what CloudWatch Logs would. One order per test token (approved, declined, flaky:
// the last fails twice and is retried, so error paths log too); a publish fails on purpose so the
// order API's error path logs as well. The order item itself keeps the OrderPlaced event with the
// token (docs/decisions.md: "The stored OrderPlaced event keeps the card token"): not checked here.

const TOKENS = ['tok_visa', 'tok_decline', 'tok_flaky'] as const;
const lines: string[] = [];
let handle: LocalPipeline;
let db: DynamoDBDocumentClient;
let baseUrl: string;
const orderIds = new Map<string, string>();
let publishFailures = 0;
const sku = `SKU-SECRETS-${Date.now().toString(36).toUpperCase()}`;

async function waitDecided(orderId: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await fetch(`${baseUrl}/orders/${orderId}`);
    const text = await response.text();
    const view = JSON.parse(text) as { status: string; stages: Record<string, { timeline: Array<{ what: string }> }> };
    const settled = (stage: string, what: string) => view.stages[stage]?.timeline.some((e) => e.what === what);
    if (view.status === 'CONFIRMED' && settled('inventory', 'committed')) return text;
    if (view.status === 'CANCELLED' && (view.stages.inventory?.timeline.length ?? 0) > 0 && (settled('inventory', 'released') || !settled('inventory', 'reserved'))) return text;
    if (Date.now() > deadline) throw new Error(`${orderId} not decided: ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

beforeAll(async () => {
  handle = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    seed: false,
    write: (line) => lines.push(line),
    environmentOverrides: {
      // Half the publishes fail: the 503 path and its error log run; the client retries.
      createOrder: { FAULT_PUBLISH_FAILURE_RATE: '0.5', FAULT_SEED: '3' },
      ...Object.fromEntries(['inventory', 'payment', 'shipping'].map((fn) => [fn, { RETRY_BACKOFF_BASE_SECONDS: '1', FAULT_TRANSIENT_ERROR_RATE: '0.2', FAULT_SEED: '3' }])),
    },
  });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
  db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(handle.endpoints.dynamodb)));
  await db.send(new PutCommand({ TableName: handle.resources.tables.InventoryTable!, Item: { sku, name: 'Secrets test item', available: 100, reserved: 0, sold: 0, applying: {} } }));
  for (const token of TOKENS) {
    const key = `secrets-${token}-${Date.now()}`;
    for (let attempt = 0; attempt < 10 && !orderIds.has(token); attempt++) {
      const response = await fetch(`${baseUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({
          customerId: 'cus_secrets',
          items: [{ sku, quantity: 1 }],
          payment: { token },
          shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
        }),
      });
      const body = (await response.json()) as { orderId: string };
      expect(JSON.stringify(body)).not.toContain(token);
      if (response.status === 202) orderIds.set(token, body.orderId);
      if (response.status === 503) publishFailures += 1;
    }
  }
  // Each publish fails with probability 1/2: make sure the API's error path logged at least once
  // (three orders alone leave a 1-in-8 chance that none failed).
  for (let probe = 0; probe < 30 && publishFailures === 0; probe++) {
    const response = await fetch(`${baseUrl}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        customerId: 'cus_secrets',
        items: [{ sku, quantity: 1 }],
        payment: { token: 'tok_visa' },
        shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
      }),
    });
    await response.body?.cancel();
    if (response.status === 503) publishFailures += 1;
  }
}, 120_000);

afterAll(async () => {
  db?.destroy();
  await handle?.stop();
});

describe('card tokens', () => {
  it('never appear in clear in GET /orders responses', { timeout: 90_000 }, async () => {
    expect(orderIds.size).toBe(TOKENS.length);
    for (const [token, orderId] of orderIds) {
      const text = await waitDecided(orderId);
      for (const t of TOKENS) expect(text).not.toContain(t);
      if (token === 'tok_visa') expect(JSON.parse(text).status).toBe('CONFIRMED');
    }
  });

  it('are masked in the payments ledger', async () => {
    for (const [token, orderId] of orderIds) {
      const { Items = [] } = await db.send(
        new QueryCommand({ TableName: handle.resources.tables.PaymentsTable!, KeyConditionExpression: 'orderId = :id', ExpressionAttributeValues: { ':id': orderId }, ConsistentRead: true }),
      );
      const ledger = Items.filter((item) => !String(item.entryId).startsWith('SIMULATOR#'));
      for (const t of TOKENS) expect(JSON.stringify(ledger)).not.toContain(t);
      if (token === 'tok_visa') {
        const charge = ledger.find((item) => item.entryId === 'CHARGE');
        expect(charge?.tokenMasked).toMatch(/^tok_\*{4}/);
      }
    }
  });

  it('never appear in clear in any log line', async () => {
    // Let the last follow-ups (commit, dispatch) log before reading.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const handlerLines = lines.filter((line) => /^\s+\w+ \| /.test(line));
    expect(handlerLines.length).toBeGreaterThan(20);
    // The consumers did run for these orders and logged about them (by order id, not token).
    for (const orderId of orderIds.values()) expect(lines.some((line) => line.includes(orderId))).toBe(true);
    expect(lines.some((line) => line.includes('OrderPlaced publish failed'))).toBe(true);
    const leaks = lines.filter((line) => TOKENS.some((token) => line.includes(token)));
    expect(leaks).toEqual([]);
  });
});
