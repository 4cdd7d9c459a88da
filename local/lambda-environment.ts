// Lambda execution environments for one function: each is a worker thread with its own
// process.env, module cache and event loop, running one invocation at a time. Environments are
// reused while warm; one that times out or crashes is destroyed, and the next invocation gets a
// fresh one (a cold start), as on Lambda. One left idle for a while is reclaimed, unless it is its
// function's last (IDLE_ENVIRONMENT_RECLAIM_MS).

import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { transformSync } from 'esbuild';
import type { HeapRequest, InvokeMessage, SerializedError, WorkerHeap, WorkerInit, WorkerMessage } from './lambda-worker.js';
import { REPOSITORY_ROOT } from './package-stack.js';
import { ProcessCpuLoad } from './process-cpu-load.js';
import { threadCpuSeconds } from './thread-cpu.js';

export interface LambdaFunctionDefinition {
  /** Short name for logs: the function's key in serverless.yml. */
  name: string;
  /** The deployed FunctionName. */
  functionName: string;
  functionArn: string;
  /** The handler module file and its export. */
  modulePath: string;
  exportName: string;
  timeoutSeconds: number;
  memorySize: number;
  logGroupName: string;
  /** The complete environment of the function's process. */
  environment: Record<string, string>;
}

export type InvocationResult =
  | { ok: true; requestId: string; payload: unknown; durationMs: number; initDurationMs?: number }
  | {
      ok: false;
      requestId: string;
      errorType: string;
      errorMessage: string;
      timedOut: boolean;
      durationMs: number;
      initDurationMs?: number;
    };

export interface FunctionStats {
  invocations: number;
  errors: number;
  timeouts: number;
  coldStarts: number;
  running: number;
  maxConcurrent: number;
  /** Execution environments alive now (busy or idle). */
  environments: number;
  /** Sum of invocation durations (init excluded), in ms: what Lambda bills, per 1 ms. */
  totalDurationMs: number;
}

/** Takes one line of a handler's stdout or stderr. */
export type OutputSink = (functionName: string, stream: 'stdout' | 'stderr', line: string) => void;

/** Lambda's init phase may take at most 10 seconds. */
const INIT_TIMEOUT_MS = 10_000;

/**
 * The young generation of each environment's V8 heap, in MB. Left to V8, a worker whose old
 * generation may reach 512 MB grows its young generation to 16 MB at light load and 32 MB under
 * load, and keeps it: half of a warm consumer environment's 50 MB heap was that space, emptied at
 * each scavenge. At 2 MB a scavenge
 * ran every MB or so of allocation and the environments spent 15% of their CPU in GC under the
 * bench's load; at 8 MB they use 8% less CPU per order (33 against 36 ms, two runs each of 600
 * orders at 64 clients), and `npm start` after 20 orders holds the same (299 MB against 300 MB);
 * under that load an environment's heap grows to about 28 MB instead of 21 MB: docs/decisions.md,
 * "Local runtime memory". GC timing only: what a handler sees is unchanged. A V8 semi-space flag
 * given to the process overrides it for every environment: `npm start` runs with
 * --optimize-for-size (package.json), which sets 1 MB semi-spaces (so did its former
 * --max-semi-space-size=2, at 2 MB); tests, the bench and `npx tsx local/start.ts` get this value.
 */
export const ENVIRONMENT_YOUNG_GENERATION_MB = 8;

/**
 * How long an execution environment may stay idle before it is reclaimed (its worker terminated),
 * unless it is its function's last one. Lambda reclaims idle environments too, after a time it does
 * not publish (minutes, in practice); on AWS an idle environment costs the developer nothing, here
 * each holds about 20 MB of the laptop's memory (docs/decisions.md, "Local runtime memory"). So the
 * environments a burst started (a consumer gets one more whenever a batch arrives while the others
 * are busy, within EnvironmentBudget and while the cores have room) are given back soon after it,
 * and the function's last one stays warm: the next order after a pause meets no cold start. 15 s
 * outlasts the pipeline's own pauses (a retried record's backoff: 1, 2, 4 then 8 s at the local
 * stage; a 1 s batching window), so a burst being retried keeps its environments. When reclaiming
 * happens shows only in when cold starts happen, and each environment's module state lives as long
 * as it does, as on Lambda.
 */
export const IDLE_ENVIRONMENT_RECLAIM_MS = 15_000;

