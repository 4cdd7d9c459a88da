import { IdempotencyAlreadyInProgressError, IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { dynamoDbClient } from './aws-clients.js';
import { config } from './config.js';
import type { OrderCancelled, OrderPlaced } from './events.js';
import type { OrderItem } from './order-schema.js';
import {
  completeParticipant,
  isLastFollowUp,
  loadOrder,
  type ParticipantCompletion,
  recordFollowUp,
  recordPaymentTokenForgotten,
  skippedForCancellation,
} from './order-outcome.js';
import { findOrder, missingFollowUps, type OrderRecord, type PaymentResult, placedEventOf } from './order-store.js';
import { forgetPaymentToken, forgetPaymentTokenOfSkippedCharge, giveBackPaymentToken, takePaymentToken } from './payment-tokens.js';
import {
  CircuitOpenError,
  type ChargeOutcome,
  type ChargeRequest,
  type GuardedPaymentProvider,
  type PaymentProvider,
  type RefundOutcome,
  type RefundRequest,
  SimulatedPaymentProvider,
  withCircuitBreaker,
} from './payment-provider.js';

// The payment participant. The provider call is the one side effect in the saga that is not
// idempotent by a condition of ours: it happens outside DynamoDB. So it is guarded twice: the
// order id is the provider's idempotency key (a provider answers a repeated key with the first
// charge), and Powertools idempotency keeps a second delivery, or a concurrent one, from calling
// the provider at all while the first call is in flight or after it answered (its record holds the
// answer for 24 hours). The result is recorded on the order; the token is deleted once it is. The
// token is taken before the call (lib/payment-tokens.ts), so that a cancellation never forgets the
// token of a charge that may stand.

/**
 * Orders carry no prices (the catalogue is out of scope for this reference app), so every unit is
 * charged one fixed price. A real shop would price lines from its catalogue when the order is placed.
 */
export const UNIT_PRICE_CENTS = 1_000;
export const CURRENCY = 'USD';

export type RefundResult =
  | { outcome: 'refunded'; refundId: string }
  | { outcome: 'already-refunded'; refundId: string }
  | { outcome: 'no-charge' };

export function amountOf(items: OrderItem[]): number {
  return items.reduce((sum, item) => sum + item.quantity * UNIT_PRICE_CENTS, 0);
}

/** Five transient failures in a row open the circuit for ten seconds (inside the queue's retry window). */
export const PROVIDER_CIRCUIT = { failureThreshold: 5, coolDownMs: 10_000 } as const;

// One guarded provider per execution environment, so its breaker sees every call made here.
let provider: GuardedPaymentProvider | undefined;
export function paymentProvider(): GuardedPaymentProvider {
  provider ??= withCircuitBreaker(new SimulatedPaymentProvider(), PROVIDER_CIRCUIT);
  return provider;
}

/**
 * The Powertools idempotency configuration of the provider calls. The queue consumer registers the
 * Lambda context with it, so that an INPROGRESS record of an invocation that died expires with it.
 */
export const providerCallIdempotency = new IdempotencyConfig({
  eventKeyJmesPath: 'idempotencyKey',
  expiresAfterSeconds: 24 * 60 * 60,
});

const providerCallRecords = () => new DynamoDBPersistenceLayer({ tableName: config.idempotencyTable(), awsSdkV3Client: dynamoDbClient() });

type Guarded = { charge: (request: ChargeRequest) => Promise<ChargeOutcome>; refund: (request: RefundRequest) => Promise<RefundOutcome> };
const guards = new WeakMap<PaymentProvider, Guarded>();

/** The provider's calls, each made at most once per idempotency key (Powertools idempotency on DynamoDB). */
export function onceEach(payments: PaymentProvider): Guarded {
  let guarded = guards.get(payments);
  if (!guarded) {
    // One persistence layer per operation: a layer holds its key prefix as state, set by each call,
    // so a charge and a refund sharing one (two records of a batch) would store each other's results
    // under the wrong key, and a refund be answered with its order's charge.
    guarded = {
      charge: makeIdempotent((request: ChargeRequest) => payments.charge(request), {
        persistenceStore: providerCallRecords(),
        config: providerCallIdempotency,
        keyPrefix: 'payment-charge',
      }),
      refund: makeIdempotent((request: RefundRequest) => payments.refund(request), {
        persistenceStore: providerCallRecords(),
        config: providerCallIdempotency,
        keyPrefix: 'payment-refund',
      }),
    };
    guards.set(payments, guarded);
  }
  return guarded;
}

/**
 * Charges an order once and says what to record. Transient provider faults and an open circuit
 * throw: the record is retried.
 */
export async function chargePayment(
  orderId: string,
  token: string,
  items: OrderItem[],
  payments: PaymentProvider = paymentProvider(),
): Promise<PaymentResult> {
  const amount = amountOf(items);
  const outcome = await onceEach(payments).charge({ idempotencyKey: orderId, token, amount, currency: CURRENCY });
  const at = new Date().toISOString();
  return outcome.status === 'succeeded'
    ? { outcome: 'SUCCEEDED', at, chargeId: outcome.chargeId, amount }
    : { outcome: 'REJECTED', at, declineCode: outcome.declineCode };
}

/**
 * The payment participant on OrderPlaced: charge with the token the order API left in the payment
 * tokens table, record the result, then forget the token (the charge is decided: a redelivery finds
 * the result recorded and needs no token). A token gone with no result recorded (expired untaken,
 * after an outage longer than its TTL) is a decline: the order cannot be paid.
 */
export async function chargeForOrder(
  event: OrderPlaced,
  payments: PaymentProvider = paymentProvider(),
  /** The order, read strongly by the caller (OrderCancelled's settling): no read of its own then. */
  order?: OrderRecord,
): Promise<ParticipantCompletion> {
  // The token, taken for a charge, and the order side by side (no added latency). The order, read
  // eventually consistently for half a unit, keeps a redelivery from reaching the provider and a
  // cancelled order from being charged; a stale read only means a charge that the cancellation then
  // refunds (the cancellation cannot forget a token taken meanwhile).
  const [taken, seen] = await Promise.all([takePaymentToken(event.orderId), order ?? findOrder(event.orderId, { consistent: false })]);
  // No token: used already, expired untaken, or forgotten by a cancellation before any take; the order says which.
  const known: OrderRecord | undefined = taken === undefined ? await loadOrder(event.orderId) : seen;
  const cancelledWhileHeld = taken !== undefined && known?.cancel !== undefined && known.payment === undefined;
  if (cancelledWhileHeld && taken.take === 1) {
    // Cancelled, and no other delivery's take stands: none charged. The token goes, unless a
    // delivery took it since (that one may charge, and then records it and has it refunded).
    if (await forgetPaymentTokenOfSkippedCharge(event.orderId)) await recordPaymentTokenForgotten(event.orderId);
    return skippedForCancellation(known, 'payment');
  }
  if (taken === undefined && known?.cancel !== undefined && known.payment === undefined && !known.paymentTokenForgottenAt) {
    // Cancelled, the token gone and no charge recorded: forgotten untaken (or by a skip like the one
    // above), or expired untaken; never used, as a charge is recorded before its token is deleted
    // and a taken token does not expire. Settled.
    await recordPaymentTokenForgotten(event.orderId);
  }
  // Cancelled while an earlier delivery's take stands (its charge may stand unrecorded, its attempt
  // dead): the same call again, under the same idempotency key, which the provider answers with that
  // charge (or makes now, if that attempt died before calling); recorded, it is refunded as any
  // charge recorded after a cancellation. So no skip for a cancellation while the token is held: the
  // order is not passed on, and the result's own condition (written once) still holds.
  const completion = await completeParticipant(
    'payment',
    event.orderId,
    async () => {
      if (taken === undefined) return { outcome: 'REJECTED', at: new Date().toISOString(), declineCode: 'payment details no longer held' };
      try {
        return await chargePayment(event.orderId, taken.token, event.data.items, payments);
      } catch (error) {
        // An open circuit, or another delivery's call in flight under the same key: this one never
        // called the provider. Its take is given back, so that a cancellation meanwhile can still
        // forget the token instead of a charge and its refund.
        if (error instanceof CircuitOpenError || error instanceof IdempotencyAlreadyInProgressError)
          await giveBackPaymentToken(event.orderId);
        throw error;
      }
    },
    cancelledWhileHeld ? undefined : known,
  );
  if (taken !== undefined) await forgetPaymentToken(event.orderId);
  return completion;
}

/** Refunds a cancelled order's charge once; nothing when there was no charge. */
export async function refundPayment(order: OrderRecord, payments: PaymentProvider = paymentProvider()): Promise<RefundResult> {
  const charge = order.payment;
  if (order.status !== 'CANCELLED' || charge?.outcome !== 'SUCCEEDED' || !charge.chargeId) return { outcome: 'no-charge' };
  if (order.refund) return { outcome: 'already-refunded', refundId: order.refund.refundId };
  const refund = await onceEach(payments).refund({ idempotencyKey: order.orderId, chargeId: charge.chargeId, amount: charge.amount });
  const written = await recordFollowUp(
    order.orderId,
    'refund',
    { at: new Date().toISOString(), refundId: refund.refundId },
    { requiresSucceeded: ['payment'], last: isLastFollowUp(order, 'payment:refunded') },
  );
  return written ? { outcome: 'refunded', refundId: refund.refundId } : { outcome: 'already-refunded', refundId: refund.refundId };
}

/**
 * The payment participant on OrderCancelled: refund a standing charge (compensation). A cancelled
 * order whose payment is not settled (no result, its card token not known forgotten: a delivery
 * holds it, perhaps one that charged and died) is settled first, as its OrderPlaced would be: the
 * charge such a delivery may have made is found under the same idempotency key and recorded, or the
 * token is forgotten. So the sweep, which publishes OrderCancelled again while the order lacks it,
 * settles it too, whether or not the payment OrderPlaced ever comes back from a DLQ.
 */
export async function refundForOrder(event: OrderCancelled, payments: PaymentProvider = paymentProvider()): Promise<RefundResult> {
  let order = await loadOrder(event.orderId);
  if (missingFollowUps(order).includes('payment:settled')) {
    // Known cancelled (read strongly): the settling charges only where a take stands, and deletes
    // the token it took once the charge is recorded.
    await chargeForOrder(placedEventOf(order), payments, order);
    order = await loadOrder(event.orderId);
  } else if (order.cancel && order.payment?.outcome === 'SUCCEEDED' && !order.refund) {
    // A charge recorded on a cancelled order and not yet refunded: its token goes first, in case the
    // delivery that recorded it failed before deleting it (a taken token does not expire).
    await forgetPaymentToken(event.orderId);
  }
  return refundPayment(order, payments);
}
