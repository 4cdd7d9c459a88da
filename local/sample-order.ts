import type { OrderItem, OrderRequest, ShippingAddress } from '../lib/order-schema.js';

// One sample order for everything that places orders without a person typing them: tests, the
// benchmark, the chaos run and the curl in the ready banner. Change the address here, not in each.

/** Frozen: a test that changes a field works on its own copy (`{ ...SAMPLE_ADDRESS, city: '' }`). */
export const SAMPLE_ADDRESS: Readonly<ShippingAddress> = Object.freeze({
  name: 'Ada Lovelace',
  line1: '1 Main St',
  city: 'London',
  postalCode: 'N1 9GU',
  country: 'GB',
});

/** A valid POST /orders body: the given lines, a test card token (tok_visa by default), the sample address. */
export function sampleOrder(items: OrderItem[], token = 'tok_visa'): OrderRequest {
  return { items, payment: { token }, shippingAddress: { ...SAMPLE_ADDRESS } };
}
