import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
// Fault injection for the local runtime and tests: off unless FAULT_* variables are set, which
// serverless.yml never does. It lets a test prove that retries, DLQs and idempotency hold when
// records fail, invocations crash or time out, and publishes are lost.

export interface FaultPlan {
  /** Probability that one record fails with a transient error. */
  transientErrorRate: number;
  /** Probability that an invocation crashes (throws) after handling part of its batch. */
  crashRate: number;
  /** Probability that an invocation hangs with part of its batch in flight, until its timeout stops it. */
  timeoutRate: number;
  /** Added to every invocation, in milliseconds. */
  latencyMs: number;
  /** Probability that an SNS publish fails. */
  publishFailureRate: number;
  seed: number;
}

export class InjectedFault extends Error {
  override name = 'InjectedFault';
}

function rate(name: string): number {
  const value = Number(process.env[name] ?? 0);
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`${name} must be between 0 and 1`);
  return value;
}

let plan: FaultPlan | null | undefined;
let random: () => number = Math.random;

/**
 * The faults asked for by the environment, with those switched on at run time for this function
 * (the switches file, below) over them; null when none are (the normal case).
 */
export function faultPlan(): FaultPlan | null {
  const fromEnvironment = environmentPlan();
  const switched = currentSwitches(Date.now()).functions?.[process.env.AWS_LAMBDA_FUNCTION_NAME ?? ''];
  if (!switched) return fromEnvironment;
  return { ...(fromEnvironment ?? NO_FAULTS), ...switched };
}

const NO_FAULTS: FaultPlan = { transientErrorRate: 0, crashRate: 0, timeoutRate: 0, latencyMs: 0, publishFailureRate: 0, seed: 0 };

function environmentPlan(): FaultPlan | null {
  if (plan !== undefined) return plan;
  const read: FaultPlan = {
    transientErrorRate: rate('FAULT_TRANSIENT_ERROR_RATE'),
    crashRate: rate('FAULT_CRASH_RATE'),
    timeoutRate: rate('FAULT_TIMEOUT_RATE'),
    latencyMs: Number(process.env.FAULT_LATENCY_MS ?? 0) || 0,
    publishFailureRate: rate('FAULT_PUBLISH_FAILURE_RATE'),
    seed: Number(process.env.FAULT_SEED ?? 0) || 0,
  };
  const any = read.transientErrorRate + read.crashRate + read.timeoutRate + read.latencyMs + read.publishFailureRate > 0;
  plan = any ? read : null;
  if (plan) random = seededRandom(plan.seed, process.env.AWS_LAMBDA_LOG_STREAM_NAME ?? '');
  return plan;
}

/** Tests change the environment between cases. */
export function resetFaultPlan(): void {
  plan = undefined;
}

export function chance(probability: number): boolean {
  return probability > 0 && random() < probability;
}

/**
 * mulberry32, salted (here with the execution environment's name): one seed replays the same
 * sequence of decisions for each salt (which environment gets which batch is up to the poller).
 */
export function seededRandom(seed: number, salt = ''): () => number {
  let state = seed >>> 0;
  for (const char of salt) state = Math.imul(state ^ char.charCodeAt(0), 2654435761) >>> 0 || 1;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A number in [0, 1) from the same seeded sequence as `chance`. */
export function fraction(): number {
  return random();
}

/**
 * Blocks this thread for `ms`, its work stopped wherever it stood, without spending CPU: a hung
 * invocation. In a local execution environment (a worker thread) the runtime stops the worker at
 * the function's timeout, as Lambda resets a timed-out environment, so the work never resumes. On a
 * main thread (a test calling a handler in process) it only waits, and the work goes on meanwhile.
 */
export async function hang(ms: number): Promise<void> {
  if (isMainThread) return sleep(ms);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// Outages: a window of time in which every call to one dependency fails, switched on while the
// pipeline runs (`npm run chaos -- --provider-outage 90`, the local console). The chaos run or the
// console writes the windows to a JSON file named by FAULT_OUTAGES_FILE; every execution
// environment reads it, at most every 250 ms, so an outage starts and ends at the same moment in
// all of them. The same file may switch fault rates on for one function (by its deployed name,
// AWS_LAMBDA_FUNCTION_NAME): the console's "faults" switches, with no restart.

export type OutageTarget = 'provider' | 'topic';
export type OutageWindows = Partial<Record<OutageTarget, { from: number; until: number }>>;
/** Rates switched on at run time, per function name, over that function's FAULT_* variables. */
export type SwitchedFaults = Record<string, Partial<Omit<FaultPlan, 'seed'>>>;
export type FaultSwitches = OutageWindows & { functions?: SwitchedFaults };

let outagesReadAt = 0;
let outages: FaultSwitches = {};

function currentSwitches(now: number): FaultSwitches {
  const file = process.env.FAULT_OUTAGES_FILE;
  if (!file) return {};
  if (now - outagesReadAt >= 250) {
    outagesReadAt = now;
    try {
      outages = JSON.parse(readFileSync(file, 'utf8')) as FaultSwitches;
    } catch {
      // Not written yet, or being written: no outage until it can be read.
      outages = {};
    }
  }
  return outages;
}

/** True while an outage of this dependency is on (never on AWS: serverless.yml sets no FAULT_* variable). */
export function inOutage(target: OutageTarget, now: number = Date.now()): boolean {
  const window = currentSwitches(now)[target];
  return window !== undefined && now >= window.from && now < window.until;
}

/** Writes the outage windows (and switched faults) where the execution environments read them (the chaos run, the console). */
export function writeOutages(file: string, windows: FaultSwitches): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(windows));
  // A rename is atomic: a reader sees the old windows or the new ones, never half a file.
  renameSync(`${file}.tmp`, file);
  // This process reads the new windows at once (the others within 250 ms).
  outagesReadAt = 0;
}