/**
 * Which of a function's execution environments an invocation runs in. On Lambda each environment
 * has CPU of its own (a share set by its memory, never another environment's), so how fast an
 * invocation runs does not depend on how many others run. Locally every environment is a thread on
 * the same few cores: a standard backlog drained at full concurrency (15 batches for three
 * consumers) slows each express invocation, and the emulators' event loop, by its count, which
 * Lambda would not. `background` environments are the runtime's model of "the others have their
 * own compute": their threads run at a lower scheduling priority (BACKGROUND_NICE_INCREMENT), so
 * that when the cores are contended the `foreground` ones and the main thread (the emulators,
 * standing for services that scale) run first, and the background ones take what is left: on an
 * otherwise idle machine, all of it. A nice value cannot be lowered back without privileges, so
 * the two kinds are kept apart: an invocation waits for, reuses and starts environments of its own
 * kind only (on Lambda any warm environment of the function would do: locally a lane's first
 * invocation may meet a cold start the other's warm environment would have spared it).
 * docs/decisions.md, "Express lane: separate queues, no fair queues".
 */
export type EnvironmentClass = 'foreground' | 'background';

/**
 * Nice increment of a background environment's thread: the most Linux allows. Its scheduler weighs a
 * thread at nice 19 at 15 against 1,024 at nice 0, so a standard backlog's 15 invocations together
 * (225) take less than the main thread's share (the emulators) when both want the CPU, and all of an
 * idle core when nothing else does. At nice 10 (110 each) the 15 outweighed the main thread, whose
 * queue of their requests then held up the express lane's too.
 */
export const BACKGROUND_NICE_INCREMENT = 19;

/**
 * Nice increment of every other environment's thread. The main thread stands for the services
 * (SQS, SNS, DynamoDB, API Gateway, Lambda's pollers), which on AWS never wait for a function's
 * CPU; locally 15 or so environment threads share two cores with it, and at nice 0 they took the
 * main thread's turn often enough that it ran about half of each second while always having work.
 * At 5 (weight 335 against the main thread's 1,024) the functions still take a whole core when
 * the main thread leaves it: `npm run bench` at 64 clients went from 62 to 68 orders/s, 0.63 to
 * 0.67 of the ceiling (mean of four runs each). With sched_autogroup (the Linux default) nice
 * values weigh threads against the same session's only, not the rest of the machine.
 */
export const FOREGROUND_NICE_INCREMENT = 5;

const ENVIRONMENT_CLASSES: readonly EnvironmentClass[] = ['foreground', 'background'];

/** How long an environment may take to report its heap before it is counted as unknown. */
const HEAP_REPORT_TIMEOUT_MS = 1_000;

/** What one function's environments hold: how many there are, and each one's V8 heap. */
export interface FunctionMemory {
  environments: number;
  /** One per environment that answered (one busy with synchronous work may not, in time). */
  heaps: WorkerHeap[];
}

/** A counting semaphore: at most `size` holders at once, the others wait in arrival order. */
export class Semaphore {
  readonly #size: number;
  #held = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    this.#size = Math.max(1, size);
  }

  async acquire(): Promise<() => void> {
    if (this.#held >= this.#size) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter; otherwise it is freed.
      if (next) next();
      else this.#held--;
    };
  }
}

/**
 * At most `size` execution environments alive across the functions that share it, a function's
 * first excepted. On Lambda an invocation that finds all of its function's environments busy gets a
 * new one, with CPU of its own. Here an environment is one more thread on the laptop's cores, and
 * a V8 isolate that compiles the SDK's request path again for itself, warmed by its share of the
 * traffic only; about 80% of the environments' CPU under the bench's load is that path. Past the
 * budget, another environment adds no CPU, only a cold start and ~20 MB. So an invocation that
 * finds its function's environments busy and the budget spent takes the place of an environment
 * idle for EVICT_IDLE_MS or more, of any function (reclaimed now rather than after
 * IDLE_ENVIRONMENT_RECLAIM_MS), or else waits, first come first served, for one of its function's
 * own or a place in the budget (looked for every BUDGET_RECHECK_MS). A function with none always
 * gets one: none is starved. An event source's poller receives only when an invocation would
 * start at once (LambdaFunction.canStartNow), so no batch waits in hand. Four per core by
 * default (startLocalPipeline's maxEnvironmentsInAll): 8 on 2 cores, where a 64-client flood
 * ran 15-18 environments before (docs/decisions.md, "At most four execution environments per core").
 *
 * And the cores: a function starts an environment beyond its first only while this process leaves
 * them room (below ROOM_SHARE of them busy, over the last half second), and while it keeps them
 * saturated (SATURATED_SHARE or more) gives one beyond its first back as it finishes. A thread
 * more cannot run sooner on busy cores, and each isolate costs its own warm-up and garbage
 * collection: under the bench's flood, one environment per function took 20 ms of CPU per order
 * against 23 with createOrder's five. In between, a function keeps what it has: a flood's dips do
 * not start environments that its peaks give back. A slow invocation that waits (a slow
 * dependency, a sleep) leaves the cores free, so its function scales out.
 */
