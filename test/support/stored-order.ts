import type { OrderRequest } from '../../lib/order-schema.js';
import type { OrderRecord } from '../../lib/order-store.js';

/**
 * Stores an order for `customerId` as the order API does (the lib module is imported lazily, after
 * the test has pointed the environment at its emulators) and returns it; anything but a newly
 * created order is a broken test setup.
 */
export async function storeCreatedOrder(customerId: string, request: OrderRequest, idempotencyKey?: string): Promise<OrderRecord> {
  const { storeNewOrder } = await import('../../lib/order-store.js');
  const stored = await storeNewOrder(customerId, request, idempotencyKey);
  if (stored.outcome !== 'created') throw new Error(`expected a new order, got ${stored.outcome}`);
  return stored.order;
}
