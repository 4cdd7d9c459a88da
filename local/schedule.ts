// EventBridge scheduled rules: invokes a function every `rate(N unit)` with the event EventBridge
// sends. A scale factor speeds the clock up (scale 60: a minute passes in a second).

import { randomUUID } from 'node:crypto';
import type { ScheduledEvent } from 'aws-lambda';
import type { LambdaFunction } from './lambda-environment.js';
import type { InvocationLog } from './invocation-log.js';

export interface ScheduledTarget {
  ruleArn: string;
  scheduleExpression: string;
  function: LambdaFunction;
  /** The target's constant Input (JSON text), sent instead of the scheduled event when present. */
  input?: string;
}

const UNIT_MS: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Milliseconds between runs of `rate(N unit)`, or undefined for an expression not supported here. */
export function rateIntervalMs(expression: string): number | undefined {
  const match = /^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$/.exec(expression.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2]!.replace(/s$/, '')]!;
}

export interface Schedules {
  stop(): Promise<void>;
}

export function startSchedules(options: {
  targets: ScheduledTarget[];
  region: string;
  accountId: string;
  scale: number;
  log: InvocationLog;
}): Schedules {
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<void>>();
  for (const target of options.targets) {
    const interval = rateIntervalMs(target.scheduleExpression);
    if (interval === undefined) {
      options.log.info(`Schedule ${target.scheduleExpression} of ${target.function.name} is not run locally (only rate(...) is)`);
      continue;
    }
    // EventBridge runs a rate rule first one period after it is created, then every period.
    const timer = setInterval(
      () => {
        const run = fire(target, options).finally(() => running.delete(run));
        running.add(run);
      },
      Math.max(1, interval / options.scale),
    );
    timers.push(timer);
  }
  return {
    async stop() {
      timers.forEach(clearInterval);
      await Promise.allSettled([...running]);
    },
  };
}

async function fire(target: ScheduledTarget, options: { region: string; accountId: string; log: InvocationLog }): Promise<void> {
  const event: ScheduledEvent | unknown = target.input
    ? JSON.parse(target.input)
    : ({
        version: '0',
        id: randomUUID(),
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        account: options.accountId,
        time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
        region: options.region,
        resources: [target.ruleArn],
        detail: {},
      } satisfies ScheduledEvent);
  // EventBridge invokes asynchronously: overlapping runs are allowed and nobody waits for the result.
  const result = await target.function.invoke(event);
  options.log.invocation({
    function: target.function.name,
    trigger: `schedule ${target.scheduleExpression}`,
    durationMs: result.durationMs,
    initDurationMs: result.initDurationMs,
    outcome: result.ok ? 'ok' : result.timedOut ? `timeout: ${result.errorMessage}` : `error: ${result.errorType}: ${result.errorMessage}`,
  });
}
