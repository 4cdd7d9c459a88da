import { logger } from './observability.js';
import { publishOrderEvent } from './order-events-topic.js';
import type { OrderRequest } from './order.js';
import { type OrderRecord, storeNewOrder } from './orders.js';

export type PlaceOrderResult =
  | { outcome: 'accepted'; order: OrderRecord; replayed: boolean }
  /** Stored but the publish failed: the republisher or a retry with the same key finishes it. */
  | { outcome: 'not-published'; order: OrderRecord }
  /** The Idempotency-Key was already used for a different order body. */
  | { outcome: 'key-reused'; order: OrderRecord };

/**
 * Stores the order, then publishes OrderPlaced. These are two writes that can split: the order
 * item carries the exact event, so a retry (same Idempotency-Key) or the scheduled republisher
 * can send it again, and the consumers' idempotency makes a second publish harmless.
 */
export async function placeOrder(
  request: OrderRequest,
  idempotencyKey: string | undefined,
  publish: typeof publishOrderEvent = publishOrderEvent,
): Promise<PlaceOrderResult> {
  const stored = await storeNewOrder(request, idempotencyKey);
  if (stored.outcome === 'key-reused') return { outcome: 'key-reused', order: stored.order };
  const { order } = stored;
  const replayed = stored.outcome === 'replayed';
  // A replay of an order still PENDING may be the retry after a failed publish: publish again.
  if (!replayed || order.status === 'PENDING') {
    try {
      await publish(order.placedEvent);
    } catch (error) {
      logger.error('OrderPlaced publish failed; the order stays PENDING until republished', {
        error,
        orderId: order.orderId,
      });
      return { outcome: 'not-published', order };
    }
  }
  return { outcome: 'accepted', order, replayed };
}
