import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';
import { type CancellationReason, eventIdOf, type OrderPlaced } from './events.js';
import {
  type OrderItem,
  type OrderRequest,
  type OrderStatus,
  PARTICIPANTS,
  type Participant,
  type ShippingAddress,
  type ShippingSpeed,
  maskToken,
} from './order-schema.js';
import { storePaymentToken } from './payment-tokens.js';
import { shipmentLabelFor } from './shipment-label.js';

// One item per order in the orders table, written once by the order API and then only by small
// single-attribute updates: each saga participant sets its result once (`inventory`, `payment`,
// `shipping`), each follow-up sets its own attribute once (`dispatchedAt`, `release`, `refund`,
// `shipmentCancelledAt`). Nothing is rewritten and no event is stored: a single-line order stays
// under 1 KB, so every write costs one write unit (docs/dynamodb-costs.md). The status is not
// stored either: it is a function of the three write-once results (`decideOutcome`), so it cannot
// be decided twice, or differently.

/** What a participant recorded, once. `at` is when it was recorded. */
export interface InventoryResult {
  outcome: 'SUCCEEDED' | 'REJECTED';
  at: string;
  /** The attempt whose stock markers hold this result (lib/inventory.ts). */
  attempt: string;
  /** On a rejection: the SKU that was short. */
  shortSku?: string;
}

export interface PaymentResult {
  outcome: 'SUCCEEDED' | 'REJECTED';
  at: string;
  chargeId?: string;
  amount?: number;
  declineCode?: string;
}

export interface ShippingResult {
  outcome: 'SUCCEEDED' | 'REJECTED';
  at: string;
}

export interface ParticipantResults {
  inventory?: InventoryResult;
  payment?: PaymentResult;
  shipping?: ShippingResult;
}

/** The order item as read: its lines decoded (see StoredOrderItem for how DynamoDB holds them). */
export interface StoredOrder extends ParticipantResults {
  orderId: string;
  customerId: string;
  items: OrderItem[];
  shippingAddress: ShippingAddress;
  paymentTokenMasked: string;
  createdAt: string;
  /**
   * Only on an express order: a standard order's item stays as it was before the express lane, and
   * its size (one write unit a write: docs/dynamodb-costs.md) with it.
   */
  shippingSpeed?: 'express';
  /**
   * The customer's cancellation (POST /orders/{orderId}/cancel), written once, and only while the
   * parcel is not dispatched and no participant has rejected the order. It decides the order
   * CANCELLED whatever the results say, before or after them.
   */
  cancel?: { at: string };
  /** Follow-ups, each written once: a confirmed order's parcel handed over... */
  dispatchedAt?: string;
  /** ...or a cancelled order's compensations. */
  release?: { at: string; attempt: string };
  refund?: { at: string; refundId: string };
  shipmentCancelledAt?: string;
  /**
   * When the card token of a cancelled order was deleted with no charge made (by the cancellation,
   * or by a payment delivery that found it): nothing for the payment participant to settle. A
   * cancelled order with neither this nor a payment result may have a charge standing that only a
   * payment delivery can find (its attempt died holding the token): `payment:settled` is missing.
   */
  paymentTokenForgottenAt?: string;
  /** Set when the order API's publish of OrderPlaced failed: a replay of the request publishes again. */
  placedPublishFailedAt?: string;
  /**
   * Present only while the order is unfinished (undecided, or decided with a follow-up missing):
   * the keys of the sparse, sharded UnfinishedOrders index that the sweep reads. `sweepDueAt` is
   * when the sweep next looks at it; `sweepAttempts` how often it has acted.
   */
  sweepShard?: string;
  sweepDueAt?: string;
  sweepAttempts?: number;
}

/**
 * Lines whose JSON is longer than this are stored gzip-compressed, in `itemsGzip` instead of
 * `items`. DynamoDB bills every write by the whole item's size (1 WRU per KB, each result and
 * follow-up included) and refuses items over 400 KB: 5,000 lines of 64-character SKUs as a list
 * of maps are about 420 KB, and 222 KB compressed even when the SKUs are random (12 KB when they
 * share a pattern, as SKUs do). Below it, an order of a few dozen lines, the list stays as it is:
 * readable in the console, byte for byte what it always was, and a single-line order's item
 * stays under 1 KB (docs/dynamodb-costs.md).
 */
export const ITEMS_COMPRESSED_OVER_BYTES = 4 * 1024;

