import { randomInt } from 'node:crypto';
import { BatchWriteCommand, type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { OrderItem } from '../lib/order-schema.js';
import { placedEventOf, type StoredOrderItem } from '../lib/order-store.js';
import { dynamoDbItemSize } from './dynamodb-item-size.js';
import { sampleOrder } from './sample-order.js';

// A business order of thousands of lines placed against a running pipeline, with the catalogue it
// needs: what `npm run order` does, and test/e2e/large-order.test.ts with it. Its SKUs are long
// enough (40 characters) that 5,000 lines make an OrderPlaced event far over SNS's 256 KB.

export const LARGE_ORDER_SKU_LENGTH = 40;
/** Units ordered per line, and the stock each SKU gets: enough for the order, with some left over. */
export const LARGE_ORDER_QUANTITY = 2;
export const LARGE_ORDER_STOCK = 10;

/** Letters only: a run id of digits could join a line number into something that reads as a card number. */
export function newRunId(): string {
  return Array.from({ length: 8 }, () => String.fromCharCode(65 + randomInt(26))).join('');
}

/** The order's lines: one SKU each (`BULK-<run>-L00001-...`, 40 characters), distinct per run. */
export function largeOrderItems(lines: number, runId: string): OrderItem[] {
  return Array.from({ length: lines }, (_, index) => ({
    sku: `BULK-${runId}-L${String(index + 1).padStart(5, '0')}-STAINLESS-HEX-BOLT-M8`.slice(0, LARGE_ORDER_SKU_LENGTH),
    quantity: LARGE_ORDER_QUANTITY,
  }));
}

/** Writes a stock item for every line's SKU, 25 to a request (BatchWriteItem's maximum), 8 requests at once. */
export async function stockCatalogue(db: DynamoDBDocumentClient, inventoryTable: string, items: OrderItem[]): Promise<void> {
  const chunks = Array.from({ length: Math.ceil(items.length / 25) }, (_, i) => items.slice(i * 25, i * 25 + 25));
  let next = 0;
  const writer = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++]!;
      let requests = chunk.map(({ sku }) => ({
        PutRequest: { Item: { sku, name: `Bulk line ${sku}`, available: LARGE_ORDER_STOCK, applying: {} } },
      }));
      // Unprocessed items (throttling, on AWS) are sent again until none are left.
      while (requests.length > 0) {
        const { UnprocessedItems } = await db.send(new BatchWriteCommand({ RequestItems: { [inventoryTable]: requests } }));
        requests = (UnprocessedItems?.[inventoryTable] ?? []) as typeof requests;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, writer));
}

export interface OrderAnswer {
  orderId: string;
  status: 'PENDING' | 'CONFIRMED' | 'CANCELLED';
  reason?: string;
  customerId: string;
  items: OrderItem[];
  shippingAddress: ReturnType<typeof sampleOrder>['shippingAddress'];
  createdAt: string;
  decidedAt?: string;
}

export interface LargeOrderRun {
  orderId: string;
  status: OrderAnswer['status'];
  reason?: string;
  lines: number;
  bodyBytes: number;
  /** OrderPlaced as the order API publishes it (rebuilt from the order, as the sweep does). */
  eventBytes: number;
  /** The order item's size as DynamoDB counts it, and whether its lines are stored compressed. */
  storedItemBytes: number;
  storedCompressed: boolean;
  /** From sending POST /orders to the first GET that showed the order decided. */
  postToDecisionMs: number;
  /** The pipeline's own clock: from the order's createdAt to its decidedAt. */
  createdToDecidedMs: number | undefined;
}

/** A customer's token from the running pipeline's local issuer (what `npm run token` asks for). */
export async function localToken(apiUrl: string, customer: string): Promise<string> {
  const response = await fetch(`${apiUrl}/_local/token?${new URLSearchParams({ customer })}`);
  const answer = (await response.json()) as { token?: string; message?: string };
  if (!response.ok || !answer.token) throw new Error(`${apiUrl} gave no token: ${answer.message ?? response.status}`);
  return answer.token;
}

/**
 * Posts the order through the HTTP API, polls GET /orders/{orderId} until it is decided (or
 * `timeoutMs` passes), and measures it: body, event and stored item sizes, time to the decision.
 */
export async function placeLargeOrder(options: {
  apiUrl: string;
  token: string;
  items: OrderItem[];
  express?: boolean;
  cardToken?: string;
  db: DynamoDBDocumentClient;
  ordersTable: string;
  timeoutMs?: number;
}): Promise<LargeOrderRun> {
  const order = { ...sampleOrder(options.items, options.cardToken), ...(options.express ? { shippingSpeed: 'express' } : {}) };
  const body = JSON.stringify(order);
  const headers = { authorization: `Bearer ${options.token}` };
  const postedAt = performance.now();
  const posted = await fetch(`${options.apiUrl}/orders`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body,
  });
  const accepted = (await posted.json()) as { orderId?: string; message?: string };
  if (posted.status !== 202 || !accepted.orderId) throw new Error(`POST /orders answered ${posted.status}: ${JSON.stringify(accepted)}`);
  const { orderId } = accepted;
  const deadline = Date.now() + (options.timeoutMs ?? 180_000);
  let answer: OrderAnswer;
  for (;;) {
    const response = await fetch(`${options.apiUrl}/orders/${orderId}`, { headers });
    if (response.status !== 200) throw new Error(`GET /orders/${orderId} answered ${response.status}: ${await response.text()}`);
    answer = (await response.json()) as OrderAnswer;
    if (answer.status !== 'PENDING') break;
    if (Date.now() > deadline) throw new Error(`Order ${orderId} still PENDING after ${options.timeoutMs ?? 180_000} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const postToDecisionMs = Math.round(performance.now() - postedAt);
  const { Item } = await options.db.send(new GetCommand({ TableName: options.ordersTable, Key: { orderId }, ConsistentRead: true }));
  if (!Item) throw new Error(`Order ${orderId} is not in ${options.ordersTable}`);
  const decidedAt = answer.decidedAt ? Date.parse(answer.decidedAt) : Number.NaN;
  return {
    orderId,
    status: answer.status,
    ...(answer.reason ? { reason: answer.reason } : {}),
    lines: answer.items.length,
    bodyBytes: Buffer.byteLength(body),
    eventBytes: Buffer.byteLength(JSON.stringify(placedEventOf(answer))),
    storedItemBytes: dynamoDbItemSize(Item),
    storedCompressed: 'itemsGzip' in (Item as StoredOrderItem),
    postToDecisionMs,
    createdToDecidedMs: Number.isFinite(decidedAt) ? decidedAt - Date.parse(answer.createdAt) : undefined,
  };
}