export class EnvironmentBudget {
  /** Environments alive or starting, across the functions. */
  alive = 0;
  readonly functions = new Set<LambdaFunction>();

  constructor(
    readonly size: number,
    readonly load: Pick<ProcessCpuLoad, 'busyCores' | 'cores'> = new ProcessCpuLoad(),
  ) {}

  /** Whether this process leaves the cores room for another environment to run. */
  coresHaveRoom(): boolean {
    return this.load.busyCores() < this.load.cores * ROOM_SHARE;
  }

  /** Whether this process keeps the cores so busy that an environment beyond a function's first only shares them. */
  coresSaturated(): boolean {
    return this.load.busyCores() >= this.load.cores * SATURATED_SHARE;
  }
}

/** Below this share of the machine's cores busy, a function may start environments beyond its first (EnvironmentBudget). */
export const ROOM_SHARE = 0.5;

/** From this share of the machine's cores busy, a function gives back those beyond its first (EnvironmentBudget). */
export const SATURATED_SHARE = 0.75;

/** How long an environment must have been idle before another function may take its place. */
const EVICT_IDLE_MS = 1_000;

/** How often an invocation held back by a spent budget looks for an environment idle long enough. */
const BUDGET_RECHECK_MS = 100;

export interface EnvironmentLimits {
  /**
   * Execution environments this function may have at once. Lambda would start one per concurrent
   * request; on a laptop every environment is a thread sharing the same cores and memory, so
   * requests beyond the limit wait for a free environment (their timeout starts when they run).
   */
  maxEnvironments: number;
  /** Shared by all functions: cold starts are CPU-heavy, so only a few run at once. */
  initSlots: Semaphore;
  /** Shared by all functions: environments alive in all (EnvironmentBudget); none, no such limit. */
  budget?: EnvironmentBudget;
  /** Idle time after which an environment other than the function's last is reclaimed: IDLE_ENVIRONMENT_RECLAIM_MS. */
  reclaimIdleAfterMs?: number;
}

