import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_ITEMS, MAX_QUANTITY, type OrderItem } from '../../lib/order-schema.js';
import {
  ITEMS_COMPRESSED_OVER_BYTES,
  fromStoredItem,
  type StoredOrder,
  toOrderRecord,
  toOrderView,
  toStoredItem,
} from '../../lib/order-store.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';
import { dynamoDbItemSize } from '../../local/dynamodb-item-size.js';

// How the order item holds its lines: a small order's as a list, unchanged; a large order's
// gzip-compressed, so that 5,000 lines fit DynamoDB's 400 KB item limit with room to spare and
// every write on the order costs a fraction of what the list would.

const DYNAMODB_ITEM_LIMIT_BYTES = 400 * 1024;
const SKU_CHARACTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-';

function order(items: OrderItem[]): StoredOrder {
  return {
    orderId: 'ord_0190a4f2c9d37c3a8b1e2f3a4b5c6d7e',
    customerId: 'cus_large',
    items,
    shippingAddress: { ...SAMPLE_ADDRESS },
    paymentTokenMasked: 'tok_****visa',
    createdAt: '2030-01-01T00:00:00.000Z',
    sweepShard: 'S3',
    sweepDueAt: '2030-01-01T00:02:00.000Z',
    sweepAttempts: 0,
  };
}

/** A random SKU of the longest length allowed: random characters are what compresses worst. */
function randomSku(): string {
  let sku = SKU_CHARACTERS[randomInt(36)]!;
  while (sku.length < 64) sku += SKU_CHARACTERS[randomInt(SKU_CHARACTERS.length)];
  return sku;
}

/** 5,000 distinct random 64-character SKUs at quantity 1000: the largest order item there can be. */
function worstCaseItems(): OrderItem[] {
  const skus = new Set<string>();
  while (skus.size < MAX_ITEMS) skus.add(randomSku());
  return [...skus].map((sku) => ({ sku, quantity: MAX_QUANTITY }));
}

describe('the order item of a small order', () => {
  it('a single-line order is stored exactly as before: the same object, its lines a plain list, under 1 KB', () => {
    const small = order([{ sku: 'SKU-TSHIRT-M', quantity: 1 }]);
    const stored = toStoredItem(small);
    expect(stored).toBe(small);
    expect(stored).not.toHaveProperty('itemsGzip');
    expect(dynamoDbItemSize({ ...stored })).toBeLessThan(1024);
  });

  it('an order of 50 ordinary lines is not compressed either', () => {
    const fifty = order(Array.from({ length: 50 }, (_, i) => ({ sku: `SKU-${i}`, quantity: 2 })));
    expect(JSON.stringify(fifty.items).length).toBeLessThanOrEqual(ITEMS_COMPRESSED_OVER_BYTES);
    expect(toStoredItem(fifty)).toBe(fifty);
    expect(fromStoredItem(fifty)).toBe(fifty);
  });
});

describe('the order item of a large order', () => {
  it('stores the lines compressed instead of the list, and reads them back line for line', () => {
    const items = worstCaseItems();
    const stored = toStoredItem(order(items));
    expect(stored).not.toHaveProperty('items');
    expect('itemsGzip' in stored && stored.itemsGzip).toBeInstanceOf(Uint8Array);
    expect(fromStoredItem(stored)).toEqual(order(items));
  });

  it('the worst case, 5,000 random 64-character SKUs at quantity 1000, fits under 400 KB (the plain list would not)', () => {
    const items = worstCaseItems();
    const plain = dynamoDbItemSize({ ...order(items) });
    const compact = dynamoDbItemSize({ ...toStoredItem(order(items)) });
    expect(plain).toBeGreaterThan(DYNAMODB_ITEM_LIMIT_BYTES);
    // Room to spare for every result and follow-up the order gathers (under 1 KB in all).
    expect(compact).toBeLessThan(DYNAMODB_ITEM_LIMIT_BYTES - 100 * 1024);
  });

  it('is read through transparently: the record, its timeline and GET /orders/{orderId} see every line', () => {
    const items = worstCaseItems();
    const record = toOrderRecord(toStoredItem(order(items)));
    expect(record.items).toEqual(items);
    expect(record).not.toHaveProperty('itemsGzip');
    expect(record.placedEvent.data.items).toEqual(items);
    expect(toOrderView(record).items).toHaveLength(MAX_ITEMS);
  });
});
