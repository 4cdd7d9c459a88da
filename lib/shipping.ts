import type { OrderCancelled, OrderConfirmed, OrderPlaced } from './events.js';
import { completeParticipant, isLastFollowUp, loadOrder, type ParticipantCompletion, recordFollowUp } from './order-outcome.js';
import { findOrder } from './order-store.js';
import { shipmentLabelFor } from './shipment-label.js';

// One shipment per order, kept on the order item: prepared when the order is placed (the label is
// derived from the order id, so nothing but the fact needs storing), then dispatched or cancelled
// once the order is decided. Each step is one conditional write of one attribute.

export { shipmentLabelFor };

/** The shipping participant on OrderPlaced: prepare and hold the shipment, record it, settle if last. */
export function prepareShipmentForOrder(event: OrderPlaced): Promise<ParticipantCompletion> {
  return completeParticipant('shipping', event.orderId, async () => ({ outcome: 'SUCCEEDED', at: new Date().toISOString() }));
}

/**
 * The shipping participant on OrderConfirmed: hand the held shipment to the carrier, once. The
 * write itself checks that the order is confirmed (all three results succeeded), so it needs no
 * read; it is a confirmed order's only follow-up, so the order leaves the sweep's index with it.
 */
export async function dispatchShipmentForOrder(event: OrderConfirmed): Promise<{ dispatched: boolean }> {
  const dispatched = await recordFollowUp(event.orderId, 'dispatchedAt', new Date().toISOString(), {
    requiresSucceeded: ['inventory', 'payment', 'shipping'],
    // A customer's cancellation that came first wins: the parcel stays (and is cancelled on OrderCancelled).
    requiresAbsent: ['cancel'],
    last: true,
  });
  if (!dispatched) {
    // A redelivery finds it dispatched, a cancellation found it cancelled; anything else is an
    // event that does not match the order.
    const order = await loadOrder(event.orderId);
    if (order.status === 'PENDING') throw new Error(`Order ${event.orderId} is PENDING, not CONFIRMED: nothing to dispatch`);
  }
  return { dispatched };
}

/** The shipping participant on OrderCancelled: cancel a held shipment (compensation); nothing if none. */
export async function cancelShipmentForOrder(event: OrderCancelled): Promise<{ cancelled: boolean }> {
  const order = await findOrder(event.orderId);
  if (order?.status !== 'CANCELLED' || order.shipping?.outcome !== 'SUCCEEDED' || order.shipmentCancelledAt) {
    return { cancelled: false };
  }
  const cancelled = await recordFollowUp(event.orderId, 'shipmentCancelledAt', new Date().toISOString(), {
    requiresSucceeded: ['shipping'],
    requiresAbsent: ['dispatchedAt'],
    last: isLastFollowUp(order, 'shipping:cancelled'),
  });
  return { cancelled };
}
