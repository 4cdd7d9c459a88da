import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { claimCheckKeyOf, discard } from './claim-check.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';
import { eventIdOf, type OrderEvent } from './events.js';
import { logger, singleMetric } from './observability.js';
import { PARTICIPANTS, type Participant } from './order-schema.js';
import { isClaimChecked, publishOrderEvent } from './order-events-topic.js';
import {
  decideOutcome,
  findOrder,
  type InventoryResult,
  missingFollowUps,
  type OrderRecord,
  type ParticipantResults,
  type PaymentResult,
  secondsAfter,
  type ShippingResult,
  type StoredOrderItem,
  shippingSpeedOf,
  sweepShardOf,
  toOrderRecord,
} from './order-store.js';

// How the saga ends without an orchestrator: each participant records its result on the order
// item once (a conditional write of one small attribute), and the write that completes the set of
// three decides the order: exactly one write can, since each result is written once. That write's
// participant publishes the outcome. The decision itself is not stored: it follows from the results.

/** An event for an order that is not in the orders table: retried, then left in the DLQ to look at. */
export class OrderNotFoundError extends Error {
  override name = 'OrderNotFoundError';
}

export type ResultOf<P extends Participant> = NonNullable<ParticipantResults[P]>;
type AnyResult = InventoryResult | PaymentResult | ShippingResult;

/** The order event that announces a decided order; occurredAt is the decision time, so a re-publish is identical. */
export function outcomeEventOf(order: OrderRecord): OrderEvent | undefined {
  const occurredAt = order.decidedAt ?? order.updatedAt;
  if (order.status === 'CONFIRMED') {
    return {
      eventId: eventIdOf(order.orderId, 'OrderConfirmed'),
      eventType: 'OrderConfirmed',
      orderId: order.orderId,
      occurredAt,
      data: {},
    };
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
 * Records a participant's result once. Returns the whole order after the write, or undefined when
 * the result was there already (a retry, a concurrent duplicate) or the order does not exist.
 */
export async function recordResult<P extends Participant>(
  orderId: string,
  participant: P,
  result: ResultOf<P>,
): Promise<OrderRecord | undefined> {
  const response = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        ConditionExpression: 'attribute_exists(orderId) AND attribute_not_exists(#participant)',
        UpdateExpression: 'SET #participant = :result',
        ExpressionAttributeNames: { '#participant': participant },
        ExpressionAttributeValues: { ':result': result satisfies AnyResult },
        ReturnValues: 'ALL_NEW',
      }),
    ),
  );
  return response ? toOrderRecord(response.Attributes as StoredOrderItem) : undefined;
}

export type SettleResult =
  | { decision: 'undecided' }
  | { decision: 'decided-elsewhere'; status: OrderRecord['status'] }
  | { decision: 'decided-here'; status: OrderRecord['status']; published: boolean };

export type ParticipantCompletion = {
  participant: Participant;
  /** `skipped`: the customer had cancelled the order before this participant did anything. */
  recorded: 'SUCCEEDED' | 'REJECTED' | 'earlier' | 'skipped';
  settle: SettleResult;
};

/** Whether this participant still owes the order a compensation (it had done its part, the order is cancelled). */
function owesCompensation(order: OrderRecord, participant: Participant): boolean {
  return order.status === 'CANCELLED' && missingFollowUps(order).some((followUp) => followUp.startsWith(`${participant}:`));
}

/**
 * After this participant's result write: if it completed the set, the order is decided here, and
 * this participant counts and publishes the outcome. If the customer had cancelled meanwhile (the
 * order was decided before this write), a result that did something needs undoing: OrderCancelled
 * is published again, so that this participant's compensation runs even if it took the first one
 * before there was anything to compensate (events on standard queues arrive in any order).
 */
export async function settleAfterRecording(order: OrderRecord, participant: Participant): Promise<SettleResult> {
  if (order.status === 'PENDING') return { decision: 'undecided' };
  const settled = await settleDecided(order, participant);
  // After the outcome is published: a crash before this leaves the object to the lifecycle rule, and
  // a redelivery still finds its payload and publishes again (settleRecordedEarlier).
  await discardPlacedEventOnceDone(order);
  return settled;
}

