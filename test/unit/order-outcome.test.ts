import { describe, expect, it } from 'vitest';
import { decideOutcome, outcomeEventOf } from '../../lib/order-outcome.js';
import type { Stage } from '../../lib/order.js';
import type { OrderRecord, StageState } from '../../lib/orders.js';

// The pure part of the decision: three stage states in, CONFIRMED / CANCELLED + reason / undecided out.

const pending: StageState = { status: 'PENDING', timeline: [] };
const succeeded = (at = '2030-01-01T00:00:01.000Z'): StageState => ({ status: 'SUCCEEDED', timeline: [{ at, what: 'done' }] });
const rejected = (reason: string, at = '2030-01-01T00:00:01.000Z'): StageState => ({
  status: 'REJECTED',
  reason,
  timeline: [{ at, what: `rejected: ${reason}` }],
});
const stages = (inventory: StageState, payment: StageState, shipping: StageState): Record<Stage, StageState> => ({
  inventory,
  payment,
  shipping,
});

describe('decideOutcome', () => {
  it('is undecided while any stage is pending, even after a rejection', () => {
    expect(decideOutcome(stages(pending, pending, pending))).toEqual({ outcome: 'UNDECIDED' });
    expect(decideOutcome(stages(succeeded(), succeeded(), pending))).toEqual({ outcome: 'UNDECIDED' });
    expect(decideOutcome(stages(rejected('OUT_OF_STOCK'), pending, succeeded()))).toEqual({ outcome: 'UNDECIDED' });
  });

  it('confirms when all three succeeded', () => {
    expect(decideOutcome(stages(succeeded(), succeeded(), succeeded()))).toEqual({ outcome: 'CONFIRMED' });
  });

  it('cancels with the reason of the only rejection', () => {
    expect(decideOutcome(stages(succeeded(), rejected('PAYMENT_DECLINED'), succeeded()))).toEqual({
      outcome: 'CANCELLED',
      reason: 'PAYMENT_DECLINED',
    });
    expect(decideOutcome(stages(rejected('OUT_OF_STOCK'), succeeded(), succeeded()))).toEqual({
      outcome: 'CANCELLED',
      reason: 'OUT_OF_STOCK',
    });
  });

  it('cancels with the earliest rejection when several stages rejected', () => {
    const decision = decideOutcome(
      stages(rejected('OUT_OF_STOCK', '2030-01-01T00:00:05.000Z'), rejected('PAYMENT_DECLINED', '2030-01-01T00:00:02.000Z'), succeeded()),
    );
    expect(decision).toEqual({ outcome: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
  });

  it('breaks a tie in time by stage order, so every stage computes the same decision', () => {
    const at = '2030-01-01T00:00:02.000Z';
    expect(decideOutcome(stages(rejected('OUT_OF_STOCK', at), rejected('PAYMENT_DECLINED', at), succeeded()))).toEqual({
      outcome: 'CANCELLED',
      reason: 'OUT_OF_STOCK',
    });
  });

  it('names the stage when a rejection carries a reason the event schema does not know', () => {
    expect(decideOutcome(stages(succeeded(), rejected('SOMETHING_ELSE'), succeeded()))).toEqual({
      outcome: 'CANCELLED',
      reason: 'PAYMENT_DECLINED',
    });
  });
});

describe('outcomeEventOf', () => {
  const base = {
    orderId: 'ord_1',
    updatedAt: '2030-01-01T00:00:09.000Z',
    decidedAt: '2030-01-01T00:00:08.000Z',
  } as OrderRecord;

  it('announces a confirmation with the deterministic event id and the decision time', () => {
    expect(outcomeEventOf({ ...base, status: 'CONFIRMED' })).toEqual({
      eventId: 'ord_1:OrderConfirmed',
      eventType: 'OrderConfirmed',
      orderId: 'ord_1',
      occurredAt: '2030-01-01T00:00:08.000Z',
      data: {},
    });
  });

  it('announces a cancellation with its reason, and nothing for a pending order', () => {
    expect(outcomeEventOf({ ...base, status: 'CANCELLED', reason: 'OUT_OF_STOCK' })).toMatchObject({
      eventId: 'ord_1:OrderCancelled',
      data: { reason: 'OUT_OF_STOCK' },
    });
    expect(outcomeEventOf({ ...base, status: 'PENDING' })).toBeUndefined();
  });
});
