import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import { type CancellationReason, cancellationReasons, eventIdOf, type OrderEvent } from './events.js';
import { type Stage, STAGES } from './order.js';
import {
  findOrder,
  missingFollowUps,
  type OrderRecord,
  secondsAfter,
  type StageState,
  type StageStatus,
  sweepShardOf,
} from './orders.js';
import { publishOrderEvent } from './order-events-topic.js';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logger, singleMetric } from './observability.js';

// How the saga ends without an orchestrator: each stage records its own result on the order item,
// and whichever stage sees all three results decides the order with one conditional write, then
// publishes the outcome. Every step is a single-item conditional write, so it is safe to repeat.


export type StageResult =
  | { status: 'SUCCEEDED'; what: string }
  | { status: 'REJECTED'; reason: CancellationReason; what: string };

export type Decision =
  | { outcome: 'UNDECIDED' }
  | { outcome: 'CONFIRMED' }
  | { outcome: 'CANCELLED'; reason: CancellationReason };

/** An event for an order that is not in the orders table: retried, then left in the DLQ to look at. */
export class OrderNotFoundError extends Error {
  override name = 'OrderNotFoundError';
}

function isCancellationReason(value: unknown): value is CancellationReason {
  return typeof value === 'string' && (cancellationReasons as readonly string[]).includes(value);
}

/**
 * The pure part of the decision. Undecided while any stage is PENDING; CONFIRMED when none was
 * rejected; otherwise CANCELLED with the reason of the earliest rejection (by the time it was
 * recorded, ties broken by stage order) so that every stage computing it gets the same answer.
 */
export function decideOutcome(stages: Record<Stage, StageState>): Decision {
  if (STAGES.some((stage) => stages[stage].status === 'PENDING')) return { outcome: 'UNDECIDED' };
  const rejections = STAGES.flatMap((stage, order) => {
    const state = stages[stage];
    if (state.status !== 'REJECTED') return [];
    const at = state.timeline.at(-1)?.at ?? '';
    // An unknown reason cannot be published (the event schema would refuse it); name the stage instead.
    const reason: CancellationReason = isCancellationReason(state.reason)
      ? state.reason
      : stage === 'inventory'
        ? 'OUT_OF_STOCK'
        : stage === 'payment'
          ? 'PAYMENT_DECLINED'
          : 'SHIPPING_UNAVAILABLE';
    return [{ at, order, reason }];
  });
  rejections.sort((a, b) => (a.at === b.at ? a.order - b.order : a.at < b.at ? -1 : 1));
  const first = rejections[0];
  return first ? { outcome: 'CANCELLED', reason: first.reason } : { outcome: 'CONFIRMED' };
}

/** The order event that announces a decided order; occurredAt is the decision time, so a re-publish is identical. */
export function outcomeEventOf(order: OrderRecord): OrderEvent | undefined {
  const occurredAt = order.decidedAt ?? order.updatedAt;
  if (order.status === 'CONFIRMED') {
    return { eventId: eventIdOf(order.orderId, 'OrderConfirmed'), eventType: 'OrderConfirmed', orderId: order.orderId, occurredAt, data: {} };
  }
  if (order.status === 'CANCELLED' && order.reason) {
    return {
      eventId: eventIdOf(order.orderId, 'OrderCancelled'),
      eventType: 'OrderCancelled',
      orderId: order.orderId,
      occurredAt,
      data: { reason: order.reason },
    };
  }
  return undefined;
}

export async function loadOrder(orderId: string): Promise<OrderRecord> {
  const order = await findOrder(orderId);
  if (!order) throw new OrderNotFoundError(`Order ${orderId} is not in the orders table`);
  return order;
}

/**
 * Records a stage's result once: `PENDING` → SUCCEEDED or REJECTED, with a timeline entry.
 * Returns the whole order after the write, or undefined when the stage had already been recorded
 * (a retry, or a concurrent duplicate delivery).
 */