async function settleDecided(order: OrderRecord, participant: Participant): Promise<SettleResult> {
  const before = decideOutcome({ ...order, [participant]: undefined });
  if (before.outcome !== 'UNDECIDED') {
    if (owesCompensation(order, participant)) {
      await rejoinSweepIndex(order.orderId);
      await publishOutcome(order);
      logger.info('Result recorded on a cancelled order: its compensation is asked for again', { orderId: order.orderId, participant });
    }
    return { decision: 'decided-elsewhere', status: order.status };
  }
  recordDecisionMetrics(order);
  await publishOutcome(order);
  logger.info('Order decided', { orderId: order.orderId, status: order.status, reason: order.reason });
  return { decision: 'decided-here', status: order.status, published: true };
}

/**
 * Once all three results are on the order, no participant needs OrderPlaced again: the write that
 * completed them (one write does: each result is written once) deletes the event's claim-check
 * object, if it had one. Whether it had one follows from the event rebuilt from the order
 * (isClaimChecked), so a small order costs no S3 call and no stored flag. Best effort: the bucket's
 * lifecycle rule removes what is left (an order cancelled by the customer before every participant
 * recorded a result, a failed delete).
 */
async function discardPlacedEventOnceDone(order: OrderRecord): Promise<void> {
  if (!PARTICIPANTS.every((participant) => order[participant] !== undefined)) return;
  if (!isClaimChecked(order.placedEvent)) return;
  const key = claimCheckKeyOf(order.placedEvent);
  try {
    await discard(key);
    logger.info('Every participant is done with OrderPlaced: its claim-check object is deleted', { orderId: order.orderId, s3Key: key });
  } catch (error) {
    logger.warn("Could not delete OrderPlaced's claim-check object; the bucket's lifecycle rule will", {
      error,
      orderId: order.orderId,
      s3Key: key,
    });
  }
}

/** Puts a decided order back in the sweep's index (it may have left it before this participant's late result). */
async function rejoinSweepIndex(orderId: string, now: Date = new Date()): Promise<void> {
  await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        ConditionExpression: 'attribute_exists(orderId)',
        UpdateExpression:
          'SET sweepShard = :shard, sweepDueAt = if_not_exists(sweepDueAt, :due), sweepAttempts = if_not_exists(sweepAttempts, :zero)',
        ExpressionAttributeValues: {
          ':shard': sweepShardOf(orderId),
          ':due': secondsAfter(now, config.orderSweepAfterSeconds()),
          ':zero': 0,
        },
      }),
    ),
  );
}

/**
 * A participant whose result was recorded earlier (a redelivery, or a retry after a crash). If it
 * is the decider (its result was the last) and the order still lacks a follow-up, it publishes the
 * outcome again: the first attempt may have died before publishing. Otherwise nothing: the sweep
 * covers whatever else is missing.
 */
export async function settleRecordedEarlier(order: OrderRecord, participant: Participant): Promise<SettleResult> {
  if (order.status === 'PENDING') return { decision: 'undecided' };
  const decider = order.decidedBy === participant || owesCompensation(order, participant);
  if (!decider || missingFollowUps(order).length === 0) {
    return { decision: 'decided-elsewhere', status: order.status };
  }
  await publishOutcome(order);
  return { decision: 'decided-here', status: order.status, published: true };
}

/**
 * One participant's handling of OrderPlaced, for work that needs nothing undone when it loses a
 * race: do it, record it once, settle. An order known to have this result already skips the work.
 */
export async function completeParticipant<P extends Participant>(
  participant: P,
  orderId: string,
  work: () => Promise<ResultOf<P>>,
  known?: OrderRecord,
): Promise<ParticipantCompletion> {
  if (known?.[participant]) return { participant, recorded: 'earlier', settle: await settleRecordedEarlier(known, participant) };
  if (known?.cancel) return skippedForCancellation(known, participant);
  const result = await work();
  const recorded = await recordResult(orderId, participant, result);
  if (recorded) return { participant, recorded: result.outcome, settle: await settleAfterRecording(recorded, participant) };
  return { participant, recorded: 'earlier', settle: await settleRecordedEarlier(await loadOrder(orderId), participant) };
}

/** A participant that finds the order cancelled by the customer before it did anything: nothing to do, nor to undo. */
export function skippedForCancellation(order: OrderRecord, participant: Participant): ParticipantCompletion {
  logger.info("Order cancelled by the customer before this participant's part: skipped", { orderId: order.orderId, participant });
  return { participant, recorded: 'skipped', settle: { decision: 'decided-elsewhere', status: order.status } };
}

