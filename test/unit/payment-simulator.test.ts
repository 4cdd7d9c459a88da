import { DynamoDBDocumentClient, GetCommand, UpdateCommand, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { SimulatedPaymentProvider, TransientProviderError } from '../../lib/payment-provider.js';

// The simulator's token rules, with its DynamoDB state kept in a map behind a mocked client. The
// same rules against the real local DynamoDB are in test/integration/lifecycle-saga.test.ts.
vi.hoisted(() => {
  process.env.PAYMENTS_TABLE = 'payments';
  process.env.AWS_REGION = 'us-east-1';
});

const documents = mockClient(DynamoDBDocumentClient);
const state = new Map<string, Record<string, unknown>>();
const keyOf = (key: Record<string, unknown> | undefined) => `${String(key?.orderId)}|${String(key?.entryId)}`;

/** Just enough of UpdateItem for the simulator's expressions: ADD a counter, SET if_not_exists, SET a value. */
function applyUpdate(input: UpdateCommandInput): Record<string, unknown> {
  const item = { ...(state.get(keyOf(input.Key)) ?? input.Key) } as Record<string, unknown>;
  const values = input.ExpressionAttributeValues ?? {};
  const expression = input.UpdateExpression ?? '';
  if (expression.includes('ADD attempts')) item.attempts = Number(item.attempts ?? 0) + Number(values[':one']);
  for (const [, field, placeholder] of expression.matchAll(/(\w+) = if_not_exists\(\w+, (:\w+)\)/g)) {
    if (field && placeholder) item[field] ??= values[placeholder];
  }
  for (const [, field, placeholder] of expression.matchAll(/(\w+) = (:\w+)/g)) {
    if (field && placeholder) item[field] = values[placeholder];
  }
  state.set(keyOf(input.Key), item);
  return item;
}

beforeEach(() => {
  state.clear();
  documents.reset();
  documents.on(UpdateCommand).callsFake((input: UpdateCommandInput) => ({ Attributes: applyUpdate(input) }));
  documents.on(GetCommand).callsFake((input: { Key?: Record<string, unknown> }) => ({ Item: state.get(keyOf(input.Key)) }));
});

describe('SimulatedPaymentProvider', () => {
  const simulator = new SimulatedPaymentProvider();

  it('tok_visa succeeds, and the same idempotency key always gives the same charge', async () => {
    const first = await simulator.charge({ idempotencyKey: 'ord_1', token: 'tok_visa', amount: 500 });
    const again = await simulator.charge({ idempotencyKey: 'ord_1', token: 'tok_visa', amount: 500 });
    const other = await simulator.charge({ idempotencyKey: 'ord_2', token: 'tok_visa', amount: 500 });
    expect(first).toMatchObject({ status: 'succeeded', chargeId: expect.stringMatching(/^ch_/) });
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
  });

  it('tok_decline is declined: an answer, not an error', async () => {
    await expect(simulator.charge({ idempotencyKey: 'ord_3', token: 'tok_decline' })).resolves.toEqual({
      status: 'declined',
      declineCode: 'card_declined',
    });
  });

  it('tok_flaky fails transiently on its first two attempts per key, then succeeds for good', async () => {
    const charge = () => simulator.charge({ idempotencyKey: 'ord_4', token: 'tok_flaky', amount: 100 });
    await expect(charge()).rejects.toBeInstanceOf(TransientProviderError);
    await expect(charge()).rejects.toBeInstanceOf(TransientProviderError);
    const third = await charge();
    expect(third.status).toBe('succeeded');
    await expect(charge()).resolves.toEqual(third);
    // Another key starts its own count.
    await expect(simulator.charge({ idempotencyKey: 'ord_5', token: 'tok_flaky' })).rejects.toBeInstanceOf(TransientProviderError);
  });

  it('stores nothing for an ordinary card, and only an attempt count for a flaky one', async () => {
    await simulator.charge({ idempotencyKey: 'ord_6', token: 'tok_visa' });
    expect([...state.keys()]).toEqual([]);
    await simulator.charge({ idempotencyKey: 'ord_6f', token: 'tok_flaky' }).catch(() => undefined);
    expect([...state.keys()]).toEqual(['ord_6f|SIMULATOR#ATTEMPTS']);
  });

  it('refunds a charge it made, with the same refund every time, and refuses an unknown charge', async () => {
    const charge = await simulator.charge({ idempotencyKey: 'ord_7', token: 'tok_visa', amount: 100 });
    if (charge.status !== 'succeeded') throw new Error('expected a charge');
    const refund = await simulator.refund({ idempotencyKey: 'ord_7', chargeId: charge.chargeId, amount: 100 });
    expect(refund).toEqual({ status: 'refunded', refundId: expect.stringMatching(/^re_[0-9a-f]{32}$/) });
    const again = await simulator.refund({ idempotencyKey: 'ord_7', chargeId: charge.chargeId, amount: 100 });
    expect(again).toEqual(refund);
    // A charge id it did not make under this key, or a key it charged nothing under: refused.
    await expect(simulator.refund({ idempotencyKey: 'ord_7', chargeId: 'ch_other' })).rejects.toThrow(/no charge/);
    await expect(simulator.refund({ idempotencyKey: 'ord_other', chargeId: charge.chargeId })).rejects.toThrow(/no charge/);
  });

  it('reports its storage failing as a transient provider error', async () => {
    documents.on(UpdateCommand).rejects(new Error('ProvisionedThroughputExceededException'));
    await expect(simulator.charge({ idempotencyKey: 'ord_8', token: 'tok_flaky' })).rejects.toBeInstanceOf(TransientProviderError);
  });
});
