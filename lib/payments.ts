import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import type { OrderCancelled, OrderPlaced } from './events.js';
import { maskToken, type OrderItem } from './order.js';
import { findPaymentToken, forgetPaymentToken } from './payment-tokens.js';
import { appendStageTimelineOnce, completeStage, loadOrder, type StageCompletion } from './order-outcome.js';
import {
  type GuardedPaymentProvider,
  type PaymentProvider,
  SimulatedPaymentProvider,
  withCircuitBreaker,
} from './payment-provider.js';

// The payments ledger: at most one CHARGE and one REFUND entry per order (conditional puts), and
// the order id as the provider's idempotency key, so a retry never charges or refunds twice.

/**
 * Orders carry no prices (the catalogue is out of scope for this reference app), so every unit is
 * charged one fixed price. A real shop would price lines from its catalogue when the order is placed.
 */
export const UNIT_PRICE_CENTS = 1_000;
export const CURRENCY = 'USD';

export interface ChargeEntry {
  orderId: string;
  entryId: 'CHARGE';
  chargeId: string;
  amount: number;
  currency: string;
  /** Never the whole token: see maskToken. */
  tokenMasked: string;
  at: string;
}

export interface RefundEntry {
  orderId: string;
  entryId: 'REFUND';
  refundId: string;
  chargeId: string;
  amount: number;
  currency: string;
  at: string;
}

export type ChargeResult =
  | { outcome: 'charged'; chargeId: string; amount: number }
  | { outcome: 'declined'; declineCode: string };

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

async function findLedgerEntry<T>(orderId: string, entryId: 'CHARGE' | 'REFUND'): Promise<T | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.paymentsTable(), Key: { orderId, entryId }, ConsistentRead: true }),
  );
  return result.Item as T | undefined;
}

export function findCharge(orderId: string): Promise<ChargeEntry | undefined> {
  return findLedgerEntry<ChargeEntry>(orderId, 'CHARGE');
}

export function findRefund(orderId: string): Promise<RefundEntry | undefined> {
  return findLedgerEntry<RefundEntry>(orderId, 'REFUND');
}

/** The ledger entries of one order (CHARGE, REFUND), without the simulator's own items. */
export async function ledgerOf(orderId: string): Promise<Array<ChargeEntry | RefundEntry>> {
  const result = await dynamoDbDocumentClient().send(
    new QueryCommand({
      TableName: config.paymentsTable(),
      KeyConditionExpression: 'orderId = :orderId',
      ExpressionAttributeValues: { ':orderId': orderId },
      ConsistentRead: true,
    }),
  );
  return (result.Items ?? []).filter((item) => item.entryId === 'CHARGE' || item.entryId === 'REFUND') as Array<
    ChargeEntry | RefundEntry
  >;
}

/** Puts a ledger entry unless one is already there; true when this call wrote it. */
async function putLedgerEntryOnce(entry: ChargeEntry | RefundEntry): Promise<boolean> {
  try {
    await dynamoDbDocumentClient().send(
      new PutCommand({
        TableName: config.paymentsTable(),
        Item: entry,
        ConditionExpression: 'attribute_not_exists(entryId)',
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/**
 * Charges an order once. A charge already in the ledger is the answer; otherwise the provider is
 * asked with the order id as idempotency key (so a crash after it charged and before the ledger
 * write gets the same charge back) and the charge is written to the ledger.
 * Transient provider faults and an open circuit throw: the record is retried.
 */
export async function chargePayment(
  orderId: string,
  token: string,
  items: OrderItem[],
  payments: PaymentProvider = paymentProvider(),
): Promise<ChargeResult> {
  const existing = await findCharge(orderId);
  if (existing) return { outcome: 'charged', chargeId: existing.chargeId, amount: existing.amount };
  const amount = amountOf(items);
  const outcome = await payments.charge({ idempotencyKey: orderId, token, amount, currency: CURRENCY });
  if (outcome.status === 'declined') return { outcome: 'declined', declineCode: outcome.declineCode };
  await putLedgerEntryOnce({
    orderId,
    entryId: 'CHARGE',
    chargeId: outcome.chargeId,
    amount,
    currency: CURRENCY,
    tokenMasked: maskToken(token),
    at: new Date().toISOString(),
  });
  return { outcome: 'charged', chargeId: outcome.chargeId, amount };
}

/** Refunds an order's charge once; nothing when there was no charge. */
export async function refundPayment(orderId: string, payments: PaymentProvider = paymentProvider()): Promise<RefundResult> {
  const charge = await findCharge(orderId);
  if (!charge) return { outcome: 'no-charge' };
  const existing = await findRefund(orderId);
  if (existing) return { outcome: 'already-refunded', refundId: existing.refundId };
  const refund = await payments.refund({ idempotencyKey: orderId, chargeId: charge.chargeId, amount: charge.amount });
  const wrote = await putLedgerEntryOnce({
    orderId,
    entryId: 'REFUND',
    refundId: refund.refundId,
    chargeId: charge.chargeId,
    amount: charge.amount,
    currency: charge.currency,
    at: new Date().toISOString(),
  });
  return wrote ? { outcome: 'refunded', refundId: refund.refundId } : { outcome: 'already-refunded', refundId: refund.refundId };
}

function formatAmount(cents: number): string {
  return `${(cents / 100).toFixed(2)} ${CURRENCY}`;
}

/**
 * The payment stage on OrderPlaced: charge with the token the order API left in the payment tokens
 * table, record the result, settle the order if it is the last stage, then forget the token (the
 * charge is decided: a retry or a late redelivery finds the stage recorded and needs no token).
 * A token already gone before any charge (expired, after an outage longer than its TTL) is a
 * decline: the order cannot be paid.
 */
export async function chargeForOrder(event: OrderPlaced): Promise<StageCompletion> {
  const completion = await completeStage('payment', event.orderId, async () => {
    const token = await findPaymentToken(event.orderId);
    if (token === undefined) {
      const earlier = await findCharge(event.orderId);
      if (!earlier) return { status: 'REJECTED', reason: 'PAYMENT_DECLINED', what: 'declined (payment details no longer held)' };
      return { status: 'SUCCEEDED', what: `charged ${formatAmount(earlier.amount)} (${earlier.chargeId})` };
    }
    const result = await chargePayment(event.orderId, token, event.data.items);
    return result.outcome === 'charged'
      ? { status: 'SUCCEEDED', what: `charged ${formatAmount(result.amount)} (${result.chargeId})` }
      : { status: 'REJECTED', reason: 'PAYMENT_DECLINED', what: `declined (${result.declineCode})` };
  });
  await forgetPaymentToken(event.orderId);
  return completion;
}

/** The payment stage on OrderCancelled: refund a standing charge (compensation). */
export async function refundForOrder(event: OrderCancelled): Promise<RefundResult> {
  const result = await refundPayment(event.orderId);
  if (result.outcome !== 'no-charge') {
    const order = await loadOrder(event.orderId);
    if (order.stages.payment.status === 'SUCCEEDED' || order.stages.payment.status === 'COMPENSATED') {
      await appendStageTimelineOnce(event.orderId, 'payment', 'refunded', 'COMPENSATED');
    }
  }
  return result;
}
