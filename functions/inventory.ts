import { releaseStockForOrder, reserveStockForOrder } from '../lib/inventory.js';
import { createQueueConsumer } from '../lib/queue-consumer.js';

// Reserves stock when an order is placed, gives it back when the order is cancelled. (A confirmed
// order needs nothing more from inventory: its units were taken when reserved, so the filter
// policy does not deliver OrderConfirmed here.)
export const handler = createQueueConsumer(
  'inventory',
  { OrderPlaced: reserveStockForOrder, OrderCancelled: releaseStockForOrder },
  { participant: 'inventory' },
);
