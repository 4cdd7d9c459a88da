import { commitStockForOrder, releaseStockForOrder, reserveStockForOrder } from '../lib/inventory.js';
import { createQueueConsumer } from '../lib/queue-consumer.js';

// Reserves stock when an order is placed, sells it when confirmed, releases it when cancelled.
export const handler = createQueueConsumer('inventory', {
  OrderPlaced: reserveStockForOrder,
  OrderConfirmed: commitStockForOrder,
  OrderCancelled: releaseStockForOrder,
});
