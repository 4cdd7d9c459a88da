// The local runtime's resident memory as a developer meets it: `npm start` in a process of its own
// (npm -> sh -> node local/launch.mjs, the runtime), a few orders posted the way one pastes the
// banner's curl, the queues drained, then every process `npm start` runs read: the runtime (every
// thread: the main thread and one worker thread per execution environment), the shell npm runs it
// in, and npm. Read twice: as soon as the queues drained, and once the session is at rest.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPOSITORY_ROOT } from '../local/package-stack.js';
import { IDLE_ENVIRONMENT_RECLAIM_MS } from '../local/lambda-environment.js';
import { launcherProcesses, processMemory, type ProcessMemory, type RuntimeMemory } from '../local/memory.js';
import type { PipelineStatus } from '../local/status.js';

/**
 * What everything `npm start` runs may hold resident, all its processes together: npm, the shell it
 * runs the script in, and the runtime with all its threads (issue 12). Held against the settled
 * reading: the session at rest after its orders.
 */
export const RUNTIME_MEMORY_GOAL_MB = 300;

/**
 * The settled reading is taken no sooner than this after `npm start` is ready: every function a
 * schedule runs has run by then, as in any session longer than a minute (sweepOrders, rate(1
 * minute), first runs one period after the start, as EventBridge does), and its environment counts.
 */
const SETTLED_AFTER_START_MS = 65_000;
/** ...and no sooner than this after the queues drained: the environments the orders started are reclaimed. */
const SETTLED_AFTER_DRAIN_MS = IDLE_ENVIRONMENT_RECLAIM_MS + 5_000;

/** Every process `npm start` runs, at one moment. */
export interface MemoryReading {
  /** Seconds from `npm start` to the reading. */
  seconds: number;
  /** The runtime's process (all its threads), read by this process. */
  runtime: ProcessMemory;
  /** Its own account, at the same moment: main thread heap, each environment's heap. */
  breakdown: RuntimeMemory;
  /** npm and its shell (and tsx's wrapper, were it run through tsx): they launch the runtime and wait for it. */
  launchers: ProcessMemory[];
  /** The runtime and its launchers together: what `npm start` holds, in all. */
  totalBytes: number;
}

export interface NpmStartMemory {
  /** Orders posted, each as soon as the API answered the previous one (no wait for its decision). */
  orders: number;
  /** Of them, answered 201/202. */
  accepted: number;
  /** As soon as the queues were drained: every environment the orders started is still there. */
  drained: MemoryReading;
  /**
   * The session at rest: environments idle IDLE_ENVIRONMENT_RECLAIM_MS reclaimed down to one per
   * function, and the scheduled functions run (SETTLED_AFTER_START_MS). Held to the goal.
   */
  settled: MemoryReading;
  /** Seconds from `npm start` to the last reading. */
  seconds: number;
}

export type NpmStartMemoryResult = NpmStartMemory | { skipped: string };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return (await response.json()) as T;
}

async function readMemory(api: string, runtimePid: number, started: number): Promise<MemoryReading> {
  const breakdown = await getJson<RuntimeMemory>(`${api}/_local/memory`);
  const runtime = processMemory(runtimePid) ?? breakdown.process;
  const launchers = launcherProcesses(runtimePid);
  return {
    seconds: Math.round((Date.now() - started) / 1000),
    runtime,
    breakdown,
    launchers,
    totalBytes: runtime.rssBytes + launchers.reduce((sum, launcher) => sum + launcher.rssBytes, 0),
  };
}

/** Every stage queue empty and nothing running, twice in a row (a follow-up may be on its way). */
async function untilQuiet(api: string, timeoutMs: number): Promise<void> {
  let quiet = 0;
  await until(
    'the queues to drain',
    async () => {
      const status = await getJson<PipelineStatus>(`${api}/_local/status`);
      const busy =
        status.queues.some((queue) => queue.visible + queue.inFlight + queue.delayed > 0) || status.functions.some((fn) => fn.running > 0);
      quiet = busy ? 0 : quiet + 1;
      return quiet >= 2 ? true : undefined;
    },
    timeoutMs,
  );
}

