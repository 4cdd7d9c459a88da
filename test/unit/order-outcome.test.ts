import { describe, expect, it } from 'vitest';
import { outcomeEventOf } from '../../lib/order-outcome.js';
import {
  decideOutcome,
  missingFollowUps,
  type OrderRecord,
  type ParticipantResults,
  type StoredOrder,
  toOrderRecord,
} from '../../lib/order-store.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The pure part of the decision: three write-once results in, CONFIRMED / CANCELLED + reason /
// undecided out, and the status every reader derives from them.

type Result = { outcome: 'SUCCEEDED' | 'REJECTED'; at: string };
const ok = (at = '2030-01-01T00:00:01.000Z'): Result => ({ outcome: 'SUCCEEDED', at });
const no = (at = '2030-01-01T00:00:01.000Z'): Result => ({ outcome: 'REJECTED', at });
const results = (inventory?: Result, payment?: Result, shipping?: Result): ParticipantResults => ({
  ...(inventory ? { inventory: { ...inventory, attempt: 'a1' } } : {}),
  ...(payment ? { payment } : {}),
  ...(shipping ? { shipping } : {}),
});

describe('decideOutcome', () => {
  it('is undecided while any result is missing, even after a rejection', () => {
    expect(decideOutcome(results())).toEqual({ outcome: 'UNDECIDED' });
    expect(decideOutcome(results(ok(), ok()))).toEqual({ outcome: 'UNDECIDED' });
    expect(decideOutcome(results(no(), undefined, ok()))).toEqual({ outcome: 'UNDECIDED' });
  });

  it('confirms when all three succeeded, decided by the latest result', () => {
    expect(decideOutcome(results(ok('2030-01-01T00:00:03.000Z'), ok('2030-01-01T00:00:01.000Z'), ok('2030-01-01T00:00:02.000Z')))).toEqual({
      outcome: 'CONFIRMED',
      decidedBy: 'inventory',
      decidedAt: '2030-01-01T00:00:03.000Z',
    });
  });

  it('cancels with the reason of the participant that rejected', () => {
    expect(decideOutcome(results(ok(), no(), ok()))).toMatchObject({ outcome: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    expect(decideOutcome(results(no(), ok(), ok()))).toMatchObject({ outcome: 'CANCELLED', reason: 'OUT_OF_STOCK' });
  });

  it('cancels with the earliest rejection when several rejected', () => {
    const decision = decideOutcome(results(no('2030-01-01T00:00:05.000Z'), no('2030-01-01T00:00:02.000Z'), ok()));
    expect(decision).toMatchObject({ outcome: 'CANCELLED', reason: 'PAYMENT_DECLINED', decidedAt: '2030-01-01T00:00:05.000Z' });
  });

  it('breaks a tie in time by participant order, so every reader computes the same decision', () => {
    const at = '2030-01-01T00:00:02.000Z';
    expect(decideOutcome(results(no(at), no(at), ok(at)))).toEqual({
      outcome: 'CANCELLED',
      reason: 'OUT_OF_STOCK',
      decidedBy: 'shipping',
      decidedAt: at,
    });
  });
});

describe('an order as read', () => {
  const stored: StoredOrder = {
    orderId: 'ord_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f',
    customerId: 'cus_1',
    items: [{ sku: 'SKU-MUG', quantity: 2 }],
    shippingAddress: { ...SAMPLE_ADDRESS },
    paymentTokenMasked: 'tok_…isa',
    createdAt: '2030-01-01T00:00:00.000Z',
  };

  it('is PENDING with every participant pending until results come in', () => {
    const order = toOrderRecord(stored);
    expect(order.status).toBe('PENDING');
    expect(Object.values(order.stages).map((s) => s.status)).toEqual(['PENDING', 'PENDING', 'PENDING']);
    expect(missingFollowUps(order)).toEqual([]);
  });

  it('is CONFIRMED with its dispatch missing, then finished once dispatched', () => {
    const confirmed = { ...stored, ...results(ok(), ok(), ok()), payment: { ...ok(), chargeId: 'ch_1', amount: 2000 } };
    expect(toOrderRecord(confirmed)).toMatchObject({ status: 'CONFIRMED', decidedAt: '2030-01-01T00:00:01.000Z' });
    expect(missingFollowUps(confirmed)).toEqual(['shipping:dispatched']);
    const dispatched = toOrderRecord({ ...confirmed, dispatchedAt: '2030-01-01T00:00:04.000Z' });
    expect(missingFollowUps(dispatched)).toEqual([]);
    expect(dispatched.stages.shipping.timeline.map((e) => e.what)).toEqual([expect.stringMatching(/^prepared with /), 'dispatched']);
    expect(dispatched.stages.payment.timeline[0]?.what).toBe('charged 20.00 USD (ch_1)');
    expect(dispatched.updatedAt).toBe('2030-01-01T00:00:04.000Z');
  });

  it('is CANCELLED and owes a compensation from each participant that had done its part', () => {
    const cancelled = { ...stored, ...results(ok(), no(), ok()) };
    expect(toOrderRecord(cancelled)).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    expect(missingFollowUps(cancelled)).toEqual(['inventory:released', 'shipping:cancelled']);
    const compensated = toOrderRecord({
      ...cancelled,
      release: { at: '2030-01-01T00:00:05.000Z', attempt: 'r1' },
      shipmentCancelledAt: '2030-01-01T00:00:06.000Z',
    });
    expect(missingFollowUps(compensated)).toEqual([]);
    expect([compensated.stages.inventory.status, compensated.stages.payment.status, compensated.stages.shipping.status]).toEqual([
      'COMPENSATED',
      'REJECTED',
      'COMPENSATED',
    ]);
  });

  it('rebuilds OrderPlaced exactly as published, so the sweep can send the same event again', () => {
    expect(toOrderRecord(stored).placedEvent).toEqual({
      eventId: `${stored.orderId}:OrderPlaced`,
      eventType: 'OrderPlaced',
      orderId: stored.orderId,
      occurredAt: stored.createdAt,
      data: { customerId: 'cus_1', items: stored.items, shippingAddress: stored.shippingAddress, shippingSpeed: 'standard' },
    });
    // An express order's item says so, and so does its event (the lane its events travel in).
    expect(toOrderRecord({ ...stored, shippingSpeed: 'express' }).placedEvent.data.shippingSpeed).toBe('express');
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
