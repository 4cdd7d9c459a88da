import { createHash } from 'node:crypto';

const CARRIERS = ['DHL', 'UPS', 'FedEx'] as const;

/**
 * Carrier and tracking number derived from the order id: every attempt computes the same ones, so
 * nothing about the shipment needs storing beyond the fact that it was prepared.
 */
export function shipmentLabelFor(orderId: string): { carrier: string; trackingNumber: string } {
  const digest = createHash('sha256').update(orderId).digest();
  const carrier = CARRIERS[digest[0]! % CARRIERS.length]!;
  return { carrier, trackingNumber: `${carrier.toUpperCase()}${digest.subarray(1, 9).toString('hex').toUpperCase()}` };
}
