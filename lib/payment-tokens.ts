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
// Taking the token marks it (`chargeStartedAt`) before the provider is called, and the customer's
// cancellation deletes it only while unmarked. So a token gone after a cancellation means no charge
// ever started, and a token left means one may have: its attempt may have died before recording it,
// and the next delivery asks the provider again under the same idempotency key, records the charge
// and has it refunded (lib/payments.ts). The mark is the durable fact; Powertools' record of the
// call is not one (it is deleted when the call fails, and expires).

export const PAYMENT_TOKEN_TTL_SECONDS = 14 * 24 * 60 * 60;

interface PaymentTokenItem {
  orderId: string;
  token: string;
  /** Epoch seconds: DynamoDB TTL deletes the item after this (within a day or two of it). */
  expiresAt: number;
  /** When a payment attempt first took the token to charge; from then on a charge may stand. */
  chargeStartedAt?: string;
}

/** The token, taken to charge: `startedBefore` when an earlier attempt had taken it already. */
export interface TakenPaymentToken {
  token: string;
  startedBefore: boolean;
}

export async function storePaymentToken(orderId: string, token: string, now: Date = new Date()): Promise<void> {
  const item: PaymentTokenItem = { orderId, token, expiresAt: Math.floor(now.getTime() / 1000) + PAYMENT_TOKEN_TTL_SECONDS };
  await dynamoDbDocumentClient().send(new PutCommand({ TableName: config.paymentTokensTable(), Item: item }));
}

/**
 * The order's card token, marked as taken for a charge (one conditional write, which also reads
 * it); undefined once it was used, forgotten by a cancellation, or expired.
 */
export async function takePaymentToken(orderId: string, now: Date = new Date()): Promise<TakenPaymentToken | undefined> {
  const written = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.paymentTokensTable(),
        Key: { orderId },
        ConditionExpression: 'attribute_exists(orderId)',
        UpdateExpression: 'SET chargeStartedAt = if_not_exists(chargeStartedAt, :now)',
        ExpressionAttributeValues: { ':now': now.toISOString() },
        // As it was: whether an earlier attempt had taken it is the mark's absence before this write.
        ReturnValues: 'ALL_OLD',
      }),
    ),
  );
  const item = written?.Attributes as PaymentTokenItem | undefined;
  // TTL deletes lazily: an expired item may still be read for a while.
  if (!item || item.expiresAt <= now.getTime() / 1000) return undefined;
  return { token: item.token, startedBefore: item.chargeStartedAt !== undefined };
}

/**
 * The customer's cancellation forgets the token unless a payment attempt has taken it: a charge
 * not started then never will be (an attempt that comes later finds no token). True when forgotten.
 */
export async function forgetUntakenPaymentToken(orderId: string): Promise<boolean> {
  const deleted = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new DeleteCommand({
        TableName: config.paymentTokensTable(),
        Key: { orderId },
        ConditionExpression: 'attribute_not_exists(chargeStartedAt)',
      }),
    ),
  );
  return deleted !== undefined;
}

/** Forgets the token once the charge is decided (charged or declined). Idempotent. */
export async function forgetPaymentToken(orderId: string): Promise<void> {
  await dynamoDbDocumentClient().send(new DeleteCommand({ TableName: config.paymentTokensTable(), Key: { orderId } }));
}
