import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import type { OrderCancelled, OrderConfirmed, OrderPlaced } from './events.js';
import type { OrderItem, ShippingAddress } from './order.js';
import { appendStageTimelineOnce, completeStage, loadOrder, type StageCompletion } from './order-outcome.js';

// One shipment per order: PREPARED when the order is placed (held until the outcome), then
// DISPATCHED or CANCELLED. Each move is a conditional write on the status, so it happens once.

export type ShipmentStatus = 'PREPARED' | 'DISPATCHED' | 'CANCELLED';

export interface Shipment {
  orderId: string;
  status: ShipmentStatus;
  carrier: string;
  trackingNumber: string;
  items: OrderItem[];
  shippingAddress: ShippingAddress;
  preparedAt: string;
  dispatchedAt?: string;
  cancelledAt?: string;
}

const CARRIERS = ['DHL', 'UPS', 'FedEx'] as const;

/**
 * Carrier and tracking number derived from the order id: a retried prepare computes the same
 * ones, so nothing depends on which attempt's write landed.
 */
export function shipmentLabelFor(orderId: string): { carrier: string; trackingNumber: string } {
  const digest = createHash('sha256').update(orderId).digest();
  const carrier = CARRIERS[digest[0]! % CARRIERS.length]!;
  return { carrier, trackingNumber: `${carrier.toUpperCase()}${digest.subarray(1, 9).toString('hex').toUpperCase()}` };
}

export async function findShipment(orderId: string): Promise<Shipment | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.shipmentsTable(), Key: { orderId }, ConsistentRead: true }),
  );
  return result.Item as Shipment | undefined;
}

/** Prepares the order's shipment once; a shipment already there (a retry) is returned as it is. */
export async function prepareShipment(
  orderId: string,
  items: OrderItem[],
  shippingAddress: ShippingAddress,
  now: Date = new Date(),
): Promise<Shipment> {
  const shipment: Shipment = {
    orderId,
    status: 'PREPARED',
    ...shipmentLabelFor(orderId),
    items,
    shippingAddress,
    preparedAt: now.toISOString(),
  };
  try {
    await dynamoDbDocumentClient().send(
      new PutCommand({
        TableName: config.shipmentsTable(),
        Item: shipment,
        ConditionExpression: 'attribute_not_exists(orderId)',
      }),
    );
    return shipment;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
  const existing = await findShipment(orderId);
  if (!existing) throw new Error(`Shipment ${orderId} exists but could not be read back`);
  return existing;
}

/** PREPARED → DISPATCHED or CANCELLED, once; false when the shipment is missing or already moved. */
async function moveShipment(orderId: string, to: 'DISPATCHED' | 'CANCELLED', now: Date): Promise<boolean> {
  try {
    await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.shipmentsTable(),
        Key: { orderId },
        ConditionExpression: '#status = :prepared',
        UpdateExpression: `SET #status = :to, ${to === 'DISPATCHED' ? 'dispatchedAt' : 'cancelledAt'} = :at`,
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':prepared': 'PREPARED', ':to': to, ':at': now.toISOString() },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

export function dispatchShipment(orderId: string, now: Date = new Date()): Promise<boolean> {
  return moveShipment(orderId, 'DISPATCHED', now);
}

export function cancelShipment(orderId: string, now: Date = new Date()): Promise<boolean> {
  return moveShipment(orderId, 'CANCELLED', now);
}

/** The shipping stage on OrderPlaced: prepare and hold the shipment, record, settle if last. */
export function prepareShipmentForOrder(event: OrderPlaced): Promise<StageCompletion> {
  return completeStage('shipping', event.orderId, async () => {
    const shipment = await prepareShipment(event.orderId, event.data.items, event.data.shippingAddress);
    return { status: 'SUCCEEDED', what: `prepared with ${shipment.carrier} (${shipment.trackingNumber})` };
  });
}

/** The shipping stage on OrderConfirmed: hand the held shipment to the carrier. */
export async function dispatchShipmentForOrder(event: OrderConfirmed): Promise<{ dispatched: boolean }> {
  const dispatched = await dispatchShipment(event.orderId);
  const shipment = await findShipment(event.orderId);
  // The timeline follows the shipment, not this call: a retry after a crash still records it.
  if (shipment?.status === 'DISPATCHED') {
    await appendStageTimelineOnce(event.orderId, 'shipping', 'dispatched');
  }
  return { dispatched };
}

/** The shipping stage on OrderCancelled: cancel a held shipment (compensation); nothing if none. */
export async function cancelShipmentForOrder(event: OrderCancelled): Promise<{ cancelled: boolean }> {
  const cancelled = await cancelShipment(event.orderId);
  const shipment = await findShipment(event.orderId);
  if (shipment?.status === 'CANCELLED') {
    const order = await loadOrder(event.orderId);
    if (order.stages.shipping.status !== 'PENDING') {
      await appendStageTimelineOnce(event.orderId, 'shipping', 'cancelled', 'COMPENSATED');
    }
  }
  return { cancelled };
}
