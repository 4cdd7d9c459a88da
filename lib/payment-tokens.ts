import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';

// The card token travels in no event and is kept on no order. The order API puts it here, in a
// table only it may write and only the payment function may read and delete (resources/roles.yml);
// the payment participant reads it to charge and deletes it as soon as the charge is decided. What is
// never used (an order whose payment never ran) expires with the table's TTL, after the longest
// an OrderPlaced event can wait in its queue (the queues' 14-day retention).

export const PAYMENT_TOKEN_TTL_SECONDS = 14 * 24 * 60 * 60;

interface PaymentTokenItem {
  orderId: string;
  token: string;
  /** Epoch seconds: DynamoDB TTL deletes the item after this (within a day or two of it). */
  expiresAt: number;
}

export async function storePaymentToken(orderId: string, token: string, now: Date = new Date()): Promise<void> {
  const item: PaymentTokenItem = { orderId, token, expiresAt: Math.floor(now.getTime() / 1000) + PAYMENT_TOKEN_TTL_SECONDS };
  await dynamoDbDocumentClient().send(new PutCommand({ TableName: config.paymentTokensTable(), Item: item }));
}

/** The order's card token, or undefined once it was used (or expired). */
export async function findPaymentToken(orderId: string, now: Date = new Date()): Promise<string | undefined> {
  const { Item } = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.paymentTokensTable(), Key: { orderId }, ConsistentRead: true }),
  );
  const item = Item as PaymentTokenItem | undefined;
  // TTL deletes lazily: an expired item may still be read for a while.
  return item && item.expiresAt > now.getTime() / 1000 ? item.token : undefined;
}

/** Forgets the token once the charge is decided (charged or declined). Idempotent. */
export async function forgetPaymentToken(orderId: string): Promise<void> {
  await dynamoDbDocumentClient().send(new DeleteCommand({ TableName: config.paymentTokensTable(), Key: { orderId } }));
}