/**
 * Starts `npm start` on free ports, posts `orders` orders one after another, waits until every
 * queue is empty and nothing runs, and reads every process it runs; reads them again once the
 * session is at rest (see NpmStartMemory.settled). Stops it with SIGINT.
 */
export async function measureNpmStartMemory(options: {
  orders: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}): Promise<NpmStartMemoryResult> {
  if (process.platform === 'win32') return { skipped: 'not measured on Windows (no resident size of another process without extra tools)' };
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-memory-'));
  const stateFile = path.join(dir, 'local-runtime.json');
  const env = {
    ...process.env,
    PORT: String(await freePort()),
    SQS_PORT: String(await freePort()),
    DYNAMODB_PORT: String(await freePort()),
    LOCAL_RUNTIME_STATE_FILE: stateFile,
  };
  const started = Date.now();
  // Its own process group, so that whatever is left can be ended at once.
  const child = spawn('npm', ['start'], { cwd: REPOSITORY_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let runtimePid: number | undefined;
  try {
    await until(
      'npm start to be ready',
      () => (output.includes('Order Pipeline is ready') ? true : child.exitCode !== null ? false : undefined),
      180_000,
    ).then((ready) => {
      if (!ready) throw new Error(`npm start did not start:\n${output.slice(-2000)}`);
    });
    const ready = Date.now();
    const state = (JSON.parse(readFileSync(stateFile, 'utf8')) as { runtimes: Array<{ pid: number; apiUrl: string }> }).runtimes[0]!;
    runtimePid = state.pid;
    const api = state.apiUrl.replace(/\/$/, '');
    const { token } = await getJson<{ token: string }>(`${api}/_local/token?customer=cus_bench_memory`);
    const phase = `runtime memory (npm start, ${options.orders} orders posted one after another)`;
    let accepted = 0;
    for (let n = 0; n < options.orders; n++) {
      const response = await fetch(`${api}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          items: [{ sku: 'SKU-TSHIRT-M', quantity: 1 }],
          payment: { token: 'tok_visa' },
          shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 1AA', country: 'GB' },
        }),
      });
      await response.body?.cancel();
      if (response.status === 201 || response.status === 202) accepted++;
      options.onProgress?.(phase, n + 1, options.orders);
    }
    await untilQuiet(api, 120_000);
    const drained = await readMemory(api, runtimePid, started);

    // At rest: long enough after the start for the schedules, and after the drain for the reclaim.
    const settleAt = Math.max(ready + SETTLED_AFTER_START_MS, Date.now() + SETTLED_AFTER_DRAIN_MS);
    const settling = 'runtime memory (npm start at rest: idle environments reclaimed, scheduled functions run), seconds';
    const settleSeconds = Math.ceil((settleAt - Date.now()) / 1000);
    while (Date.now() < settleAt) {
      options.onProgress?.(settling, settleSeconds - Math.ceil((settleAt - Date.now()) / 1000), settleSeconds);
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, settleAt - Date.now())));
    }
    options.onProgress?.(settling, settleSeconds, settleSeconds);
    // A scheduled run may be under way right then.
    await untilQuiet(api, 60_000);
    const settled = await readMemory(api, runtimePid, started);
    return { orders: options.orders, accepted, drained, settled, seconds: settled.seconds };
  } finally {
    if (runtimePid !== undefined) {
      try {
        process.kill(runtimePid, 'SIGINT');
      } catch {
        // Already gone.
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 30_000);
    });
    const stopped = await Promise.race([exited.then(() => true), timedOut]);
    // Not left to keep this process alive for 30 s (npm run bench -- --memory-only ends here).
    clearTimeout(timer);
    if (!stopped) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
