import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import { storePaymentToken } from './payment-tokens.js';
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
  /**
   * The OrderPlaced event exactly as published, stored in the same write as the order: whatever
   * happens to the publish, the republisher can send the very same event (same eventId) again.
   */
  placedEvent: OrderPlaced;
  /** Set when the order API's publish of OrderPlaced failed: a replay of the request publishes again. */
  placedPublishFailedAt?: string;
  /**
   * Present only while the order is unfinished (PENDING, or decided with its outcome unpublished or
   * a follow-up missing): the keys of the sparse, sharded UnfinishedOrders index that the sweep
   * reads. `sweepDueAt` is when the sweep next looks at it; `sweepAttempts` how often it has acted.
   */
  sweepShard?: string;
  sweepDueAt?: string;
  sweepAttempts?: number;
  stages: Record<Stage, StageState>;
}

/**
 * Partitions of the UnfinishedOrders index. One value would put every unfinished order's index
 * write on one partition (a hot key at a few hundred orders a second); the sweep reads them all.
 */
export const SWEEP_SHARDS = 8;

/** The index partition of an order: stable, and spread evenly by the random part of the id. */
export function sweepShardOf(orderId: string): string {
  const digest = createHash('sha256').update(orderId).digest();
  return `S${digest.readUInt16BE(0) % SWEEP_SHARDS}`;
}

export function secondsAfter(at: Date, seconds: number): string {
  return new Date(at.getTime() + seconds * 1000).toISOString();
}

/**
 * The follow-ups a decided order still lacks, as `stage:entry`: a confirmed order's stock
 * committed and parcel dispatched; a cancelled order's compensations, for each stage that had
 * done its part (reserved, charged, prepared). Empty when the order is finished.
 */
export function missingFollowUps(order: Pick<OrderRecord, 'status' | 'stages'>): string[] {
  const needed: Array<[Stage, string]> = [];
  if (order.status === 'CONFIRMED') needed.push(['inventory', 'committed'], ['shipping', 'dispatched']);
  if (order.status === 'CANCELLED') {
    const didItsPart = (stage: Stage) => ['SUCCEEDED', 'COMPENSATED'].includes(order.stages[stage].status);
    if (didItsPart('inventory')) needed.push(['inventory', 'released']);
    if (didItsPart('payment')) needed.push(['payment', 'refunded']);
    if (didItsPart('shipping')) needed.push(['shipping', 'cancelled']);
  }
  return needed
    .filter(([stage, what]) => !order.stages[stage].timeline.some((entry) => entry.what === what))
    .map(([stage, what]) => `${stage}:${what}`);
}

/** The client's view of an order: no stored event, no index keys, only the masked card token. */
export type OrderView = Pick<
  OrderRecord,
  'orderId' | 'status' | 'reason' | 'customerId' | 'items' | 'shippingAddress' | 'createdAt' | 'updatedAt' | 'decidedAt' | 'stages'
> & { payment: { token: string } };

export type CreateOrderResult =
  | { outcome: 'created'; order: OrderRecord }
  | { outcome: 'replayed'; order: OrderRecord }
  /** The caller used this Idempotency-Key for a different order body: the earlier order's id. */
  | { outcome: 'key-reused'; orderId: string };

/** What a client sent, as one hash: tells a retry from a different order under the same key. */
function fingerprint(request: OrderRequest): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('hex');
}

/** A fresh order id: random and time-ordered (UUIDv7), so nobody can derive one from what they know. */
export function newOrderId(): string {
  return `ord_${uuidv7().replaceAll('-', '')}`;
}

/** How long an Idempotency-Key names the order it made; after that it may make a new one. */
export const ORDER_REQUEST_TTL_SECONDS = 24 * 60 * 60;

interface OrderRequestItem {
  /** sha256 of the customer and the key: keys are the caller's own, two customers never share one. */
  requestKey: string;
  orderId: string;
  customerId: string;
  requestFingerprint: string;
  createdAt: string;
  expiresAt: number;
}

/**
 * Which order a (customer, Idempotency-Key) pair names: the first request records a new order id
 * under the pair (one conditional write); a later one reads it back.
 */
async function orderIdForRequest(
  customerId: string,
  idempotencyKey: string,
  requestFingerprint: string,
  now: Date,
): Promise<{ orderId: string; sameRequest: boolean }> {
  const requestKey = createHash('sha256').update(`${customerId}\u0000${idempotencyKey}`).digest('hex');
  const item: OrderRequestItem = {
    requestKey,
    orderId: newOrderId(),
    customerId,
    requestFingerprint,
    createdAt: now.toISOString(),
    expiresAt: Math.floor(now.getTime() / 1000) + ORDER_REQUEST_TTL_SECONDS,
  };
  try {
    await dynamoDbDocumentClient().send(
      new PutCommand({
        TableName: config.orderRequestsTable(),
        Item: item,
        // An expired record (TTL deletes lazily) no longer names an order.
        ConditionExpression: 'attribute_not_exists(requestKey) OR expiresAt < :now',
        ExpressionAttributeValues: { ':now': Math.floor(now.getTime() / 1000) },
      }),
    );
    return { orderId: item.orderId, sameRequest: true };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
  const { Item } = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.orderRequestsTable(), Key: { requestKey }, ConsistentRead: true }),
  );
  const existing = Item as OrderRequestItem | undefined;
  if (!existing) throw new Error('An order request record exists but could not be read back');
  return { orderId: existing.orderId, sameRequest: existing.requestFingerprint === requestFingerprint };
}

/**
 * Stores a new order as PENDING for the authenticated customer, or finds the order an earlier
 * request with the same Idempotency-Key made. The card token goes to the payment tokens table,
 * never onto the order or into an event.
 */
export async function storeNewOrder(
  customerId: string,
  request: OrderRequest,
  idempotencyKey: string | undefined,
  now: Date = new Date(),
): Promise<CreateOrderResult> {
  let orderId = newOrderId();
  if (idempotencyKey !== undefined) {
    const named = await orderIdForRequest(customerId, idempotencyKey, fingerprint(request), now);
    if (!named.sameRequest) return { outcome: 'key-reused', orderId: named.orderId };
    orderId = named.orderId;
    // A retry: the order is there, unless the first request died between the two writes.
    const existing = await findOrder(orderId);
    if (existing) return { outcome: 'replayed', order: existing };
  }
  const at = now.toISOString();
  const order: OrderRecord = {
    orderId,
    status: 'PENDING',
    customerId,
    items: request.items,
    shippingAddress: request.shippingAddress,
    paymentTokenMasked: maskToken(request.payment.token),
    createdAt: at,
    updatedAt: at,
    placedEvent: {
      eventId: eventIdOf(orderId, 'OrderPlaced'),
      eventType: 'OrderPlaced',
      orderId,
      occurredAt: at,
      data: { customerId, items: request.items, shippingAddress: request.shippingAddress },
    },
    sweepShard: sweepShardOf(orderId),
    sweepDueAt: secondsAfter(now, config.orderSweepAfterSeconds()),
    sweepAttempts: 0,
    stages: {
      inventory: { status: 'PENDING', timeline: [] },
      payment: { status: 'PENDING', timeline: [] },
      shipping: { status: 'PENDING', timeline: [] },
    },
  };
  // The token first: an order whose payment stage runs always finds it.
  await storePaymentToken(orderId, request.payment.token, now);
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
  // A concurrent retry with the same key stored it first.
  const existing = await findOrder(orderId);
  if (!existing) throw new Error(`Order ${orderId} exists but could not be read back`);
  return { outcome: 'replayed', order: existing };
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