/** The order item as DynamoDB holds it: the lines as a list, or a large order's gzip-compressed JSON. */
export type StoredOrderItem = Omit<StoredOrder, 'items'> & ({ items: OrderItem[] } | { itemsGzip: Uint8Array });

/** What storeNewOrder writes: a small order as it is, a large one with its lines compressed. */
export function toStoredItem(order: StoredOrder): StoredOrderItem {
  const json = JSON.stringify(order.items);
  if (Buffer.byteLength(json) <= ITEMS_COMPRESSED_OVER_BYTES) return order;
  const { items: _lines, ...rest } = order;
  return { ...rest, itemsGzip: gzipSync(json, { level: 9 }) };
}

/** An order item as read from the table, its lines decoded whichever way they were stored. */
export function fromStoredItem(item: StoredOrder | StoredOrderItem): StoredOrder {
  if (!('itemsGzip' in item)) return item as StoredOrder;
  const { itemsGzip, ...rest } = item;
  return { ...rest, items: JSON.parse(gunzipSync(itemsGzip).toString('utf8')) as OrderItem[] };
}

export type StageStatus = 'PENDING' | 'SUCCEEDED' | 'REJECTED' | 'COMPENSATED';

export interface TimelineEntry {
  at: string;
  what: string;
}

export interface StageState {
  status: StageStatus;
  /** Why a participant rejected the order, for example OUT_OF_STOCK. */
  reason?: string;
  timeline: TimelineEntry[];
}

/** An order as read: the stored item and what follows from it (status, decision, timelines). */
export interface OrderRecord extends StoredOrder {
  status: OrderStatus;
  reason?: CancellationReason;
  /** When the last of the three results was recorded. */
  decidedAt?: string;
  /** Who decided: the participant whose result completed the order (the latest one), or the customer's cancellation. */
  decidedBy?: Participant | 'customer';
  updatedAt: string;
  placedEvent: OrderPlaced;
  stages: Record<Participant, StageState>;
}

export type Decision =
  | { outcome: 'UNDECIDED' }
  | { outcome: 'CONFIRMED'; decidedBy: Participant; decidedAt: string }
  | { outcome: 'CANCELLED'; reason: CancellationReason; decidedBy: Participant | 'customer'; decidedAt: string };

const REJECTION_REASONS: Record<Participant, CancellationReason> = {
  inventory: 'OUT_OF_STOCK',
  payment: 'PAYMENT_DECLINED',
  shipping: 'SHIPPING_UNAVAILABLE',
};

/**
 * The decision, a pure function of the three results and the customer's cancellation: CANCELLED
 * (CUSTOMER_CANCELLED) once the customer cancelled; otherwise undecided while a result is missing,
 * CONFIRMED when none was a rejection, and CANCELLED with the reason of the earliest rejection (by
 * recording time, ties broken by participant order). Whoever computes it gets the same answer.
 */
export function decideOutcome(results: ParticipantResults & Pick<StoredOrder, 'cancel'>): Decision {
  if (results.cancel) return { outcome: 'CANCELLED', reason: 'CUSTOMER_CANCELLED', decidedBy: 'customer', decidedAt: results.cancel.at };
  const recorded = PARTICIPANTS.map((participant, order) => ({ participant, order, result: results[participant] }));
  if (recorded.some((r) => r.result === undefined)) return { outcome: 'UNDECIDED' };
  const byTime = (a: { at: string; order: number }, b: { at: string; order: number }) =>
    a.at === b.at ? a.order - b.order : a.at < b.at ? -1 : 1;
  const all = recorded.map((r) => ({ ...r, at: r.result!.at }));
  const last = [...all].sort(byTime).at(-1)!;
  const rejections = all.filter((r) => r.result!.outcome === 'REJECTED').sort(byTime);
  const first = rejections[0];
  if (!first) return { outcome: 'CONFIRMED', decidedBy: last.participant, decidedAt: last.at };
  return { outcome: 'CANCELLED', reason: REJECTION_REASONS[first.participant], decidedBy: last.participant, decidedAt: last.at };
}

/**
 * The follow-ups a decided order still lacks, as `participant:entry`: a confirmed order's parcel
 * dispatched; a cancelled order's compensations, for each participant that had done its part
 * (reserved, charged, prepared), and its payment settled: a result recorded (then refunded if a
 * charge), or the card token known forgotten with no charge. Empty when the order is finished or undecided.
 */
