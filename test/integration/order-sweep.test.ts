import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeOutages } from '../../lib/fault-injection.js';
import type { OrderEvent } from '../../lib/events.js';
import type { OrderRequest } from '../../lib/order-schema.js';
import { recordFollowUp, recordResult, settleAfterRecording } from '../../lib/order-outcome.js';
import { MAX_SWEEP_BACKOFF_SECONDS, sweepBackoffSeconds, sweepUnfinishedOrders } from '../../lib/order-sweep.js';
import { type OrderRecord, type StoredOrder, storeNewOrder, SWEEP_SHARDS, toOrderRecord } from '../../lib/order-store.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The sweep that heals the pipeline (lib/order-sweep.ts), on dynalite with the orders table and its
// UnfinishedOrders index as the packaged template declares them. Publishing is captured, so each
// test sees exactly which events the sweep sent.

let stack: ProvisionedStack;
let published: OrderEvent[];
const publish = async (event: OrderEvent) => {
  published.push(event);
  return 'captured';
};

const outagesFile = join(mkdtempSync(join(tmpdir(), 'sweep-')), 'outages.json');

beforeAll(async () => {
  stack = await startProvisionedStack();
  Object.assign(process.env, {
    ORDER_SWEEP_AFTER_SECONDS: '120',
    ORDER_SWEEP_BACKOFF_BASE_SECONDS: '60',
    ORDER_SWEEP_STUCK_ATTEMPTS: '3',
    FAULT_OUTAGES_FILE: outagesFile,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

beforeEach(async () => {
  // Each test starts from an empty index: everything earlier tests left is finished off.
  published = [];
  for (const order of await allUnfinished()) {
    await stack.db.send(
      new UpdateCommand({
        TableName: stack.table('OrdersTable'),
        Key: { orderId: order },
        UpdateExpression: 'REMOVE sweepShard, sweepDueAt',
      }),
    );
  }
});

let counter = 0;
function request(): OrderRequest {
  counter += 1;
  return {
    items: [{ sku: 'SKU-SWEEP', quantity: 1 }],
    payment: { token: 'tok_visa' },
    shippingAddress: { ...SAMPLE_ADDRESS },
  };
}

const HOUR = 3_600_000;
/** An order stored `ageMs` ago: due for the sweep once its 120 s threshold has passed. */
async function placedAgo(ageMs: number): Promise<OrderRecord> {
  const stored = await storeNewOrder(`cus_sweep_${counter}`, request(), undefined, new Date(Date.now() - ageMs));
  if (stored.outcome !== 'created') throw new Error(`expected a new order, got ${stored.outcome}`);
  return stored.order;
}

async function read(orderId: string): Promise<OrderRecord> {
  const { Item } = await stack.db.send(new GetCommand({ TableName: stack.table('OrdersTable'), Key: { orderId }, ConsistentRead: true }));
  return toOrderRecord(Item as StoredOrder);
}

async function allUnfinished(): Promise<string[]> {
  const { ScanCommand } = await import('@aws-sdk/lib-dynamodb');
  const page = await stack.db.send(new ScanCommand({ TableName: stack.table('OrdersTable'), IndexName: 'UnfinishedOrders' }));
  return (page.Items ?? []).map((item) => String(item.orderId));
}

/** Records every participant's result and lets the deciding one settle, without its publish reaching anything. */
async function decide(order: OrderRecord, outcome: 'CONFIRMED' | 'CANCELLED', decidedAgoMs: number): Promise<OrderRecord> {
  const at = new Date(Date.now() - decidedAgoMs).toISOString();
  await recordResult(order.orderId, 'inventory', { outcome: 'REJECTED', at, attempt: 'test', shortSku: 'SKU-SWEEP' });
  if (outcome === 'CONFIRMED') {
    // Rewritten by hand: a confirmed order needs every result SUCCEEDED (no stock is involved here).
    await stack.db.send(
      new UpdateCommand({
        TableName: stack.table('OrdersTable'),
        Key: { orderId: order.orderId },
        UpdateExpression: 'SET inventory.outcome = :succeeded',
        ExpressionAttributeValues: { ':succeeded': 'SUCCEEDED' },
      }),
    );
  }
  await recordResult(order.orderId, 'shipping', { outcome: 'SUCCEEDED', at });
  const last = await recordResult(
    order.orderId,
    'payment',
    outcome === 'CONFIRMED'
      ? { outcome: 'SUCCEEDED', at, chargeId: 'ch_test', amount: 1000 }
      : { outcome: 'REJECTED', at, declineCode: 'card_declined' },
  );
  // The decider's publish fails (a topic outage for its whole retry budget): decided, never published.
  writeOutages(outagesFile, { topic: { from: 0, until: Date.now() + HOUR } });
  try {
    await expect(settleAfterRecording(last!, 'payment')).rejects.toThrow(/topic outage/);
  } finally {
    writeOutages(outagesFile, {});
  }
  return read(order.orderId);
}

describe('the sweep', () => {
  it('publishes OrderPlaced again for a PENDING order past its threshold, and not for a newer one', async () => {
    const stuck = await placedAgo(HOUR);
    const fresh = await placedAgo(0);
    const summary = await sweepUnfinishedOrders({ publish });
    expect(summary).toMatchObject({ due: 1, republishedPlaced: 1, failed: 0 });
    expect(published).toEqual([stuck.placedEvent]);
    expect(published.map((e) => e.orderId)).not.toContain(fresh.orderId);
  });

  it('backs off per order: the next attempt waits a growing interval, and the attempts are counted', async () => {
    const stuck = await placedAgo(HOUR);
    const start = Date.now();
    await sweepUnfinishedOrders({ publish });
    let order = await read(stuck.orderId);
    expect(order.sweepAttempts).toBe(1);
    expect(Date.parse(order.sweepDueAt!) - start).toBeGreaterThanOrEqual(60_000 - 1000);
    // A run a minute later: not due yet, nothing sent.
    published = [];
    await sweepUnfinishedOrders({ publish, now: new Date(start + 30_000) });
    expect(published).toEqual([]);
    // Once due, the second attempt waits twice as long.
    const second = new Date(Date.parse(order.sweepDueAt!) + 1000);
    await sweepUnfinishedOrders({ publish, now: second });
    expect(published).toHaveLength(1);
    order = await read(stuck.orderId);
    expect(order.sweepAttempts).toBe(2);
    expect(Date.parse(order.sweepDueAt!) - second.getTime()).toBe(120_000);
    expect(sweepBackoffSeconds(3, 60)).toBe(240);
    expect(sweepBackoffSeconds(30, 60)).toBe(MAX_SWEEP_BACKOFF_SECONDS);
  });

  it('counts an order as stuck once it has had the stuck threshold of attempts', async () => {
    const stuck = await placedAgo(HOUR);
    let now = Date.now();
    const stuckCounts: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt++) {
      const summary = await sweepUnfinishedOrders({ publish, now: new Date(now) });
      stuckCounts.push(summary.stuck);
      if (summary.stuck) expect(summary.stuckOrderIds).toEqual([stuck.orderId]);
      now = Date.parse((await read(stuck.orderId)).sweepDueAt!) + 1000;
    }
    // ORDER_SWEEP_STUCK_ATTEMPTS=3: the 4th and 5th attempts find it stuck.
    expect(stuckCounts).toEqual([0, 0, 0, 1, 1]);
  });

  it('publishes the outcome of an order decided but never announced', async () => {
    const order = await decide(await placedAgo(HOUR), 'CANCELLED', HOUR);
    expect(order.status).toBe('CANCELLED');
    const summary = await sweepUnfinishedOrders({ publish });
    expect(summary).toMatchObject({ due: 1, republishedOutcome: 1 });
    expect(published).toEqual([
      {
        eventId: `${order.orderId}:OrderCancelled`,
        eventType: 'OrderCancelled',
        orderId: order.orderId,
        occurredAt: order.decidedAt,
        data: { reason: 'OUT_OF_STOCK' },
      },
    ]);
  });

  it('publishes the outcome again while a follow-up is missing; the last follow-up takes the order out of the index', async () => {
    const order = await decide(await placedAgo(HOUR), 'CONFIRMED', HOUR);
    const summary = await sweepUnfinishedOrders({ publish });
    expect(summary.republishedOutcome).toBe(1);
    expect(published.map((e) => e.eventType)).toEqual(['OrderConfirmed']);
    expect(await allUnfinished()).toContain(order.orderId);
    // The parcel is dispatched: nothing is missing, and the order leaves the index with that write.
    await recordFollowUp(order.orderId, 'dispatchedAt', new Date().toISOString(), {
      requiresSucceeded: ['inventory', 'payment', 'shipping'],
      last: true,
    });
    expect(await allUnfinished()).not.toContain(order.orderId);
    const after = await read(order.orderId);
    expect(after.sweepShard).toBeUndefined();
    expect(after.sweepDueAt).toBeUndefined();
  });

  it('takes a finished order that is still indexed out of the index, without publishing', async () => {
    const order = await decide(await placedAgo(HOUR), 'CONFIRMED', HOUR);
    // Its follow-up written, but the index keys left behind (as when two last writes ran at once).
    await recordFollowUp(order.orderId, 'dispatchedAt', new Date().toISOString(), {
      requiresSucceeded: ['inventory', 'payment', 'shipping'],
      last: true,
    });
    await stack.db.send(
      new UpdateCommand({
        TableName: stack.table('OrdersTable'),
        Key: { orderId: order.orderId },
        UpdateExpression: 'SET sweepShard = :shard, sweepDueAt = :due',
        ExpressionAttributeValues: { ':shard': order.sweepShard, ':due': new Date(Date.now() - HOUR).toISOString() },
      }),
    );
    const summary = await sweepUnfinishedOrders({ publish });
    expect(summary).toMatchObject({ due: 1, finished: 1, republishedOutcome: 0 });
    expect(published).toEqual([]);
    expect(await allUnfinished()).not.toContain(order.orderId);
  });

  it('carries on after a failed publish, and tries the failed order again after its backoff', async () => {
    const orders = await Promise.all([placedAgo(HOUR), placedAgo(HOUR), placedAgo(HOUR)]);
    const failing = orders[1]!.orderId;
    const summary = await sweepUnfinishedOrders({
      publish: async (event) => {
        if (event.orderId === failing) throw new Error('topic unavailable');
        return publish(event);
      },
    });
    expect(summary).toMatchObject({ due: 3, republishedPlaced: 2, failed: 1 });
    expect(published.map((e) => e.orderId).sort()).toEqual([orders[0]!.orderId, orders[2]!.orderId].sort());
    const failed = await read(failing);
    expect(failed.sweepAttempts).toBe(1);
    expect(Date.parse(failed.sweepDueAt!)).toBeGreaterThan(Date.now());
  });

  it('spreads orders over its shards and reads every shard, up to its cap per run', async () => {
    const orders = await Promise.all(Array.from({ length: 40 }, () => placedAgo(HOUR)));
    const shards = new Set(orders.map((o) => o.sweepShard));
    expect(shards.size).toBeGreaterThan(SWEEP_SHARDS / 2);
    const capped = await sweepUnfinishedOrders({ publish, maxOrders: 16 });
    expect(capped.due).toBe(16);
    // The rest come in the next runs; nothing is skipped.
    const rest = await sweepUnfinishedOrders({ publish, maxOrders: 100 });
    expect(rest.due).toBe(24);
    expect(new Set(published.map((e) => e.orderId)).size).toBe(40);
  });
});