export class LambdaFunction {
  readonly definition: LambdaFunctionDefinition;
  /** Undefined: nobody reads the handlers' output, and the environments drop it as it is written. */
  readonly #output: OutputSink | undefined;
  /** Per kind of environment (EnvironmentClass): each kind has its own limit, idle list and queue. */
  readonly #maxEnvironments: Record<EnvironmentClass, number>;
  readonly #initSlots: Semaphore;
  readonly #budget: EnvironmentBudget | undefined;
  readonly #reclaimIdleAfterMs: number;
  readonly #idle: Record<EnvironmentClass, ExecutionEnvironment[]> = { foreground: [], background: [] };
  /** The timer that reclaims each idle environment. */
  readonly #reclaimTimers = new Map<ExecutionEnvironment, NodeJS.Timeout>();
  readonly #all = new Set<ExecutionEnvironment>();
  /**
   * Invocations waiting for an environment of their kind, first come first served: a freed
   * environment is handed to the first (never to one arriving after it), and a place the budget
   * makes is granted to the first too (BUDGET_RECHECK_MS).
   */
  readonly #waiting: Record<EnvironmentClass, Array<(outcome: WaitOutcome) => void>> = { foreground: [], background: [] };
  /** Per kind, while invocations wait below the limit: looks for a place in the budget. */
  readonly #budgetWatch: Record<EnvironmentClass, NodeJS.Timeout | undefined> = { foreground: undefined, background: undefined };
  readonly #creating: Record<EnvironmentClass, number> = { foreground: 0, background: 0 };
  /** Event source pollers waiting until an invocation could start at once (whenMightStart). */
  readonly #startWatchers: Array<() => void> = [];
  #stopped = false;
  /** CPU seconds of its environments that have ended (cpuSeconds). */
  #endedCpuSeconds = 0;
  readonly #stats: FunctionStats = {
    invocations: 0,
    errors: 0,
    timeouts: 0,
    coldStarts: 0,
    running: 0,
    maxConcurrent: 0,
    environments: 0,
    totalDurationMs: 0,
  };

  constructor(definition: LambdaFunctionDefinition, output: OutputSink | undefined, limits?: Partial<EnvironmentLimits>) {
    this.definition = definition;
    this.#output = output;
    const maxEnvironments = limits?.maxEnvironments ?? 10;
    this.#maxEnvironments = { foreground: maxEnvironments, background: maxEnvironments };
    this.#initSlots = limits?.initSlots ?? new Semaphore(availableParallelism());
    this.#budget = limits?.budget;
    this.#budget?.functions.add(this);
    this.#reclaimIdleAfterMs = limits?.reclaimIdleAfterMs ?? IDLE_ENVIRONMENT_RECLAIM_MS;
  }

  /** Raises a kind's environment limit, e.g. to its event source mappings' maximum concurrency. */
  allowEnvironments(count: number, environmentClass: EnvironmentClass = 'foreground'): void {
    this.#maxEnvironments[environmentClass] = Math.max(this.#maxEnvironments[environmentClass], count);
  }

  get name(): string {
    return this.definition.name;
  }

  stats(): FunctionStats {
    return { ...this.#stats, environments: this.#all.size };
  }

  /**
   * CPU seconds its environments' threads have used, those ended included (read as each was
   * destroyed; one whose thread died on its own is not counted). Linux only: 0 elsewhere.
   */
  cpuSeconds(): number {
    let seconds = this.#endedCpuSeconds;
    for (const environment of this.#all) if (environment.alive) seconds += environment.cpuSeconds();
    return seconds;
  }

  /** Its environments and the V8 heap of each, as they report it now. */
  async memory(): Promise<FunctionMemory> {
    const environments = [...this.#all];
    const heaps = await Promise.all(environments.map((environment) => environment.heap()));
    return { environments: environments.length, heaps: heaps.filter((heap): heap is WorkerHeap => heap !== undefined) };
  }

  /**
   * Invokes the function synchronously (RequestResponse) with a JSON-serialisable event, in a
   * foreground environment unless told otherwise (EnvironmentClass).
   */
  async invoke(event: unknown, options?: { environmentClass?: EnvironmentClass }): Promise<InvocationResult> {
    const requestId = randomUUID();
    this.#stats.invocations++;
    const acquired = await this.#acquire(options?.environmentClass ?? 'foreground');
    if (!acquired) {
      this.#stats.errors++;
      return {
        ok: false,
        requestId,
        errorType: 'Runtime.Shutdown',
        errorMessage: 'The local runtime is stopping',
        timedOut: false,
        durationMs: 0,
      };
    }
    const { environment, initDurationMs } = acquired;
    if (initDurationMs !== undefined) this.#stats.coldStarts++;
    this.#stats.running++;
    this.#stats.maxConcurrent = Math.max(this.#stats.maxConcurrent, this.#stats.running);
    try {
      const init = await environment.ready;
      let result: InvocationResult;
      if (!init.ok) {
        // A failed init leaves no usable environment: the next invocation starts a fresh one.
        void environment.destroy();
        result = { ok: false, requestId, ...init.error, timedOut: false, durationMs: 0 };
      } else {
        result = await environment.invoke(requestId, JSON.stringify(event ?? null), this.definition.timeoutSeconds * 1000);
      }
      if (!result.ok) this.#stats.errors++;
      if (!result.ok && result.timedOut) this.#stats.timeouts++;
      this.#stats.totalDurationMs += result.durationMs;
      return initDurationMs === undefined ? result : { ...result, initDurationMs };
    } finally {
      this.#stats.running--;
      this.#release(environment);
    }
  }

  /**
   * Whether an invocation of the kind would start now without waiting: an environment idle, or
   * room for a new one (below its limit, and the budget allows or an environment elsewhere idle
   * long enough would make way), with no invocation waiting before it. An event source's poller
   * receives a batch only then (SqsPoller), as Lambda's pollers scale with the concurrency the
   * function gets: a batch in hand with no environment to run it waits with its visibility timeout
   * running, and a few such waits spend a record's receives.
   */
  canStartNow(environmentClass: EnvironmentClass = 'foreground'): boolean {
    if (this.#stopped) return true;
    if (this.#waiting[environmentClass].length > 0) return false;
    if (this.#idle[environmentClass].some((environment) => environment.alive)) return true;
    return this.#roomForAnother(environmentClass, false);
  }

  /**
   * Resolves when an environment of this function is freed or one of any function sharing the
   * budget is discarded, or after `timeoutMs` (an environment elsewhere becomes one that may make
   * way with time alone), or when `signal` aborts.
   */
  whenMightStart(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', wake);
        const index = this.#startWatchers.indexOf(wake);
        if (index !== -1) this.#startWatchers.splice(index, 1);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      signal?.addEventListener('abort', wake, { once: true });
      this.#startWatchers.push(wake);
    });
  }

  #wakeStartWatchers(): void {
    for (const wake of this.#startWatchers.splice(0)) wake();
  }

  /**
   * A warm environment of the kind if one is idle, a new one if its limit and the budget allow (the
   * first always), else the next one freed.
   */
  async #acquire(environmentClass: EnvironmentClass): Promise<{ environment: ExecutionEnvironment; initDurationMs?: number } | undefined> {
    // A place in the budget, granted while waiting: counted already.
    let granted = false;
    for (;;) {
      if (this.#stopped) {
        if (granted && this.#budget) this.#budget.alive--;
        return undefined;
      }
      const idle = granted ? undefined : this.#idle[environmentClass].pop();
      if (idle) {
        this.#cancelReclaim(idle);
        // An idle environment can die between invocations (an error thrown by a leftover timer).
        if (idle.alive) return { environment: idle };
        this.#discard(idle);
        continue;
      }
      if (granted || this.#roomForAnother(environmentClass, true)) {
        granted = false;
        let created = false;
        this.#creating[environmentClass]++;
        const release = await this.#initSlots.acquire();
        const started = performance.now();
        try {
          if (this.#stopped) return undefined;
          const environment = new ExecutionEnvironment(this.definition, this.#output, environmentClass, (cpuSeconds) => {
            this.#endedCpuSeconds += cpuSeconds;
          });
          this.#all.add(environment);
          created = true;
          await environment.ready;
          return { environment, initDurationMs: Math.round(performance.now() - started) };
        } finally {
          this.#creating[environmentClass]--;
          if (!created && this.#budget) this.#budget.alive--;
          release();
        }
      }
      const outcome = await new Promise<WaitOutcome>((resolve) => {
        this.#waiting[environmentClass].push(resolve);
        this.#watchBudget(environmentClass);
      });
      if (outcome instanceof ExecutionEnvironment) return { environment: outcome };
      granted = outcome === 'granted';
    }
  }

  /**
   * While invocations of the kind wait below its limit, looks every BUDGET_RECHECK_MS for a place
   * in the budget (an environment elsewhere idle long enough) and grants it to the first.
   */
  #watchBudget(environmentClass: EnvironmentClass): void {
    if (!this.#budget || this.#budgetWatch[environmentClass]) return;
    const timer = setInterval(() => {
      const waiting = this.#waiting[environmentClass];
      if (waiting.length === 0 || this.#stopped) {
        clearInterval(timer);
        this.#budgetWatch[environmentClass] = undefined;
        return;
      }
      if (this.#roomForAnother(environmentClass, true)) waiting.shift()?.('granted');
    }, BUDGET_RECHECK_MS);
    // Waiting invocations keep the process busy enough; the watch alone never does.
    timer.unref();
    this.#budgetWatch[environmentClass] = timer;
  }

  /**
   * Whether one more environment of the kind may start: below its limit, and the budget has room
   * (its first always; otherwise a place free, or an environment of any function idle
   * EVICT_IDLE_MS or more to make way). With `take`, the place is taken: counted in the budget,
   * and that idle environment reclaimed.
   */
  #roomForAnother(environmentClass: EnvironmentClass, take: boolean): boolean {
    const count = this.#count(environmentClass) + this.#creating[environmentClass];
    if (count >= this.#maxEnvironments[environmentClass]) return false;
    const budget = this.#budget;
    if (!budget) return true;
    // Beyond its first, none unless the cores have room: not even in the place of an idle one.
    if (count > 0 && !budget.coresHaveRoom()) return false;
    if (count > 0 && budget.alive >= budget.size) {
      const oldest = LambdaFunction.#idleLongestIn(budget);
      if (!oldest) return false;
      if (take) {
        const idle = oldest.fn.#idle[oldest.environment.environmentClass];
        idle.splice(idle.indexOf(oldest.environment), 1);
        oldest.fn.#discard(oldest.environment);
      }
    }
    if (take) budget.alive++;
    return true;
  }

  /** The environment idle longest of the functions sharing the budget, if idle EVICT_IDLE_MS or more. */
  static #idleLongestIn(budget: EnvironmentBudget): { fn: LambdaFunction; environment: ExecutionEnvironment } | undefined {
    let oldest: { fn: LambdaFunction; environment: ExecutionEnvironment } | undefined;
    for (const fn of budget.functions) {
      for (const environmentClass of ENVIRONMENT_CLASSES) {
        for (const environment of fn.#idle[environmentClass]) {
          if (!oldest || environment.idleSince < oldest.environment.idleSince) oldest = { fn, environment };
        }
      }
    }
    return oldest && performance.now() - oldest.environment.idleSince >= EVICT_IDLE_MS ? oldest : undefined;
  }

  #count(environmentClass: EnvironmentClass): number {
    let count = 0;
    for (const environment of this.#all) if (environment.environmentClass === environmentClass) count++;
    return count;
  }

  #release(environment: ExecutionEnvironment): void {
    if (environment.alive && !this.#stopped && this.#count(environment.environmentClass) > 1 && this.#budget?.coresSaturated()) {
      // One beyond the function's first, given back while the cores are saturated (EnvironmentBudget).
      // The invocations waiting keep their places, for the function's next one freed.
      this.#discard(environment);
      return;
    }
    const next = this.#waiting[environment.environmentClass].shift();
    if (environment.alive && !this.#stopped) {
      // Handed to the invocation that waited longest: one arriving now cannot take it first.
      if (next) {
        next(environment);
        return;
      }
      this.#idle[environment.environmentClass].push(environment);
      environment.idleSince = performance.now();
      this.#scheduleReclaim(environment);
      this.#wakeStartWatchers();
    } else {
      this.#discard(environment);
      // One fewer: the first waiting may start one.
      next?.('retry');
    }
  }

  /** Reclaims the environment once it has been idle for reclaimIdleAfterMs, unless it is the last one. */
  #scheduleReclaim(environment: ExecutionEnvironment): void {
    const timer = setTimeout(() => {
      this.#reclaimTimers.delete(environment);
      const idle = this.#idle[environment.environmentClass];
      const index = idle.indexOf(environment);
      if (index === -1 || this.#all.size <= 1) return;
      idle.splice(index, 1);
      this.#discard(environment);
    }, this.#reclaimIdleAfterMs);
    // An idle environment waiting to be reclaimed keeps nothing running.
    timer.unref();
    this.#reclaimTimers.set(environment, timer);
  }

  #cancelReclaim(environment: ExecutionEnvironment): void {
    clearTimeout(this.#reclaimTimers.get(environment));
    this.#reclaimTimers.delete(environment);
  }

  #discard(environment: ExecutionEnvironment): void {
    this.#cancelReclaim(environment);
    if (this.#all.delete(environment) && this.#budget) {
      this.#budget.alive--;
      // A place in the budget: any function's poller may now receive.
      for (const fn of this.#budget.functions) fn.#wakeStartWatchers();
    }
    void environment.destroy();
  }

  /** Destroys every environment; invocations in progress fail, waiting ones are refused. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const environmentClass of ENVIRONMENT_CLASSES) this.#idle[environmentClass].length = 0;
    for (const timer of this.#reclaimTimers.values()) clearTimeout(timer);
    this.#reclaimTimers.clear();
    for (const environmentClass of ENVIRONMENT_CLASSES) {
      clearInterval(this.#budgetWatch[environmentClass]);
      this.#budgetWatch[environmentClass] = undefined;
      for (const wake of this.#waiting[environmentClass].splice(0)) wake('retry');
    }
    this.#wakeStartWatchers();
    await Promise.all([...this.#all].map((environment) => environment.destroy()));
    if (this.#budget) {
      this.#budget.alive -= this.#all.size;
      this.#budget.functions.delete(this);
    }
    this.#all.clear();
  }
}

type InitOutcome = { ok: true } | { ok: false; error: SerializedError };

/** What ends an invocation's wait: an environment handed over, a place in the budget, or a look again. */
type WaitOutcome = ExecutionEnvironment | 'granted' | 'retry';

class ExecutionEnvironment {
  readonly ready: Promise<InitOutcome>;
  readonly environmentClass: EnvironmentClass;
  /** When it was last put on its function's idle list (performance.now()). */
  idleSince = 0;
  #alive = true;
  readonly #worker: Worker;
  /** The worker thread's kernel id, once it is ready (Linux): its CPU time is read from /proc. */
  #kernelThreadId: number | undefined;
  readonly #onDestroy: ((cpuSeconds: number) => void) | undefined;
  #pending: { requestId: string; settle: (result: InvocationResult) => void; started: number } | undefined;

  /** `onDestroy` gets the CPU seconds the environment used, read just before its thread ends. */
  constructor(
    definition: LambdaFunctionDefinition,
    output: OutputSink | undefined,
    environmentClass: EnvironmentClass,
    onDestroy?: (cpuSeconds: number) => void,
  ) {
    this.environmentClass = environmentClass;
    this.#onDestroy = onDestroy;
    const logStreamName = `${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/[$LATEST]${randomBytes(16).toString('hex')}`;
    const init: WorkerInit = {
      modulePath: definition.modulePath,
      exportName: definition.exportName,
      functionName: definition.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: definition.functionArn,
      memoryLimitInMB: String(definition.memorySize),
      logGroupName: definition.logGroupName,
      logStreamName,
      ...(output ? {} : { discardOutput: true }),
      niceIncrement: environmentClass === 'background' ? BACKGROUND_NICE_INCREMENT : FOREGROUND_NICE_INCREMENT,
    };
    this.#worker = new Worker(workerEntryPoint(), {
      workerData: init,
      // The worker gets a copy: it never sees, nor changes, the runtime's own process.env.
      env: { ...definition.environment, AWS_LAMBDA_LOG_STREAM_NAME: logStreamName },
      execArgv: [],
      stdout: true,
      stderr: true,
      // The function's memory setting bounds the heap: running out kills the environment, as on Lambda.
      // A small young generation: see ENVIRONMENT_YOUNG_GENERATION_MB.
      resourceLimits: {
        maxOldGenerationSizeMb: Math.max(definition.memorySize, 128),
        maxYoungGenerationSizeMb: ENVIRONMENT_YOUNG_GENERATION_MB,
      },
    });
    if (output) {
      forwardLines(this.#worker.stdout, (line) => output(definition.name, 'stdout', line));
      forwardLines(this.#worker.stderr, (line) => output(definition.name, 'stderr', line));
    } else {
      // The worker drops its output itself (discardOutput); anything still sent is read and dropped.
      this.#worker.stdout.resume();
      this.#worker.stderr.resume();
    }

    this.ready = new Promise<InitOutcome>((resolve) => {
      const timer = setTimeout(() => {
        resolve({
          ok: false,
          error: {
            errorType: 'Runtime.InitTimeout',
            errorMessage: `Init phase exceeded ${INIT_TIMEOUT_MS / 1000} seconds`,
            stackTrace: [],
          },
        });
        void this.destroy();
      }, INIT_TIMEOUT_MS);
      const onMessage = (message: WorkerMessage) => {
        if (message.type === 'ready') {
          this.#kernelThreadId = message.kernelThreadId;
          resolve({ ok: true });
        } else if (message.type === 'init-error') resolve({ ok: false, error: message.error });
        else return;
        clearTimeout(timer);
      };
      this.#worker.on('message', onMessage);
      this.#worker.once('error', (error) => {
        clearTimeout(timer);
        resolve({ ok: false, error: { errorType: 'Runtime.ExitError', errorMessage: error.message, stackTrace: [] } });
      });
      this.#worker.once('exit', (code) => {
        clearTimeout(timer);
        resolve({
          ok: false,
          error: { errorType: 'Runtime.ExitError', errorMessage: `Runtime exited during init with exit status ${code}`, stackTrace: [] },
        });
      });
    });

    this.#worker.on('message', (message: WorkerMessage) => {
      const pending = this.#pending;
      if (!pending || (message.type !== 'result' && message.type !== 'error') || message.requestId !== pending.requestId) return;
      const durationMs = Math.round(performance.now() - pending.started);
      if (message.type === 'result') {
        let payload: unknown;
        try {
          payload = message.payload === undefined ? null : JSON.parse(message.payload);
        } catch {
          payload = null;
        }
        pending.settle({ ok: true, requestId: pending.requestId, payload, durationMs });
      } else {
        pending.settle({ ok: false, requestId: pending.requestId, ...message.error, timedOut: false, durationMs });
      }
    });
    // An uncaught exception, an unhandled rejection or running out of memory ends the environment.
    this.#worker.on('error', (error) => {
      this.#alive = false;
      const pending = this.#pending;
      if (pending) {
        const outOfMemory = (error as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
        pending.settle({
          ok: false,
          requestId: pending.requestId,
          errorType: outOfMemory ? 'Runtime.OutOfMemory' : 'Runtime.ExitError',
          errorMessage: `RequestId: ${pending.requestId} Error: Runtime exited with error: ${error.message}`,
          timedOut: false,
          durationMs: Math.round(performance.now() - pending.started),
        });
      }
    });
    this.#worker.on('exit', (code) => {
      this.#alive = false;
      const pending = this.#pending;
      if (pending) {
        pending.settle({
          ok: false,
          requestId: pending.requestId,
          errorType: 'Runtime.ExitError',
          errorMessage: `RequestId: ${pending.requestId} Error: Runtime exited with exit status ${code}`,
          timedOut: false,
          durationMs: Math.round(performance.now() - pending.started),
        });
      }
    });
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** The worker's V8 heap; undefined if it is gone or does not answer within a second. */
  heap(): Promise<WorkerHeap | undefined> {
    if (!this.#alive) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const done = (heap: WorkerHeap | undefined) => {
        clearTimeout(timer);
        this.#worker.off('message', onMessage);
        this.#worker.off('exit', onExit);
        resolve(heap);
      };
      const onMessage = (message: WorkerMessage) => {
        if (message.type === 'heap') done(message.heap);
      };
      const onExit = () => done(undefined);
      const timer = setTimeout(() => done(undefined), HEAP_REPORT_TIMEOUT_MS);
      this.#worker.on('message', onMessage);
      this.#worker.once('exit', onExit);
      const request: HeapRequest = { type: 'heap' };
      this.#worker.postMessage(request);
    });
  }

  invoke(requestId: string, event: string, timeoutMs: number): Promise<InvocationResult> {
    return new Promise<InvocationResult>((resolve) => {
      const started = performance.now();
      const timer = setTimeout(() => {
        // Lambda stops the environment of a timed-out invocation; whatever it was doing ends here.
        this.#pending?.settle({
          ok: false,
          requestId,
          errorType: 'Sandbox.Timedout',
          errorMessage: `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
          timedOut: true,
          // A timer may fire a fraction of a millisecond early by performance.now(); a timed-out
          // invocation lasted its whole timeout, as Lambda reports it.
          durationMs: Math.max(timeoutMs, Math.round(performance.now() - started)),
        });
        void this.destroy();
      }, timeoutMs);
      this.#pending = {
        requestId,
        started,
        settle: (result) => {
          clearTimeout(timer);
          this.#pending = undefined;
          resolve(result);
        },
      };
      const message: InvokeMessage = { type: 'invoke', requestId, event, deadline: Date.now() + timeoutMs };
      this.#worker.postMessage(message);
    });
  }

  /** CPU seconds its thread has used so far (0 where /proc cannot tell: not Linux, or not ready). */
  cpuSeconds(): number {
    return this.#kernelThreadId === undefined ? 0 : (threadCpuSeconds(this.#kernelThreadId) ?? 0);
  }

  async destroy(): Promise<void> {
    if (this.#alive) this.#onDestroy?.(this.cpuSeconds());
    this.#alive = false;
    await this.#worker.terminate();
  }
}

function forwardLines(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
}

let compiledEntryPoint: string | undefined;

/**
 * The worker's entry point must be plain JavaScript (Node 20 cannot apply tsx's loader to a worker's
 * entry), so lambda-worker.ts is compiled once with esbuild into a content-addressed cache file.
 */
function workerEntryPoint(): string {
  if (compiledEntryPoint) return compiledEntryPoint;
  const source = readFileSync(fileURLToPath(new URL('./lambda-worker.ts', import.meta.url)), 'utf8');
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const file = path.join(REPOSITORY_ROOT, 'node_modules', '.cache', 'local-runtime', `lambda-worker-${hash}.mjs`);
  if (!existsSync(file)) {
    const { code } = transformSync(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: 'local/lambda-worker.ts' });
    mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename: a concurrent runtime never loads a half-written file.
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, code);
    renameSync(temporary, file);
  }
  compiledEntryPoint = file;
  return file;
}
