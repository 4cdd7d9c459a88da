import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';
import { logger, singleMetric } from './observability.js';
import { publishOrderEvent } from './order-events-topic.js';
import { leaveSweepIndex, publishOutcome } from './order-outcome.js';
import { findOrder, missingFollowUps, type OrderRecord, placedEventOf, secondsAfter, SWEEP_SHARDS } from './order-store.js';

// The scheduled sweep that makes the pipeline heal itself. Every order that is not finished
// carries the keys of the sparse UnfinishedOrders index, with the time the sweep should next look
// at it. When that time has come the order is stuck somewhere (a publish lost, a message that ran
// out of receives into a DLQ during an outage), and the sweep publishes again the one event that
// moves it on: OrderPlaced while it is PENDING, its outcome once it is decided. Every consumer's
// work is idempotent, so the parts already done skip it and the missing ones happen. A cancelled
// order's payment counts as missing until it is settled (a result recorded, or the card token known
// forgotten): the payment participant's handling of OrderCancelled settles it (lib/payments.ts), so
// a charge made by a delivery that died holding the token is found without that delivery's message.
// The order leaves the index with its last follow-up; a message left in a DLQ is then a duplicate,
// harmless to redrive at any time.

export interface SweepSummary {
  /** Orders due in the index (up to the cap). */
  due: number;
  /** OrderPlaced published again for a PENDING order. */
  republishedPlaced: number;
  /** Outcome published again: never published, or a follow-up missing. */
  republishedOutcome: number;
  /** Found finished (every follow-up done) and taken out of the index. */
  finished: number;
  /** Publishes that failed (the order is tried again after its backoff). */
  failed: number;
  /** Due orders that the sweep had acted on `orderSweepStuckAttempts` times or more. */
  stuck: number;
  stuckOrderIds: string[];
}

/** Upper bound per run, so that one run stays well inside the function's timeout. */
export const MAX_ORDERS_PER_SWEEP = 500;
/** The longest wait between two attempts on one order. */
export const MAX_SWEEP_BACKOFF_SECONDS = 3600;

/** Seconds until the sweep looks at an order again after its `attempts`-th attempt: doubles, capped. */
export function sweepBackoffSeconds(attempts: number, baseSeconds: number): number {
  return Math.min(MAX_SWEEP_BACKOFF_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1));
}

export interface SweepOptions {
  now?: Date;
  maxOrders?: number;
  publish?: typeof publishOrderEvent;
}

export async function sweepUnfinishedOrders(options: SweepOptions = {}): Promise<SweepSummary> {
  const now = options.now ?? new Date();
  const maxOrders = options.maxOrders ?? MAX_ORDERS_PER_SWEEP;
  const publish = options.publish ?? publishOrderEvent;
  const summary: SweepSummary = {
    due: 0,
    republishedPlaced: 0,
    republishedOutcome: 0,
    finished: 0,
    failed: 0,
    stuck: 0,
    stuckOrderIds: [],
  };
  // Each shard gets an equal part of what is left of the cap, round after round, so a backlog in
  // one shard cannot starve the others, and the cap is still used up when some shards have little.
  const cursors = new Map<number, Record<string, unknown> | undefined>(
    Array.from({ length: SWEEP_SHARDS }, (_, shard) => [shard, undefined]),
  );
  while (cursors.size > 0 && summary.due < maxOrders) {
    const share = Math.max(1, Math.ceil((maxOrders - summary.due) / cursors.size));
    for (const [shard, cursor] of [...cursors]) {
      if (summary.due >= maxOrders) break;
      const page = await dueOrderIds(`S${shard}`, now, Math.min(share, maxOrders - summary.due), cursor);
      if (page.next) cursors.set(shard, page.next);
      else cursors.delete(shard);
      for (const orderId of page.ids) {
        summary.due += 1;
        await sweepOrder(orderId, now, publish, summary);
      }
    }
  }
  if (summary.stuck > 0) {
    singleMetric().addMetric('OrdersStuck', MetricUnit.Count, summary.stuck);
    logger.error('Orders stuck: the sweep has tried them many times; look at the DLQs and the logs', {
      stuckOrderIds: summary.stuckOrderIds.slice(0, 50),
    });
  }
  return summary;
}

/** Up to `limit` ids of a shard's orders whose sweep time has come, oldest first, and where to go on. */
async function dueOrderIds(
  shard: string,
  now: Date,
  limit: number,
  startKey: Record<string, unknown> | undefined,
): Promise<{ ids: string[]; next: Record<string, unknown> | undefined }> {
  const ids: string[] = [];
  let next = startKey;
  do {
    const page = await dynamoDbDocumentClient().send(
      new QueryCommand({
        TableName: config.ordersTable(),
        IndexName: 'UnfinishedOrders',
        KeyConditionExpression: 'sweepShard = :shard AND sweepDueAt <= :now',
        ExpressionAttributeValues: { ':shard': shard, ':now': now.toISOString() },
        ExclusiveStartKey: next,
        Limit: Math.min(100, limit - ids.length),
      }),
    );
    ids.push(...(page.Items ?? []).map((item) => String(item.orderId)));
    next = page.LastEvaluatedKey;
  } while (next && ids.length < limit);
  return { ids, next };
}

async function sweepOrder(orderId: string, now: Date, publish: typeof publishOrderEvent, summary: SweepSummary): Promise<void> {
  // The index is eventually consistent and keys-only: the order item itself says what is missing.
  const order = await findOrder(orderId);
  if (!order || order.sweepDueAt === undefined) return;
  if (order.status !== 'PENDING' && missingFollowUps(order).length === 0) {
    await leaveSweepIndex(order.orderId);
    summary.finished += 1;
    return;
  }
  const attempts = (order.sweepAttempts ?? 0) + 1;
  if (attempts > config.orderSweepStuckAttempts()) {
    summary.stuck += 1;
    summary.stuckOrderIds.push(orderId);
  }
  try {
    if (order.status === 'PENDING') {
      await publish(placedEventOf(order));
      summary.republishedPlaced += 1;
    } else {
      await publishOutcome(order, publish);
      summary.republishedOutcome += 1;
    }
    logger.info('Sweep: published again', {
      orderId,
      status: order.status,
      attempt: attempts,
      ...(order.status === 'PENDING' ? {} : { missing: missingFollowUps(order) }),
    });
  } catch (error) {
    summary.failed += 1;
    logger.error('Sweep: publish failed; the order is tried again after its backoff', { error, orderId });
  }
  await scheduleNextAttempt(order, attempts, now);
}

/** Counts the attempt and sets when to look again; skipped if the order moved on meanwhile. */
async function scheduleNextAttempt(order: OrderRecord, attempts: number, now: Date): Promise<void> {
  await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId: order.orderId },
        // Unchanged due time: no other sweep came between, and the order did not leave the index.
        ConditionExpression: 'sweepDueAt = :seen',
        UpdateExpression: 'SET sweepAttempts = :attempts, sweepDueAt = :due',
        ExpressionAttributeValues: {
          ':seen': order.sweepDueAt,
          ':attempts': attempts,
          ':due': secondsAfter(now, sweepBackoffSeconds(attempts, config.orderSweepBackoffBaseSeconds())),
        },
      }),
    ),
  );
}
