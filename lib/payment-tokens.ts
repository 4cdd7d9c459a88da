import { DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';

// The card token travels in no event and is kept on no order. The order API puts it here, in a
// table only it may write and only the payment function may read (resources/roles.yml); the
// payment participant takes it to charge and deletes it as soon as the charge is decided. What is
// never used (an order whose payment never ran) expires with the table's TTL, after the longest
// an OrderPlaced event can wait in its queue (the queues' 14-day retention).
//
// Each payment delivery takes the token by counting itself in (`takes`, in the write that reads it)
// and gives its take back when its provider call certainly did not go out; the customer's
// cancellation deletes the token only while no take stands. So after a cancellation a token gone
// means no charge ever started, and a token left means one may have: its attempt may have died
// before recording it, and the next delivery asks the provider again under the same idempotency key,
// records the charge and has it refunded (lib/payments.ts). A delivery that took it first and then
// found the cancellation deletes it only if no other delivery took it since. The count, not
// Powertools' record of the call, is the fact that lasts: that record is deleted when a call fails,
// and expires. A taken token does not expire: a take removes its TTL attribute, and the give-back
// that leaves no take standing puts it back. So a token gone means forgotten, used by a recorded
// charge, or expired untaken, never that a charge which may stand lost the token that finds it.

export const PAYMENT_TOKEN_TTL_SECONDS = 14 * 24 * 60 * 60;

interface PaymentTokenItem {
  orderId: string;
  token: string;
  /** Epoch seconds: DynamoDB TTL deletes the item after this (within a day or two of it). Absent while taken. */
  expiresAt?: number;
  /** Payment deliveries that took the token and have not given it back: a charge may have started. */
  takes?: number;
}

/** The token, taken to charge: `take` counts this delivery's take; more than 1, earlier ones stand. */
export interface TakenPaymentToken {
  token: string;
  take: number;
}

export async function storePaymentToken(orderId: string, token: string, now: Date = new Date()): Promise<void> {
  const item: PaymentTokenItem = { orderId, token, expiresAt: Math.floor(now.getTime() / 1000) + PAYMENT_TOKEN_TTL_SECONDS };
  // Once: a slow retry of the same request must not reset the takes of a token already taken.
  await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new PutCommand({ TableName: config.paymentTokensTable(), Item: item, ConditionExpression: 'attribute_not_exists(orderId)' }),
    ),
  );
}

/**
 * The order's card token, taken for a charge (one conditional write, which also reads it, and
 * takes the TTL off: a charge may stand that only this token can ask the provider about);
 * undefined once it was used, forgotten by a cancellation, or expired untaken.
 */
export async function takePaymentToken(orderId: string, now: Date = new Date()): Promise<TakenPaymentToken | undefined> {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const written = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.paymentTokensTable(),
        Key: { orderId },
        // TTL deletes lazily: an expired untaken item may still be read for a while. (`takes` for a
        // token taken while takes still moved its TTL on, before 2026-11-27.)
        ConditionExpression: 'attribute_exists(orderId) AND (attribute_not_exists(expiresAt) OR expiresAt > :now OR takes > :zero)',
        UpdateExpression: 'REMOVE expiresAt ADD takes :one',
        ExpressionAttributeValues: { ':now': nowSeconds, ':zero': 0, ':one': 1 },
        ReturnValues: 'ALL_NEW',
      }),
    ),
  );
  const item = written?.Attributes as PaymentTokenItem | undefined;
  return item ? { token: item.token, take: item.takes ?? 1 } : undefined;
}

/**
 * Gives this delivery's take back: its provider call certainly did not go out (an open circuit, a
 * skip). The last take given back puts the TTL back on, 14 days from now; while another take
 * stands the token stays without one.
 */
export async function giveBackPaymentToken(orderId: string, now: Date = new Date()): Promise<void> {
  const later = Math.floor(now.getTime() / 1000) + PAYMENT_TOKEN_TTL_SECONDS;
  const giveBack = (condition: string, update: string, values: Record<string, number>) =>
    unlessConditionFails(() =>
      dynamoDbDocumentClient().send(
        new UpdateCommand({
          TableName: config.paymentTokensTable(),
          Key: { orderId },
          ConditionExpression: condition,
          UpdateExpression: update,
          ExpressionAttributeValues: { ':minusOne': -1, ':one': 1, ...values },
        }),
      ),
    );
  // Two conditional writes, not a read: whichever matches the count at that moment. Both refused:
  // no take stands (the token is gone), or the count moved between them: once more, a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await giveBack('takes = :one', 'SET expiresAt = :later ADD takes :minusOne', { ':later': later })) return;
    if (await giveBack('takes > :one', 'ADD takes :minusOne', {})) return;
  }
}

/**
 * The customer's cancellation forgets the token unless a payment delivery has taken it: a charge
 * not started then never will be (a delivery that comes later finds no token). True when forgotten.
 */
export async function forgetUntakenPaymentToken(orderId: string): Promise<boolean> {
  return forgetPaymentTokenIf(orderId, 'attribute_not_exists(takes) OR takes = :zero', { ':zero': 0 });
}

/**
 * A delivery that found the order cancelled, its take the only one standing: nothing was charged,
 * and the token goes (true). If another delivery took it since (that one may charge, then records
 * it and has it refunded), this delivery's take is given back instead (false).
 */
export async function forgetPaymentTokenOfSkippedCharge(orderId: string): Promise<boolean> {
  if (await forgetPaymentTokenIf(orderId, 'takes = :one', { ':one': 1 })) return true;
  await giveBackPaymentToken(orderId);
  return false;
}

async function forgetPaymentTokenIf(orderId: string, condition: string, values: Record<string, number>): Promise<boolean> {
  const deleted = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new DeleteCommand({
        TableName: config.paymentTokensTable(),
        Key: { orderId },
        ConditionExpression: condition,
        ExpressionAttributeValues: values,
      }),
    ),
  );
  return deleted !== undefined;
}

/** Forgets the token once the charge is decided (charged or declined). Idempotent. */
export async function forgetPaymentToken(orderId: string): Promise<void> {
  await dynamoDbDocumentClient().send(new DeleteCommand({ TableName: config.paymentTokensTable(), Key: { orderId } }));
}
