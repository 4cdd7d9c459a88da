import { describe, expect, it } from 'vitest';
import { formatChaosReport, runChaos } from '../../local/chaos.js';

// A small `npm run chaos` (local/chaos.ts): 150 orders through the local pipeline with faults in
// every consumer (10% transient record errors, 3% crashed and 3% timed-out invocations, 5% of
// records delivered twice, 1% of order publishes failing), poison on every consumer queue, and two
// outages from mid-run: the payment provider (every charge and refund fails) for longer than a
// record's whole retry budget, and the topic (every publish fails). The pipeline must heal by
// itself: every invariant holds before any redrive, and the redrive afterwards changes nothing.

describe('chaos: nothing is lost, and the pipeline heals itself', () => {
  it('accounts for every order, charge, unit of stock, shipment and dead letter before and after the redrive', {
    timeout: 360_000,
  }, async () => {
    const seed = Number(process.env.CHAOS_SEED ?? 7);
    const result = await runChaos({
      orders: 150,
      seed,
      concurrency: 16,
      // 3%, not the command's 1%: with about 300 invocations in a run this short, 1% leaves a few
      // per cent of runs with no timeout at all, and a fault that never fired proves nothing.
      crashRate: 0.03,
      timeoutRate: 0.03,
      providerOutageSeconds: 30,
      topicOutageSeconds: 8,
      // The sweep every 5 s, so that the test heals in about a minute after the outage.
      sweepsPerMinute: 12,
      maxWaitSeconds: 200,
    });
    const report = formatChaosReport(result);
    console.log(report);
    for (const check of result.checks) expect(check.ok, `${check.name}: ${check.detail}`).toBe(true);
    expect(result.beforeRedrive.orders).toMatchObject({ placed: 150, PENDING: 0 });
    expect(result.beforeRedrive.orders.CONFIRMED + result.beforeRedrive.orders.CANCELLED).toBe(150);
    // The mix produces both outcomes, and the scarce SKU runs out.
    expect(result.beforeRedrive.orders.CANCELLED).toBeGreaterThan(0);
    expect(result.final.stock.some((s) => s.available === 0)).toBe(true);
    // The outages really bit: events ran out of receives into the DLQs, and the sweep, not the
    // redrive, finished those orders.
    expect(result.outages.provider).toBeDefined();
    expect(result.outages.topic).toBeDefined();
    expect(result.beforeRedrive.dlqs.reduce((sum, dlq) => sum + dlq.realEvents.length, 0)).toBeGreaterThan(0);
    expect(result.sweep.republished).toBeGreaterThan(0);
    // The consumers' faults fired too: crashes, timeouts, failed records, and 503s from the API.
    expect(result.faultsFired.crashedInvocations).toBeGreaterThan(0);
    expect(result.faultsFired.timedOutInvocations).toBeGreaterThan(0);
    expect(result.faultsFired.failedRecords).toBeGreaterThan(0);
    expect(result.faultsFired.publish503s).toBeGreaterThan(0);
    expect(result.redriven).toBeGreaterThan(0);
    // Poison on each queue reached its DLQ: an invalid body never crashed a batch for good.
    for (const dlq of result.final.dlqs) expect(dlq.poison).toBe(3);
    expect(result.duplicates.deliberate).toBeGreaterThan(0);
    expect(result.duplicates.idempotencyHits).toBeGreaterThan(0);
  });
});
