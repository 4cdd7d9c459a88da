import { cancelShipmentForOrder, dispatchShipmentForOrder, prepareShipmentForOrder } from '../lib/shipping.js';
import { createQueueConsumer } from '../lib/queue-consumer.js';

// Prepares a shipment when an order is placed, dispatches it when confirmed, cancels it when cancelled.
export const handler = createQueueConsumer(
  'shipping',
  { OrderPlaced: prepareShipmentForOrder, OrderConfirmed: dispatchShipmentForOrder, OrderCancelled: cancelShipmentForOrder },
  { participant: 'shipping' },
);
