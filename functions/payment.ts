import { chargeForOrder, providerCallIdempotency, refundForOrder } from '../lib/payments.js';
import { createQueueConsumer } from '../lib/queue-consumer.js';

// Charges when an order is placed, refunds when it is cancelled. (A confirmed order needs nothing
// more from payment: the filter policy does not deliver OrderConfirmed here.)
export const handler = createQueueConsumer(
  'payment',
  { OrderPlaced: (event) => chargeForOrder(event), OrderCancelled: (event) => refundForOrder(event) },
  { idempotency: [providerCallIdempotency], participant: 'payment' },
);