/**
 * Publishes a decided order's outcome event (the same event every time: same eventId and
 * occurredAt). The decider calls it, and the sweep for an order whose follow-ups are missing.
 * Publishing twice is harmless: every consumer's work is idempotent.
 */
export async function publishOutcome(order: OrderRecord, publish: typeof publishOrderEvent = publishOrderEvent): Promise<void> {
  const event = outcomeEventOf(order);
  if (!event) throw new Error(`Order ${order.orderId} is ${order.status} without an outcome to publish`);
  // In the order's lane, as its OrderPlaced was: an express order's follow-ups do not queue behind standard ones.
  await publish(event, shippingSpeedOf(order));
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
    singleMetric()
      .addDimension('reason', order.reason ?? 'UNKNOWN')
      .addMetric('OrdersCancelled', MetricUnit.Count, 1);
  }
  const elapsedMs = now.getTime() - Date.parse(order.createdAt);
  if (Number.isFinite(elapsedMs) && elapsedMs >= 0) singleMetric().addMetric('OrderPlacedToDecided', MetricUnit.Milliseconds, elapsedMs);
}

export type FollowUp = 'dispatchedAt' | 'release' | 'refund' | 'shipmentCancelledAt' | 'paymentTokenForgottenAt';
/** Attributes a follow-up's write may require absent: other follow-ups, and the customer's cancellation. */
type Absent = FollowUp | 'cancel';

/**
 * Records a follow-up once: sets its attribute, on the condition that it is not set yet, that the
 * participants in `requiresSucceeded` succeeded, and that the follow-ups in `requiresAbsent` are not
 * there. When `last` says it is the order's last missing follow-up, the order leaves the sweep's
 * index in the same write; when follow-ups ran at once (a cancelled order's three compensations),
 * whichever sees the order finished after its write takes it out. True when this call wrote it.
 */
export async function recordFollowUp(
  orderId: string,
  followUp: FollowUp,
  value: unknown,
  options: { requiresSucceeded: Participant[]; requiresAbsent?: Absent[]; last: boolean },
): Promise<boolean> {
  const names: Record<string, string> = { '#followUp': followUp };
  const values: Record<string, unknown> = { ':value': value };
  const conditions = ['attribute_exists(orderId)', 'attribute_not_exists(#followUp)'];
  // DynamoDB refuses names and values that no expression uses.
  if (options.requiresSucceeded.length > 0) {
    names['#outcome'] = 'outcome';
    values[':succeeded'] = 'SUCCEEDED';
  }
  options.requiresSucceeded.forEach((participant, i) => {
    names[`#p${i}`] = participant;
    conditions.push(`#p${i}.#outcome = :succeeded`);
  });
  (options.requiresAbsent ?? []).forEach((other, i) => {
    names[`#a${i}`] = other;
    conditions.push(`attribute_not_exists(#a${i})`);
  });
  const written = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        ConditionExpression: conditions.join(' AND '),
        UpdateExpression: `SET #followUp = :value${options.last ? ' REMOVE sweepShard, sweepDueAt, sweepAttempts' : ''}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: options.last ? 'NONE' : 'ALL_NEW',
      }),
    ),
  );
  if (!written) return false;
  const after = written.Attributes as StoredOrderItem | undefined;
  if (after?.sweepShard !== undefined && missingFollowUps(after).length === 0) await leaveSweepIndex(orderId);
  return true;
}

/**
 * Records that a cancelled order's card token was deleted with no charge made (the cancellation's
 * forgetting, or a payment delivery's skip): its payment is settled (`payment:settled`), and the
 * sweep stops asking the payment participant for it. Once; a later call changes nothing.
 */
export async function recordPaymentTokenForgotten(orderId: string, now: Date = new Date()): Promise<void> {
  await recordFollowUp(orderId, 'paymentTokenForgottenAt', now.toISOString(), { requiresSucceeded: [], last: false });
}

/** A finished order leaves the sweep's index (the sweep does the same for one it finds finished). */
export async function leaveSweepIndex(orderId: string): Promise<void> {
  await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        ConditionExpression: 'attribute_exists(sweepShard)',
        UpdateExpression: 'REMOVE sweepShard, sweepDueAt, sweepAttempts',
      }),
    ),
  );
}

/** Whether `followUp` is the only thing this decided order still lacks. */
export function isLastFollowUp(order: OrderRecord, followUp: string): boolean {
  const missing = missingFollowUps(order);
  return missing.length === 1 && missing[0] === followUp;
}
