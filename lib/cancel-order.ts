import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';
import { logger } from './observability.js';
import { PARTICIPANTS } from './order-schema.js';
import { publishOrderEvent } from './order-events-topic.js';
import { publishOutcome, recordDecisionMetrics, recordPaymentTokenForgotten } from './order-outcome.js';
import { findOrder, type OrderRecord, secondsAfter, type StoredOrderItem, sweepShardOf, toOrderRecord } from './order-store.js';
import { forgetUntakenPaymentToken } from './payment-tokens.js';

// A customer cancels their order: one conditional write of `cancel` on the order item, accepted
// until the parcel is dispatched. The order is then CANCELLED (CUSTOMER_CANCELLED) whatever the
// participants' results, before the decision or after it, and OrderCancelled asks each participant
// to undo what it did. Events on standard queues come in any order, so each participant also
// checks for the cancellation on its own (lib/order-outcome.ts): one that finds it before doing its
// part does nothing, one whose result lands after it asks for its own compensation.

export type CancelOrderResult =
  /** Cancelled now (`published`: OrderCancelled went out; if not, the sweep sends it). */
  | { outcome: 'cancelled'; order: OrderRecord; published: boolean }
  /** Cancelled by an earlier request: the same answer again. */
  | { outcome: 'already-cancelled'; order: OrderRecord }
  /** Too late: dispatched, or already cancelled for another reason. `why` says which. */
  | { outcome: 'refused'; order: OrderRecord; why: string }
  /** No such order for this customer (someone else's order is not found either). */
  | { outcome: 'not-found' };

/** Why this order can no longer be cancelled; undefined while it can. */
function refusal(order: OrderRecord): string | undefined {
  if (order.dispatchedAt) return `its parcel was dispatched at ${order.dispatchedAt}`;
  if (order.status === 'CANCELLED' && !order.cancel) return `it was already cancelled (${order.reason ?? 'unknown reason'})`;
  const rejected = PARTICIPANTS.find((participant) => order[participant]?.outcome === 'REJECTED');
  if (rejected) return `it is being cancelled already: the ${rejected} participant rejected it`;
  return undefined;
}

export async function cancelOrder(
  customerId: string,
  orderId: string,
  publish: typeof publishOrderEvent = publishOrderEvent,
  now: Date = new Date(),
): Promise<CancelOrderResult> {
  const order = await findOrder(orderId);
  if (!order || order.customerId !== customerId) return { outcome: 'not-found' };
  if (order.cancel) return { outcome: 'already-cancelled', order };
  const why = refusal(order);
  if (why) return { outcome: 'refused', order, why };

  // The conditions restate the refusals, so a dispatch or a rejection written since the read wins.
  const names: Record<string, string> = { '#outcome': 'outcome' };
  const notRejected = PARTICIPANTS.map((participant, i) => {
    names[`#p${i}`] = participant;
    return `(attribute_not_exists(#p${i}) OR #p${i}.#outcome <> :rejected)`;
  });
  const written = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.ordersTable(),
        Key: { orderId },
        ConditionExpression: [
          'attribute_exists(orderId)',
          'attribute_not_exists(cancel)',
          'attribute_not_exists(dispatchedAt)',
          ...notRejected,
        ].join(' AND '),
        // Back in (or kept in) the sweep's index: its compensations are now due.
        UpdateExpression: 'SET cancel = :cancel, sweepShard = :shard, sweepDueAt = :due, sweepAttempts = :zero',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: {
          ':cancel': { at: now.toISOString() },
          ':rejected': 'REJECTED',
          ':shard': sweepShardOf(orderId),
          ':due': secondsAfter(now, config.orderSweepAfterSeconds()),
          ':zero': 0,
        },
        ReturnValues: 'ALL_NEW',
      }),
    ),
  );
  if (!written) {
    // Something moved first: answer from what is there now.
    const latest = await findOrder(orderId);
    if (!latest) return { outcome: 'not-found' };
    if (latest.cancel) return { outcome: 'already-cancelled', order: latest };
    return { outcome: 'refused', order: latest, why: refusal(latest) ?? 'it changed while being cancelled; try again' };
  }
  const cancelled = toOrderRecord(written.Attributes as StoredOrderItem);
  // A charge not started yet will not be: the card token is forgotten unless a payment delivery has
  // taken it, and one that comes later finds no token. (Not before the write: a payment that found
  // no token while the order was not yet cancelled would decline it, and the decline would win.) A
  // token taken is left to the payment participant: its attempt may have charged and died before
  // recording, and the next delivery needs the token to ask the provider again (lib/payment-tokens.ts).
  // Until the token is known forgotten (or a payment result recorded), the order's payment is not
  // settled (`payment:settled`): the sweep keeps it and has the payment participant settle it.
  if (!cancelled.payment) {
    // The cancellation stands whatever happens here: a token left is settled by the payment
    // participant (asked by the sweep if no delivery of its own comes), or expires.
    try {
      if (await forgetUntakenPaymentToken(orderId)) await recordPaymentTokenForgotten(orderId, now);
      else logger.info('Cancelled while a payment delivery holds the card token: the payment participant settles it', { orderId });
    } catch (error) {
      logger.warn('Could not forget the card token of a cancelled order; the payment participant settles it', { error, orderId });
    }
  }
  recordDecisionMetrics(cancelled, now);
  try {
    await publishOutcome(cancelled, publish);
  } catch (error) {
    // The order is cancelled whatever happens to the event: the sweep publishes it again.
    logger.error('OrderCancelled publish failed; the sweep publishes it again', { error, orderId });
    return { outcome: 'cancelled', order: cancelled, published: false };
  }
  logger.info('Order cancelled by the customer', { orderId, wasStatus: order.status });
  return { outcome: 'cancelled', order: cancelled, published: true };
}
