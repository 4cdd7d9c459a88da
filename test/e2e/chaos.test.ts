import { describe, expect, it } from 'vitest';
import { formatChaosReport, runChaos } from '../../local/chaos.js';

// A small `npm run chaos` (local/chaos.ts): 200 orders through the local pipeline with faults in
// every consumer (10% transient record errors, 1% crashed and 1% timed-out invocations, 5% of
// records delivered twice, 1% of order publishes failing), and poison on every stage queue. Every
// order must end decided, every DLQ hold exactly its poison, every charge and unit of stock add up.

describe('chaos: nothing is lost', () => {
  it('accounts for every order, charge, unit of stock and dead letter', { timeout: 240_000 }, async () => {
    const seed = Number(process.env.CHAOS_SEED ?? 7);
    const result = await runChaos({ orders: 200, seed, concurrency: 16, maxWaitSeconds: 150 });
    const report = formatChaosReport(result);
    console.log(report);
    for (const check of result.checks) expect(check.ok, `${check.name}: ${check.detail}`).toBe(true);
    expect(result.final.orders).toMatchObject({ placed: 200, PENDING: 0 });
    expect(result.final.orders.CONFIRMED + result.final.orders.CANCELLED).toBe(200);
    // The mix produces both outcomes, and the scarce SKU runs out.
    expect(result.final.orders.CANCELLED).toBeGreaterThan(0);
    expect(result.stock.some((s) => s.available === 0)).toBe(true);
    // Poison on each queue reached its DLQ: an invalid body never crashed a batch for good.
    for (const dlq of result.final.dlqs) expect(dlq.poison).toBe(3);
    expect(result.duplicates.deliberate).toBeGreaterThan(0);
    expect(result.duplicates.idempotencyHits).toBeGreaterThan(0);
  });
});