export function missingFollowUps(order: Omit<StoredOrder, 'items'>): string[] {
  const decision = decideOutcome(order);
  const missing: string[] = [];
  if (decision.outcome === 'CONFIRMED' && !order.dispatchedAt) missing.push('shipping:dispatched');
  if (decision.outcome === 'CANCELLED') {
    if (order.inventory?.outcome === 'SUCCEEDED' && !order.release) missing.push('inventory:released');
    if (order.payment?.outcome === 'SUCCEEDED' && !order.refund) missing.push('payment:refunded');
    if (order.shipping?.outcome === 'SUCCEEDED' && !order.shipmentCancelledAt) missing.push('shipping:cancelled');
    if (!order.payment && !order.paymentTokenForgottenAt) missing.push('payment:settled');
  }
  return missing;
}

/**
 * OrderPlaced as the order API published it: rebuilt from the order item (same eventId, same
 * occurredAt), so that the sweep can publish the very same event again without storing it.
 */
export function placedEventOf(
  order: Pick<StoredOrder, 'orderId' | 'customerId' | 'items' | 'shippingAddress' | 'createdAt' | 'shippingSpeed'>,
): OrderPlaced {
  return {
    eventId: eventIdOf(order.orderId, 'OrderPlaced'),
    eventType: 'OrderPlaced',
    orderId: order.orderId,
    occurredAt: order.createdAt,
    data: {
      customerId: order.customerId,
      items: order.items,
      shippingAddress: order.shippingAddress,
      shippingSpeed: shippingSpeedOf(order),
    },
  };
}

/** An order's shipping speed: standard unless its item says express. */
export function shippingSpeedOf(order: Pick<StoredOrder, 'shippingSpeed'>): ShippingSpeed {
  return order.shippingSpeed === 'express' ? 'express' : 'standard';
}

function formatAmount(cents: number): string {
  return `${(cents / 100).toFixed(2)} USD`;
}

function unitsOf(items: OrderItem[]): number {
  return items.reduce((sum, item) => sum + item.quantity, 0);
}

/** Each participant's state and timeline, as GET /orders/{orderId} shows them. */
function stagesOf(order: StoredOrder): Record<Participant, StageState> {
  const state = (
    result: { outcome: 'SUCCEEDED' | 'REJECTED'; at: string } | undefined,
    done: string,
    rejected: string,
    reason: CancellationReason,
    followUps: Array<[string | undefined, string, boolean]>,
  ): StageState => {
    if (!result) return { status: 'PENDING', timeline: [] };
    const timeline: TimelineEntry[] = [{ at: result.at, what: result.outcome === 'SUCCEEDED' ? done : rejected }];
    let compensated = false;
    for (const [at, what, compensates] of followUps) {
      if (!at) continue;
      timeline.push({ at, what });
      compensated ||= compensates;
    }
    if (result.outcome === 'REJECTED') return { status: 'REJECTED', reason, timeline };
    return { status: compensated ? 'COMPENSATED' : 'SUCCEEDED', timeline };
  };
  const label = shipmentLabelFor(order.orderId);
  return {
    inventory: state(
      order.inventory,
      `reserved ${unitsOf(order.items)} unit(s) of ${order.items.length} SKU(s)`,
      `out of stock: ${order.inventory?.shortSku ?? 'unknown'}`,
      'OUT_OF_STOCK',
      [[order.release?.at, 'released', true]],
    ),
    payment: state(
      order.payment,
      `charged ${formatAmount(order.payment?.amount ?? 0)} (${order.payment?.chargeId ?? ''})`,
      `declined (${order.payment?.declineCode ?? 'unknown'})`,
      'PAYMENT_DECLINED',
      [[order.refund?.at, 'refunded', true]],
    ),
    shipping: state(order.shipping, `prepared with ${label.carrier} (${label.trackingNumber})`, 'unavailable', 'SHIPPING_UNAVAILABLE', [
      [order.dispatchedAt, 'dispatched', false],
      [order.shipmentCancelledAt, 'cancelled', true],
    ]),
  };
}

/**
 * The order as read: the stored item plus its status, decision and timelines. Takes the item as
 * the table returns it (a large order's lines compressed) or already decoded.
 */
