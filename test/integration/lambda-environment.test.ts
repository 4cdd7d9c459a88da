import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  BACKGROUND_NICE_INCREMENT,
  EnvironmentBudget,
  FOREGROUND_NICE_INCREMENT,
  LambdaFunction,
  ROOM_SHARE,
  SATURATED_SHARE,
  type InvocationResult,
} from '../../local/lambda-environment.js';

// Execution environments of the local runtime (worker threads), with a handler of this test's own:
// the ones a burst started are reclaimed once idle, the function's last one stays warm, and one
// that is running is never reclaimed; background environments run at a lower priority, apart.

const HANDLER = `
import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority } from 'node:os';
import { threadId } from 'node:worker_threads';
let invocations = 0;
// This thread's nice value, where /proc names the thread (Linux).
const threadNice = () => {
  try {
    return getPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()));
  } catch {
    return undefined;
  }
};
const threadCpuMs = () => {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
export const handler = async (event) => {
  invocations += 1;
  if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  // Spins until this thread has used spinCpuMs of CPU (Linux), however busy the machine is.
  if (event.spinCpuMs) for (const until = threadCpuMs() + event.spinCpuMs; threadCpuMs() < until; );
  return { environment: threadId, invocations, nice: threadNice() };
};
`;

const dir = mkdtempSync(path.join(tmpdir(), 'lambda-environment-'));
const handlerPath = path.join(dir, 'handler.mjs');
writeFileSync(handlerPath, HANDLER);
const functions: LambdaFunction[] = [];