export async function recordStageResult(
  orderId: string,
  stage: Stage,
  result: StageResult,
  now: Date = new Date(),
): Promise<OrderRecord | undefined> {
  const at = now.toISOString();
  try {
    const response = await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        ConditionExpression: 'stages.#stage.#status = :pending',
        UpdateExpression:
          result.status === 'REJECTED'
            ? 'SET stages.#stage.#status = :status, stages.#stage.#reason = :reason, stages.#stage.#timeline = list_append(stages.#stage.#timeline, :entry), updatedAt = :at'
            : 'SET stages.#stage.#status = :status, stages.#stage.#timeline = list_append(stages.#stage.#timeline, :entry), updatedAt = :at',
        ExpressionAttributeNames: {
          '#stage': stage,
          '#status': 'status',
          '#timeline': 'timeline',
          ...(result.status === 'REJECTED' ? { '#reason': 'reason' } : {}),
        },
        ExpressionAttributeValues: {
          ':pending': 'PENDING' satisfies StageStatus,
          ':status': result.status,
          ':entry': [{ at, what: result.what }],
          ':at': at,
          ...(result.status === 'REJECTED' ? { ':reason': result.reason } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return response.Attributes as OrderRecord;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return undefined;
    throw error;
  }
}

export type SettleResult =
  | { decision: 'undecided' }
  | { decision: 'decided-elsewhere'; status: OrderRecord['status'] }
  | { decision: 'decided-here'; status: OrderRecord['status']; published: boolean };

/**
 * Decides the order when all three stages are in, and publishes the outcome. Exactly one stage
 * wins the conditional decision write; only that stage publishes, and if it crashes before it
 * recorded `outcomePublishedAt`, its retry (the record failed, so it runs again) publishes then.
 */
export async function settleOrder(
  order: OrderRecord,
  stage: Stage,
  now: Date = new Date(),
): Promise<SettleResult> {
  let current = order;
  if (current.status === 'PENDING') {
    const decision = decideOutcome(current.stages);
    if (decision.outcome === 'UNDECIDED') return { decision: 'undecided' };
    const decided = await writeDecision(current.orderId, stage, decision, now);
    if (!decided) {
      // Another stage won; re-read only to report what it decided.
      const latest = await loadOrder(current.orderId);
      return { decision: 'decided-elsewhere', status: latest.status };
    }
    current = decided;
    // Counted here, where exactly one conditional write per order succeeds.
    recordDecisionMetrics(decided, now);
  }
  if (current.decidedBy !== stage) return { decision: 'decided-elsewhere', status: current.status };
  if (current.outcomePublishedAt) return { decision: 'decided-here', status: current.status, published: false };
  await publishOutcome(current);
  logger.info('Order decided', { orderId: current.orderId, status: current.status, reason: current.reason });
  return { decision: 'decided-here', status: current.status, published: true };
}

/**
 * Publishes a decided order's outcome event (the same event every time: same eventId and
 * occurredAt) and records that it was published. The decider calls it, and the sweep for an
 * order whose decider ran out of retries. Publishing twice (if the write after it fails) is
 * harmless: every consumer's work is idempotent.
 */
export async function publishOutcome(order: OrderRecord, publish: typeof publishOrderEvent = publishOrderEvent): Promise<void> {
  const event = outcomeEventOf(order);
  if (!event) throw new Error(`Order ${order.orderId} is ${order.status} without an outcome to publish`);
  await publish(event);
  await dynamoDbDocumentClient().send(
    new UpdateCommand({
      TableName: config.ordersTable(),
      Key: { orderId: order.orderId },
      UpdateExpression: 'SET outcomePublishedAt = if_not_exists(outcomePublishedAt, :at)',
      ConditionExpression: 'attribute_exists(orderId)',
      ExpressionAttributeValues: { ':at': new Date().toISOString() },
    }),
  );
}

/**
 * OrdersConfirmed or OrdersCancelled with the `service` dimension alone (the cancelled-rate alarm
 * divides this OrdersCancelled by OrdersPlaced), OrdersCancelled once more with a `reason`
 * dimension, and the time from OrderPlaced to the decision. Written at once: records of a batch
 * settle in parallel, and each may carry another reason.
 */
export function recordDecisionMetrics(order: OrderRecord, now: Date = new Date()): void {
  if (order.status === 'CONFIRMED') singleMetric().addMetric('OrdersConfirmed', MetricUnit.Count, 1);
  if (order.status === 'CANCELLED') {
    singleMetric().addMetric('OrdersCancelled', MetricUnit.Count, 1);
    singleMetric().addDimension('reason', order.reason ?? 'UNKNOWN').addMetric('OrdersCancelled', MetricUnit.Count, 1);
  }
  const placedAt = Date.parse(order.placedEvent?.occurredAt ?? order.createdAt);
  const elapsedMs = now.getTime() - placedAt;
  if (Number.isFinite(elapsedMs) && elapsedMs >= 0) singleMetric().addMetric('OrderPlacedToDecided', MetricUnit.Milliseconds, elapsedMs);
}

async function writeDecision(
  orderId: string,
  stage: Stage,
  decision: Exclude<Decision, { outcome: 'UNDECIDED' }>,
  now: Date,
): Promise<OrderRecord | undefined> {
  const at = now.toISOString();
  const cancelled = decision.outcome === 'CANCELLED';
  try {
    const response = await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        // The stage conditions restate what the decision was computed from, so a stale read cannot decide.
        ConditionExpression:
          '#status = :pending AND stages.inventory.#status <> :pending AND stages.payment.#status <> :pending AND stages.shipping.#status <> :pending',
        // The order stays in the sweep's index until its follow-ups are done; the sweep's clock and
        // its backoff start again from the decision.
        UpdateExpression: `SET #status = :decided, decidedAt = :at, decidedBy = :stage, updatedAt = :at, sweepShard = :shard, sweepDueAt = :due, sweepAttempts = :zero${cancelled ? ', #reason = :reason' : ''}`,
        ExpressionAttributeNames: { '#status': 'status', ...(cancelled ? { '#reason': 'reason' } : {}) },
        ExpressionAttributeValues: {
          ':pending': 'PENDING',
          ':decided': decision.outcome,
          ':at': at,
          ':stage': stage,
          ':shard': sweepShardOf(orderId),
          ':due': secondsAfter(now, config.orderSweepAfterSeconds()),
          ':zero': 0,
          ...(cancelled ? { ':reason': decision.reason } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return response.Attributes as OrderRecord;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return undefined;
    throw error;
  }
}

export type StageCompletion =
  | { stage: Stage; recorded: StageResult['status']; settle: SettleResult }
  | { stage: Stage; recorded: 'earlier'; settle: SettleResult };

/**
 * One stage's handling of OrderPlaced: do the work only while the stage is still PENDING (so an
 * OrderPlaced delivered late, after the order was decided and compensated, changes nothing),
 * record its result, then try to settle the order. A retry after a crash anywhere in between
 * finds the stage recorded, skips the work and goes on settling.
 */
export async function completeStage(
  stage: Stage,
  orderId: string,
  work: (order: OrderRecord) => Promise<StageResult>,
): Promise<StageCompletion> {
  const order = await loadOrder(orderId);
  if (order.stages[stage].status !== 'PENDING') {
    return { stage, recorded: 'earlier', settle: await settleOrder(order, stage) };
  }
  const result = await work(order);
  const recorded = await recordStageResult(orderId, stage, result);
  if (!recorded) {
    // A concurrent delivery recorded it first; settling from a fresh read is still this call's job
    // only if it was this stage's decision, which settleOrder checks.
    return { stage, recorded: 'earlier', settle: await settleOrder(await loadOrder(orderId), stage) };
  }
  return { stage, recorded: result.status, settle: await settleOrder(recorded, stage) };
}

/**
 * Appends a follow-up entry (committed, dispatched, refunded...) to a stage's timeline once,
 * optionally moving the stage to a new status. "Once" is an optimistic check: the entry is not
 * there yet, and the timeline still has the length that check saw.
 */
export async function appendStageTimelineOnce(
  orderId: string,
  stage: Stage,
  what: string,
  newStatus?: StageStatus,
  now: Date = new Date(),
): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const order = await loadOrder(orderId);
    const timeline = order.stages[stage].timeline;
    if (timeline.some((entry) => entry.what === what)) return false;
    const at = now.toISOString();
    // The last follow-up of a decided order takes it out of the sweep's index in the same write (and,
    // a follow-up being proof of it, records the outcome as published if the decider had not yet).
    // Two last follow-ups written at once may each miss that; the sweep then finds the order finished.
    const after = { ...order.stages, [stage]: { ...order.stages[stage], timeline: [...timeline, { at, what }] } };
    const finished = order.status !== 'PENDING' && missingFollowUps({ status: order.status, stages: after }).length === 0;
    try {
      await dynamoDbDocumentClient().send(
        new UpdateCommand({
          TableName: config.ordersTable(),
          Key: { orderId },
          ConditionExpression: 'size(stages.#stage.#timeline) = :length',
          UpdateExpression: `SET stages.#stage.#timeline = list_append(stages.#stage.#timeline, :entry), updatedAt = :at${newStatus ? ', stages.#stage.#status = :status' : ''}${finished ? ', outcomePublishedAt = if_not_exists(outcomePublishedAt, :at) REMOVE sweepShard, sweepDueAt' : ''}`,
          ExpressionAttributeNames: { '#stage': stage, '#timeline': 'timeline', ...(newStatus ? { '#status': 'status' } : {}) },
          ExpressionAttributeValues: {
            ':length': timeline.length,
            ':entry': [{ at, what }],
            ':at': at,
            ...(newStatus ? { ':status': newStatus } : {}),
          },
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
  throw new Error(`Could not append "${what}" to the ${stage} timeline of order ${orderId}: too much contention`);
}