export function toOrderRecord(item: StoredOrder | StoredOrderItem): OrderRecord {
  const stored = fromStoredItem(item);
  const decision = decideOutcome(stored);
  const times = [
    stored.createdAt,
    ...PARTICIPANTS.map((p) => stored[p]?.at),
    stored.dispatchedAt,
    stored.release?.at,
    stored.refund?.at,
    stored.shipmentCancelledAt,
    stored.cancel?.at,
  ].filter((at): at is string => typeof at === 'string');
  const record: OrderRecord = {
    ...stored,
    status: decision.outcome === 'UNDECIDED' ? 'PENDING' : decision.outcome,
    updatedAt: times.sort().at(-1)!,
    placedEvent: placedEventOf(stored),
    stages: stagesOf(stored),
  };
  if (decision.outcome !== 'UNDECIDED') {
    record.decidedAt = decision.decidedAt;
    record.decidedBy = decision.decidedBy;
    if (decision.outcome === 'CANCELLED') record.reason = decision.reason;
  }
  return record;
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

/** The client's view of an order: no index keys, only the masked card token. */
export type OrderView = Pick<
  OrderRecord,
  'orderId' | 'status' | 'reason' | 'customerId' | 'items' | 'shippingAddress' | 'createdAt' | 'updatedAt' | 'decidedAt' | 'stages'
> & { payment: { token: string }; shippingSpeed: ShippingSpeed };

export type CreateOrderResult =
  | { outcome: 'created'; order: OrderRecord }
  | { outcome: 'replayed'; order: OrderRecord }
  /** The caller used this Idempotency-Key for a different order body: the earlier order's id. */
  | { outcome: 'key-reused'; orderId: string };

/**
 * What a client sent, as one hash: tells a retry from a different order under the same key. An
 * explicit `"shippingSpeed": "standard"` is the default spelled out: the same order as without it.
 */
function fingerprint(request: OrderRequest): string {
  const { shippingSpeed, ...rest } = request;
  const canonical = shippingSpeed === 'express' ? request : rest;
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
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
  const stored = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new PutCommand({
        TableName: config.orderRequestsTable(),
        Item: item,
        // An expired record (TTL deletes lazily) no longer names an order.
        ConditionExpression: 'attribute_not_exists(requestKey) OR expiresAt < :now',
        ExpressionAttributeValues: { ':now': Math.floor(now.getTime() / 1000) },
      }),
    ),
  );
  if (stored) return { orderId: item.orderId, sameRequest: true };
  const { Item } = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.orderRequestsTable(), Key: { requestKey }, ConsistentRead: true }),
  );
  const existing = Item as OrderRequestItem | undefined;
  if (!existing) throw new Error('An order request record exists but could not be read back');
  return { orderId: existing.orderId, sameRequest: existing.requestFingerprint === requestFingerprint };
}

/**
 * Stores a new order (undecided) for the authenticated customer, or finds the order an earlier
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
  const order: StoredOrder = {
    orderId,
    customerId,
    items: request.items,
    shippingAddress: request.shippingAddress,
    paymentTokenMasked: maskToken(request.payment.token),
    createdAt: now.toISOString(),
    ...(request.shippingSpeed === 'express' ? { shippingSpeed: 'express' as const } : {}),
    sweepShard: sweepShardOf(orderId),
    sweepDueAt: secondsAfter(now, config.orderSweepAfterSeconds()),
    sweepAttempts: 0,
  };
  // The token first: an order whose payment participant runs always finds it.
  await storePaymentToken(orderId, request.payment.token, now);
  const stored = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new PutCommand({ TableName: config.ordersTable(), Item: toStoredItem(order), ConditionExpression: 'attribute_not_exists(orderId)' }),
    ),
  );
  if (stored) return { outcome: 'created', order: toOrderRecord(order) };
  // A concurrent retry with the same key stored it first.
  const existing = await findOrder(orderId);
  if (!existing) throw new Error(`Order ${orderId} exists but could not be read back`);
  return { outcome: 'replayed', order: existing };
}

/**
 * Reads an order. Strongly consistent by default; `consistent: false` (half the read cost) where a
 * stale answer only makes the caller take its slower, still correct path.
 */
export async function findOrder(orderId: string, options: { consistent?: boolean } = {}): Promise<OrderRecord | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.ordersTable(), Key: { orderId }, ConsistentRead: options.consistent ?? true }),
  );
  return result.Item ? toOrderRecord(result.Item as StoredOrderItem) : undefined;
}

export function toOrderView(order: OrderRecord): OrderView {
  return {
    orderId: order.orderId,
    status: order.status,
    ...(order.reason ? { reason: order.reason } : {}),
    customerId: order.customerId,
    items: order.items,
    shippingAddress: order.shippingAddress,
    shippingSpeed: shippingSpeedOf(order),
    payment: { token: order.paymentTokenMasked },
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
    ...(order.decidedAt ? { decidedAt: order.decidedAt } : {}),
    stages: order.stages,
  };
}
