import { describe, expect, it } from 'vitest';
import { ProcessCpuLoad } from '../../local/process-cpu-load.js';
import { processCpuSeconds } from '../../local/thread-cpu.js';

// The load the local runtime's environment budget reads (local/lambda-environment.ts,
// EnvironmentBudget): cores busy over about the last half second, from the process's CPU time.

/** A clock and a CPU counter the test moves: `run(ms, cores)` spends ms of wall time with that many cores busy. */
function machine() {
  let now = 0;
  let cpuMs = 0;
  const load = new ProcessCpuLoad(
    2,
    () => cpuMs,
    () => now,
  );
  return {
    load,
    run(ms: number, cores: number, askEveryMs = 10) {
      for (let elapsed = 0; elapsed < ms; elapsed += askEveryMs) {
        now += askEveryMs;
        cpuMs += askEveryMs * cores;
        load.busyCores();
      }
    },
  };
}

describe('ProcessCpuLoad', () => {
  it('reads 0 until it has a tenth of a second of history', () => {
    const { load, run } = machine();
    run(50, 2);
    expect(load.busyCores()).toBe(0);
    run(100, 2);
    expect(load.busyCores()).toBeCloseTo(2, 5);
  });

  it('reads the cores busy over about the last half second, not since it started', () => {
    const { load, run } = machine();
    run(2_000, 0.2);
    expect(load.busyCores()).toBeCloseTo(0.2, 5);
    // A flood: within a second the reading is the flood's, not diluted by the calm before.
    run(1_000, 1.8);
    expect(load.busyCores()).toBeCloseTo(1.8, 5);
    // And it calms down as quickly.
    run(1_000, 0.1);
    expect(load.busyCores()).toBeCloseTo(0.1, 5);
  });

  it('asked rarely, reads the whole span since it was last asked', () => {
    const { load, run } = machine();
    run(1_000, 1.6);
    // Nobody asks for 10 s, in which the process idles: an idle process reads idle.
    run(10_000, 0, 10_000);
    expect(load.busyCores()).toBeLessThan(0.2);
  });

  it('asked at every invocation, reads the CPU time at most once per 50 ms', () => {
    let now = 0;
    let reads = 0;
    const load = new ProcessCpuLoad(
      2,
      () => {
        reads++;
        return now * 1.5;
      },
      () => now,
    );
    // A flood asks every tenth of a millisecond for a second: 10,000 asks.
    for (let ask = 0; ask < 10_000; ask++, now += 0.1) load.busyCores();
    expect(reads).toBeLessThanOrEqual(21);
    expect(load.busyCores()).toBeCloseTo(1.5, 5);
  });

  it('reads the real process: a thread spinning shows, however many others share the cores', () => {
    const load = new ProcessCpuLoad();
    const cpuMs = () => processCpuSeconds() * 1000;
    // Spins until this process has used 600 ms of CPU: a reading of its own time, not the wall's.
    for (const until = cpuMs() + 600; cpuMs() < until; ) load.busyCores();
    expect(load.busyCores()).toBeGreaterThan(0.2);
  });
});