afterEach(async () => {
  await Promise.all(functions.splice(0).map((fn) => fn.stop()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function defineFunction(reclaimIdleAfterMs: number, budget?: EnvironmentBudget, name = 'reclaim'): LambdaFunction {
  const fn = new LambdaFunction(
    {
      name,
      functionName: `${name}-test`,
      functionArn: `arn:aws:lambda:us-east-1:000000000000:function:${name}-test`,
      modulePath: handlerPath,
      exportName: 'handler',
      timeoutSeconds: 10,
      memorySize: 256,
      logGroupName: `/aws/lambda/${name}-test`,
      environment: {},
    },
    () => {},
    { reclaimIdleAfterMs, budget, maxEnvironments: 5 },
  );
  functions.push(fn);
  return fn;
}

/** The process's CPU load as a budget reads it, set by the test: these tests' handlers sleep, they never load the cores. */
function loadOf(busyCores: number) {
  const load = { cores: 2, busyCores: () => load.busy, busy: busyCores };
  return load;
}

function budgetOf(size: number, load = loadOf(0)): EnvironmentBudget {
  return new EnvironmentBudget(size, load);
}

function payload(result: InvocationResult): { environment: number; invocations: number; nice?: number } {
  if (!result.ok) throw new Error(`${result.errorType}: ${result.errorMessage}`);
  return result.payload as { environment: number; invocations: number; nice?: number };
}

async function until(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('execution environments', () => {
  it.runIf(process.platform === 'linux')("counts its environments' CPU time, theirs that ended too", async () => {
    const fn = defineFunction(60_000, undefined, 'cpu');
    const idle = fn.cpuSeconds();
    // Two environments at once, each spinning until it has used 400 ms of CPU.
    await Promise.all([fn.invoke({ spinCpuMs: 400 }), fn.invoke({ spinCpuMs: 400 })]);
    expect(fn.stats().environments).toBe(2);
    const busy = fn.cpuSeconds();
    // Both threads' spins, read in 10 ms ticks (what init used before comes on top).
    expect(busy - idle).toBeGreaterThanOrEqual(0.78);
    // Sleeping is not CPU.
    await fn.invoke({ sleepMs: 500 });
    expect(fn.cpuSeconds() - busy).toBeLessThan(0.2);
    // Environments that ended keep their share: the bench reads it after a burst's were reclaimed.
    const beforeStop = fn.cpuSeconds();
    await fn.stop();
    expect(fn.stats().environments).toBe(0);
    expect(fn.cpuSeconds()).toBeGreaterThanOrEqual(beforeStop);
  });

  it('reclaims idle environments beyond the last one, and keeps that one warm', async () => {
    const fn = defineFunction(500);
    const burst = await Promise.all([0, 1, 2].map(() => fn.invoke({ sleepMs: 300 })));
    const environments = new Set(burst.map((result) => payload(result).environment));
    expect(environments.size).toBe(3);
    expect(fn.stats().environments).toBe(3);
    const idleSince = Date.now();

    await until('the idle environments to be reclaimed', () => fn.stats().environments === 1, 10_000);
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(400);
    // The last one stays, however long it is idle.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(fn.stats().environments).toBe(1);

    // It is warm: no cold start, and its module state is there.
    const next = await fn.invoke({});
    expect(next.initDurationMs).toBeUndefined();
    expect(environments.has(payload(next).environment)).toBe(true);
    expect(payload(next).invocations).toBe(2);
    expect(fn.stats()).toMatchObject({ invocations: 4, coldStarts: 3, environments: 1 });
  }, 30_000);

  it('never reclaims an environment while it runs', async () => {
    const fn = defineFunction(300);
    const long = fn.invoke({ sleepMs: 4_000 });
    // A second environment, idle after 0 ms of work: reclaimed while the first still runs.
    await until('the first environment to start', () => fn.stats().running === 1, 10_000);
    const short = payload(await fn.invoke({}));
    await until('the idle environment to be reclaimed', () => fn.stats().environments === 1, 5_000);
    expect(fn.stats().running).toBe(1);
    const longResult = payload(await long);
    expect(longResult.environment).not.toBe(short.environment);
    // Now idle itself, but the function's last environment: kept.
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(fn.stats().environments).toBe(1);
    expect(payload(await fn.invoke({})).environment).toBe(longResult.environment);
  }, 30_000);

  // Linux only: elsewhere environments run at the process's priority (nothing to see).
  it.runIf(process.platform === 'linux')(
    'runs every environment below the main thread, background ones lowest, each thread alone niced',
    async () => {
      const fn = defineFunction(60_000);
      const processNice = getPriority();
      const [foreground, background] = await Promise.all([
        fn.invoke({ sleepMs: 300 }),
        fn.invoke({ sleepMs: 300 }, { environmentClass: 'background' }),
      ]).then((results) => results.map(payload));
      expect(foreground!.nice).toBe(Math.min(19, processNice + FOREGROUND_NICE_INCREMENT));
      expect(foreground!.nice!).toBeGreaterThan(processNice);
      expect(background!.nice!).toBeGreaterThan(foreground!.nice!);
      expect(background!.nice).toBe(Math.min(19, processNice + BACKGROUND_NICE_INCREMENT));
      // The runtime's own thread (the emulators, the pollers) keeps its priority.
      expect(getPriority()).toBe(processNice);

      // Each kind reuses its own warm environment, never the other's, even when that one is idle.
      const [nextBackground, nextForeground] = [
        payload(await fn.invoke({}, { environmentClass: 'background' })),
        payload(await fn.invoke({})),
      ];
      expect(nextBackground.environment).toBe(background!.environment);
      expect(nextBackground.nice).toBe(background!.nice);
      expect(nextForeground.environment).toBe(foreground!.environment);
      expect(nextForeground.nice).toBe(foreground!.nice);
      expect(fn.stats()).toMatchObject({ invocations: 4, coldStarts: 2, environments: 2 });
    },
    30_000,
  );

  describe('at most a budget of environments across functions (EnvironmentBudget)', () => {
    it("with the budget spent by busy environments, a burst waits for its function's one environment", async () => {
      const budget = budgetOf(2);
      const busy = defineFunction(60_000, budget, 'busy');
      const other = defineFunction(60_000, budget, 'other');
      const long = Promise.all([0, 1].map(() => busy.invoke({ sleepMs: 3_000 })));
      await until('both environments to run', () => busy.stats().running === 2, 10_000);
      const burst = await Promise.all([0, 1, 2].map(() => other.invoke({ sleepMs: 200 }))).then((results) => results.map(payload));
      // Its first starts however the budget stands: a function is never left with none.
      expect(new Set(burst.map((result) => result.environment)).size).toBe(1);
      expect(burst.map((result) => result.invocations).sort()).toEqual([1, 2, 3]);
      expect(other.stats()).toMatchObject({ coldStarts: 1, environments: 1, maxConcurrent: 1 });
      expect(budget.alive).toBe(3);
      await long;
    }, 30_000);

    it('takes the place of an environment idle for a second, of another function', async () => {
      const budget = budgetOf(2);
      const first = defineFunction(60_000, budget, 'first');
      const second = defineFunction(60_000, budget, 'second');
      await Promise.all([0, 1].map(() => first.invoke({ sleepMs: 200 })));
      expect(first.stats().environments).toBe(2);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const burst = await Promise.all([0, 1].map(() => second.invoke({ sleepMs: 300 }))).then((results) => results.map(payload));
      // Its second environment took the place of one of the first function's, idle since.
      expect(new Set(burst.map((result) => result.environment)).size).toBe(2);
      expect(second.stats()).toMatchObject({ environments: 2, maxConcurrent: 2 });
      expect(first.stats().environments).toBe(1);
      expect(budget.alive).toBe(3);
      // What is left of the first is warm.
      expect((await first.invoke({})).initDurationMs).toBeUndefined();
    }, 30_000);

    it('tells an event source poller when an invocation would start at once, as the budget stands', async () => {
      const budget = budgetOf(2);
      const busy = defineFunction(60_000, budget, 'busy');
      const other = defineFunction(60_000, budget, 'other');
      const long = busy.invoke({ sleepMs: 3_000 });
      await until('the busy environment to run', () => busy.stats().running === 1, 10_000);
      await other.invoke({});
      // The budget is spent: busy's one environment runs, other's is idle but only just.
      expect(other.canStartNow()).toBe(true);
      expect(busy.canStartNow()).toBe(false);
      // Idle a second, other's environment may make way: a poller of busy may receive now.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      expect(busy.canStartNow()).toBe(true);
      // A poller waiting is woken when busy's environment is freed, not at its minute's end.
      await other.invoke({});
      expect(busy.canStartNow()).toBe(false);
      const woken = busy.whenMightStart(60_000);
      payload(await long);
      await woken;
      expect(busy.canStartNow()).toBe(true);
    }, 30_000);

    it('scales a burst out as Lambda would while the budget allows', async () => {
      const budget = budgetOf(8);
      const fn = defineFunction(60_000, budget);
      const burst = await Promise.all([0, 1, 2].map(() => fn.invoke({ sleepMs: 300 }))).then((results) => results.map(payload));
      expect(new Set(burst.map((result) => result.environment)).size).toBe(3);
      expect(fn.stats()).toMatchObject({ environments: 3, maxConcurrent: 3 });
      expect(budget.alive).toBe(3);
      await fn.stop();
      expect(budget.alive).toBe(0);
    }, 30_000);

    it("while the cores are saturated, a burst runs on its function's one environment", async () => {
      // 1.5 of 2 cores busy: SATURATED_SHARE.
      const load = loadOf(2 * SATURATED_SHARE);
      const fn = defineFunction(60_000, budgetOf(8, load));
      const burst = await Promise.all([0, 1, 2].map(() => fn.invoke({ sleepMs: 200 }))).then((results) => results.map(payload));
      expect(new Set(burst.map((result) => result.environment)).size).toBe(1);
      expect(burst.map((result) => result.invocations).sort()).toEqual([1, 2, 3]);
      expect(fn.stats()).toMatchObject({ coldStarts: 1, environments: 1, maxConcurrent: 1 });
      // Its pollers wait while it runs, as for a function at its limit.
      const running = fn.invoke({ sleepMs: 500 });
      await until('the environment to run', () => fn.stats().running === 1, 10_000);
      expect(fn.canStartNow()).toBe(false);
      // Below saturation but above ROOM_SHARE, it keeps what it has: no environment more.
      load.busy = 2 * SATURATED_SHARE - 0.1;
      expect(fn.canStartNow()).toBe(false);
      // With room on the cores again, a burst scales out as on Lambda.
      load.busy = 2 * ROOM_SHARE - 0.1;
      expect(fn.canStartNow()).toBe(true);
      await Promise.all([running, fn.invoke({ sleepMs: 200 })].map(async (result) => payload(await result)));
      expect(fn.stats()).toMatchObject({ environments: 2, maxConcurrent: 2 });
    }, 30_000);

    it('gives back the environments beyond the first as they finish once the cores are saturated, the waiting served in order', async () => {
      const load = loadOf(0);
      const budget = budgetOf(8, load);
      const fn = defineFunction(60_000, budget);
      const started = await Promise.all([0, 1].map(() => fn.invoke({ sleepMs: 300 }))).then((results) => results.map(payload));
      expect(new Set(started.map((result) => result.environment)).size).toBe(2);
      load.busy = 2;
      // Two warm environments idle; four invocations: two take them, two wait.
      const order: number[] = [];
      const burst = await Promise.all(
        [0, 1, 2, 3].map((i) =>
          fn.invoke({ sleepMs: 300 }).then((result) => {
            order.push(i);
            return payload(result);
          }),
        ),
      );
      // No cold start: the warm ones ran the burst, and the second was given back as it finished.
      expect(fn.stats()).toMatchObject({ coldStarts: 2, environments: 1, invocations: 6 });
      expect(budget.alive).toBe(1);
      expect(new Set(burst.map((result) => result.environment)).size).toBe(2);
      // The two that waited ran one after the other on the one kept, first come first served.
      expect(order.slice(-2)).toEqual([2, 3]);
      expect(burst[2]!.environment).toBe(burst[3]!.environment);
    }, 30_000);
  });
});
