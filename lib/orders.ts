import { createHash, randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import { type CancellationReason, eventIdOf, type OrderPlaced } from './events.js';
import {
  type OrderItem,
  type OrderRequest,
  type OrderStatus,
  type ShippingAddress,
  type Stage,
  maskToken,
} from './order.js';

export type StageStatus = 'PENDING' | 'SUCCEEDED' | 'REJECTED' | 'COMPENSATED';

export interface TimelineEntry {
  at: string;
  what: string;
}

export interface StageState {
  status: StageStatus;
  /** Why a stage was rejected, for example OUT_OF_STOCK. */
  reason?: string;
  timeline: TimelineEntry[];
}

/** The order item in the orders table: the order, each stage's state, and the outcome. */
export interface OrderRecord {
  orderId: string;
  status: OrderStatus;
  reason?: CancellationReason;
  customerId: string;
  items: OrderItem[];
  shippingAddress: ShippingAddress;
  paymentTokenMasked: string;
  createdAt: string;
  updatedAt: string;
  decidedAt?: string;
  /** The stage whose conditional write decided the order: the only one that publishes the outcome. */
  decidedBy?: Stage;
  /** Set after the outcome event was published; its absence on a decided order means "publish again". */
  outcomePublishedAt?: string;
  /** Hash of the request body, to tell a retry from a different order under the same key. */
  requestFingerprint: string;
  /**
   * The OrderPlaced event exactly as published, stored in the same write as the order: whatever
   * happens to the publish, the republisher can send the very same event (same eventId) again.
   */
  placedEvent: OrderPlaced;
  /** Present only while PENDING: the keys of the sparse PendingOrders index. */
  pendingShard?: 'PENDING';
  pendingSince?: string;
  stages: Record<Stage, StageState>;
}

export const PENDING_SHARD = 'PENDING';

/** The client's view of an order: no fingerprints, no stored event, no card token. */
export type OrderView = Pick<
  OrderRecord,
  'orderId' | 'status' | 'reason' | 'customerId' | 'items' | 'shippingAddress' | 'createdAt' | 'updatedAt' | 'decidedAt' | 'stages'
> & { payment: { token: string } };

export type CreateOrderResult =
  | { outcome: 'created'; order: OrderRecord }
  | { outcome: 'replayed'; order: OrderRecord }
  | { outcome: 'key-reused'; order: OrderRecord };

function fingerprint(request: OrderRequest): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('hex');
}

/**
 * With an Idempotency-Key the order id is derived from it (and the customer), so a retried POST
 * lands on the same item; without one every request is a new order.
 */
export function orderIdFor(customerId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `ord_${randomUUID().replaceAll('-', '')}`;
  const digest = createHash('sha256').update(`${customerId}\u0000${idempotencyKey}`).digest('hex');
  return `ord_${digest.slice(0, 32)}`;
}

/** Stores a new order as PENDING, or finds the order an earlier request with the same key made. */
export async function storeNewOrder(
  request: OrderRequest,
  idempotencyKey: string | undefined,
  now: Date = new Date(),
): Promise<CreateOrderResult> {
  const orderId = orderIdFor(request.customerId, idempotencyKey);
  const at = now.toISOString();
  const order: OrderRecord = {
    orderId,
    status: 'PENDING',
    customerId: request.customerId,
    items: request.items,
    shippingAddress: request.shippingAddress,
    paymentTokenMasked: maskToken(request.payment.token),
    createdAt: at,
    updatedAt: at,
    requestFingerprint: fingerprint(request),
    placedEvent: {
      eventId: eventIdOf(orderId, 'OrderPlaced'),
      eventType: 'OrderPlaced',
      orderId,
      occurredAt: at,
      data: {
        customerId: request.customerId,
        items: request.items,
        payment: request.payment,
        shippingAddress: request.shippingAddress,
      },
    },
    pendingShard: PENDING_SHARD,
    pendingSince: at,
    stages: {
      inventory: { status: 'PENDING', timeline: [] },
      payment: { status: 'PENDING', timeline: [] },
      shipping: { status: 'PENDING', timeline: [] },
    },
  };
  try {
    await dynamoDbDocumentClient().send(
      new PutCommand({
        TableName: config.ordersTable(),
        Item: order,
        ConditionExpression: 'attribute_not_exists(orderId)',
      }),
    );
    return { outcome: 'created', order };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
  const existing = await findOrder(orderId);
  if (!existing) throw new Error(`Order ${orderId} exists but could not be read back`);
  return existing.requestFingerprint === order.requestFingerprint
    ? { outcome: 'replayed', order: existing }
    : { outcome: 'key-reused', order: existing };
}

export async function findOrder(orderId: string): Promise<OrderRecord | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.ordersTable(), Key: { orderId }, ConsistentRead: true }),
  );
  return result.Item as OrderRecord | undefined;
}

export function toOrderView(order: OrderRecord): OrderView {
  return {
    orderId: order.orderId,
    status: order.status,
    ...(order.reason ? { reason: order.reason } : {}),
    customerId: order.customerId,
    items: order.items,
    shippingAddress: order.shippingAddress,
    payment: { token: order.paymentTokenMasked },
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
    ...(order.decidedAt ? { decidedAt: order.decidedAt } : {}),
    stages: order.stages,
  };
}
