// Fault injection for the local runtime and tests: off unless FAULT_* variables are set, which
// serverless.yml never does. It lets a test prove that retries, DLQs and idempotency hold when
// records fail, invocations crash or time out, and publishes are lost.

export interface FaultPlan {
  /** Probability that one record fails with a transient error. */
  transientErrorRate: number;
  /** Probability that an invocation crashes (throws) after handling part of its batch. */
  crashRate: number;
  /** Probability that an invocation outlives its timeout after handling part of its batch. */
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

/** The faults asked for by the environment, or null when none are (the normal case). */
export function faultPlan(): FaultPlan | null {
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
  for (const char of salt) state = (Math.imul(state ^ char.charCodeAt(0), 2654435761) >>> 0) || 1;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
