import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ITEMS } from '../../lib/order-schema.js';
import { clientConfig } from '../../local/emulators.js';
import {
  LARGE_ORDER_QUANTITY,
  LARGE_ORDER_STOCK,
  largeOrderItems,
  localToken,
  newRunId,
  placeLargeOrder,
  stockCatalogue,
} from '../../local/large-order.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';

// A business order of 5,000 lines through the whole local pipeline, as `npm run order` places it:
// a 313 KB body through the HTTP API, an OrderPlaced event past SNS's 256 KB (carried through S3,
// the claim-check), the order item stored compressed, every line's units reserved by the
// inventory consumer, charged and shipped: CONFIRMED, and the stock taken. A second such order,
// declined by the card, is cancelled and every unit goes back.

let pipeline: LocalPipeline;
/** The pipeline's invocation lines and handler logs: the inventory consumer's are printed after each test. */
const lines: string[] = [];
let db: DynamoDBDocumentClient;
const table = (logicalId: string) => {
  const name = pipeline.resources.tables[logicalId];
  if (!name) throw new Error(`The local pipeline has no ${logicalId}`);
  return name;
};

beforeAll(async () => {
  pipeline = await startLocalPipeline({ apiPort: 0, sqsPort: 0, dynamodbPort: 0, write: (line) => lines.push(line) });
  db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(pipeline.endpoints.dynamodb)));
}, 180_000);

afterEach(() => {
  for (const line of lines.splice(0))
    if (line.startsWith('λ inventory') || line.includes('"level":"ERROR"')) console.log(line.slice(0, 400));
});

afterAll(async () => {
  db?.destroy();
  await pipeline?.stop();
});

/** Every SKU's `available` and markers, read 100 to a request. */
async function stockOf(skus: string[]): Promise<Map<string, { available: number; markers: number }>> {
  const found = new Map<string, { available: number; markers: number }>();
  for (let start = 0; start < skus.length; start += 100) {
    const { Responses } = await db.send(
      new BatchGetCommand({
        RequestItems: { [table('InventoryTable')]: { Keys: skus.slice(start, start + 100).map((sku) => ({ sku })), ConsistentRead: true } },
      }),
    );
    for (const item of Responses?.[table('InventoryTable')] ?? [])
      found.set(item.sku, { available: item.available, markers: Object.keys(item.applying ?? {}).length });
  }
  return found;
}

/** Polls until `check` passes (the release gives units back after the decision is visible). */
async function eventually(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** A 5,000-line order of SKUs stocked for it, placed through HTTP by a customer of its own, followed to its decision. */
async function placeStockedLargeOrder(cardToken?: string) {
  const runId = newRunId();
  const items = largeOrderItems(MAX_ITEMS, runId);
  await stockCatalogue(db, table('InventoryTable'), items);
  const apiUrl = pipeline.apiUrl.replace(/\/$/, '');
  const run = await placeLargeOrder({
    apiUrl,
    token: await localToken(apiUrl, `cus_bulk_${runId.toLowerCase()}`),
    items,
    ...(cardToken ? { cardToken } : {}),
    db,
    ordersTable: table('OrdersTable'),
    timeoutMs: 240_000,
  });
  return { items, run };
}

describe('a business order of 5,000 lines', () => {
  it("goes through HTTP, the claim-check and every participant to CONFIRMED, with every line's units taken", {
    timeout: 300_000,
  }, async () => {
    const { items, run } = await placeStockedLargeOrder();
    console.log(`e2e large order: ${JSON.stringify(run)}`);

    expect(run).toMatchObject({ status: 'CONFIRMED', lines: 5000, storedCompressed: true });
    expect(run.eventBytes).toBeGreaterThan(256 * 1024);
    expect(run.storedItemBytes).toBeLessThan(400 * 1024);
    // The decision is visible once the reservation is recorded; the markers go right after it.
    await eventually(async () => {
      const stock = await stockOf(items.map((item) => item.sku));
      expect(stock.size).toBe(5000);
      for (const item of items) expect(stock.get(item.sku)).toEqual({ available: LARGE_ORDER_STOCK - LARGE_ORDER_QUANTITY, markers: 0 });
    }, 60_000);
  });

  it('declined by the card: CANCELLED, and every unit of every line goes back on sale', { timeout: 300_000 }, async () => {
    const { items, run } = await placeStockedLargeOrder('tok_decline');

    expect(run).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED', lines: 5000 });
    await eventually(async () => {
      const stock = await stockOf(items.map((item) => item.sku));
      for (const item of items) expect(stock.get(item.sku)).toEqual({ available: LARGE_ORDER_STOCK, markers: 0 });
    }, 120_000);
  });
});
