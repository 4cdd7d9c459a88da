import { describe, expect, it } from 'vitest';
import { runBacklogBenchmark } from '../../bench/backlog.js';
import { formatBacklog } from '../../bench/report.js';

// `npm run bench -- --backlog` through the module, with small counts: the three phases side by
// side, every order decided in each, and the ratios printed against the goals. Speed is not
// checked (the machine is shared): whether a goal is met is the bench's to say, not this test's.

describe('npm run bench --backlog', () => {
  it('runs express alone, standard alone and the backlog, decides every order, and prints the ratios against the goals', async () => {
    const result = await runBacklogBenchmark({ standardOrders: 60, expressOrders: 6, postConcurrency: 16 });

    expect(result.phases.map((phase) => [phase.name, Boolean(phase.express), Boolean(phase.standard)])).toEqual([
      ['express alone', true, false],
      ['standard alone', false, true],
      ['backlog', true, true],
    ]);
    for (const phase of result.phases) {
      for (const lane of [phase.express, phase.standard]) {
        if (!lane) continue;
        expect(lane.decided, phase.name).toBe(lane.orders);
        expect(lane.ordersPerSecond, phase.name).toBeGreaterThan(0);
        expect(lane.latencyMs.max, phase.name).toBeGreaterThanOrEqual(lane.latencyMs.p95);
      }
    }
    const backlog = result.phases[2]!;
    // The whole standard backlog was queued when the express orders came (its mappings had just started).
    expect(backlog.standardUndecidedAtFirstExpressPost).toBeGreaterThan(0);
    expect(backlog.standardUndecidedAtFirstExpressPost).toBeGreaterThanOrEqual(backlog.standardUndecidedAtLastExpressDecision!);
    expect(result.setup).toMatchObject({ standardMaximumConcurrency: 5, expressMaximumConcurrency: 2 });
    expect(result.ratios.expressP95.goal).toBe(2);
    expect(result.ratios.standardThroughput.goal).toBe(0.5);

    const report = formatBacklog(result);
    expect(report).toMatch(/^Setup: .*60 standard and 6 express orders/);
    expect(report).toMatch(/express p95 with the backlog \/ alone: [\d.]+x \(goal at most 2x: (met|MISSED)\)/);
    expect(report).toMatch(/standard orders\/s with the backlog \/ alone: [\d.]+x \(goal at least 0.5x: (met|MISSED)\)/);
    expect(report).toMatch(/\d+ standard orders waiting when the first express order was posted/);
  }, 600_000);
});
