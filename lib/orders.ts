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
    sweepShard: sweepShardOf(orderId),
    sweepDueAt: secondsAfter(now, config.orderSweepAfterSeconds()),
    sweepAttempts: 0,
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
