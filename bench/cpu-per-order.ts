import type { RuntimeCpu } from '../local/runtime.js';

/**
 * Milliseconds of CPU per order, by thread of the pipeline's process: the main thread (emulators,
 * HTTP API, pollers, and the bench's own clients), each function's environments, and the other
 * threads (V8's compilers and garbage-collection helpers, libuv's). Where a saving in local
 * throughput would come from: the machine's cores run all of it, the emulators included.
 */
export interface CpuPerOrder {
  mainThread: number;
  functions: Record<string, number>;
  otherThreads: number;
  total: number;
}

const perOrder = (seconds: number, orders: number) => Math.round((seconds * 1000 * 100) / orders) / 100;

/** Between two readings of RuntimeCpu; undefined where /proc could not tell (not Linux). */
export function cpuPerOrder(before: RuntimeCpu, after: RuntimeCpu, orders: number): CpuPerOrder | undefined {
  const main = after.mainThreadSeconds - before.mainThreadSeconds;
  if (orders <= 0 || main <= 0) return undefined;
  const functions: Record<string, number> = {};
  let inFunctions = 0;
  for (const [name, seconds] of Object.entries(after.functions)) {
    const used = seconds - (before.functions[name] ?? 0);
    if (used <= 0) continue;
    functions[name] = perOrder(used, orders);
    inFunctions += used;
  }
  const total = after.processSeconds - before.processSeconds;
  return {
    mainThread: perOrder(main, orders),
    functions,
    // Read at slightly different moments, at 10 ms granularity: never below zero.
    otherThreads: perOrder(Math.max(0, total - main - inFunctions), orders),
    total: perOrder(total, orders),
  };
}
