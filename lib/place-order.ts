import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';
import { logger } from './observability.js';
import { publishOrderEvent } from './order-events-topic.js';
import type { OrderRequest } from './order-schema.js';
import { type OrderRecord, placedEventOf, storeNewOrder } from './order-store.js';

export type PlaceOrderResult =
  /** `created`: this request stored the order (count it once, here); false for a replay. */
  | { outcome: 'accepted'; order: OrderRecord; replayed: boolean; created: boolean }
  /** Stored but the publish failed: the sweep or a retry with the same key finishes it. */
  | { outcome: 'not-published'; order: OrderRecord; created: boolean }
  /** The caller already used this Idempotency-Key for a different order body: that order's id. */
  | { outcome: 'key-reused'; orderId: string; created: false };

/**
 * Stores the order, then publishes OrderPlaced. These are two writes that can split: the event is
 * rebuilt from the order item, the same every time, so a retry (same Idempotency-Key) or the scheduled sweep can send
 * it again, and the consumers' idempotency makes a second publish harmless.
 *
 * A replay publishes again only when the first publish is known to have failed (it left
 * `placedPublishFailedAt` on the order): a burst of retries of a healthy order must not multiply
 * the pipeline's work. An order whose first request died between the two writes is the sweep's.
 */
export async function placeOrder(
  customerId: string,
  request: OrderRequest,
  idempotencyKey: string | undefined,
  publish: typeof publishOrderEvent = publishOrderEvent,
): Promise<PlaceOrderResult> {
  const stored = await storeNewOrder(customerId, request, idempotencyKey);
  if (stored.outcome === 'key-reused') return { outcome: 'key-reused', orderId: stored.orderId, created: false };
  const { order } = stored;
  const created = stored.outcome === 'created';
  if (!created && !(order.status === 'PENDING' && order.placedPublishFailedAt)) {
    return { outcome: 'accepted', order, replayed: true, created };
  }
  try {
    await publish(placedEventOf(order));
  } catch (error) {
    logger.error('OrderPlaced publish failed; the order stays PENDING until published again', { error, orderId: order.orderId });
    await markPublish(order.orderId, 'failed');
    return { outcome: 'not-published', order, created };
  }
  if (!created) await markPublish(order.orderId, 'succeeded');
  return { outcome: 'accepted', order, replayed: !created, created };
}

/** Records a failed publish (so that a replay publishes again), or clears it after a successful one. */
async function markPublish(orderId: string, outcome: 'failed' | 'succeeded'): Promise<void> {
  try {
    await unlessConditionFails(() =>
      dynamoDbDocumentClient().send(
        new UpdateCommand({
          TableName: config.ordersTable(),
          Key: { orderId },
          ConditionExpression: 'attribute_exists(orderId)',
          ...(outcome === 'failed'
            ? { UpdateExpression: 'SET placedPublishFailedAt = :at', ExpressionAttributeValues: { ':at': new Date().toISOString() } }
            : { UpdateExpression: 'REMOVE placedPublishFailedAt' }),
        }),
      ),
    );
  } catch (error) {
    // Best effort: without the mark, the sweep still publishes the order within minutes.
    logger.warn('Could not record the publish outcome on the order', { error, orderId, outcome });
  }
}
