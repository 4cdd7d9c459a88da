// `GET /_local/status` of the local runtime: each consumer queue's depth (visible, in flight,
// delayed, age of the oldest message) and its dead-letter queue's, read from fauxqs without
// touching a message, and per function the invocations and records processed and failed in the
// last minute, from the runtime's own counters. `npm run status` prints it (scripts/status.ts).

import type { FauxqsServer } from 'fauxqs';
import type { FunctionStats } from './lambda-environment.js';
import type { ProvisionedQueue } from './provision.js';
import type { EventSourceStats } from './sqs-poller.js';

export interface QueueDepth {
  name: string;
  visible: number;
  inFlight: number;
  delayed: number;
  /** Seconds since the oldest message still in the queue was sent; null when it is empty. */
  oldestMessageAgeSeconds: number | null;
}

export interface QueueStatus extends QueueDepth {
  /** The dead-letter queue named by the queue's redrive policy. */
  dlq: QueueDepth | null;
}

export interface FunctionActivity {
  name: string;
  /** Invocations in the window. */
  invocations: number;
  /** Records handled and deleted (an SQS consumer), or invocations that succeeded (any other function). */
  processed: number;
  /** Records left on the queue by a failed or partly failed batch, or invocations that failed. */
  failed: number;
  /** Invocations running now. */
  running: number;
}

export interface PipelineStatus {
  /** When the figures were read (ISO 8601). */
  at: string;
  /** Length of the window of the function counts: 60 s, less while the runtime is younger. */
  windowSeconds: number;
  /** The queues some function consumes, with their dead-letter queues. */
  queues: QueueStatus[];
  functions: FunctionActivity[];
}

/** What the runtime reports of its functions and event source mappings. */
export interface RuntimeCounters {
  functions: Record<string, FunctionStats>;
  eventSources: Array<{ queueName: string; functionName: string; stats: EventSourceStats }>;
}

export interface LocalStatusOptions {
  fauxqs: FauxqsServer;
  queues: Record<string, ProvisionedQueue>;
  counters: () => RuntimeCounters;
  windowSeconds?: number;
  now?: () => number;
}

export interface LocalStatus {
  snapshot(): PipelineStatus;
  /** Records the counters now; a timer does it every second. */
  sample(): void;
  stop(): void;
}

interface Sample {
  at: number;
  counters: RuntimeCounters;
}

/**
 * Samples the runtime's counters every second and keeps a minute of them: a function's count in
 * the last minute is its counter now minus its counter a minute ago (zero at start).
 */
export function startLocalStatus(options: LocalStatusOptions): LocalStatus {
  const now = options.now ?? Date.now;
  const windowMs = (options.windowSeconds ?? 60) * 1000;
  const started = now();
  const samples: Sample[] = [];
  const sample = () => {
    const at = now();
    samples.push({ at, counters: options.counters() });
    // Keep the newest sample that is at least a window old, and everything after it.
    while (samples.length > 1 && samples[1]!.at <= at - windowMs) samples.shift();
  };
  const timer = setInterval(sample, 1000);
  timer.unref();

  return {
    snapshot() {
      const at = now();
      const current = options.counters();
      // The newest sample at least a window old; none while the runtime is younger than the
      // window: then since the start, when every counter was 0.
      const since = [...samples].reverse().find((s) => s.at <= at - windowMs);
      return {
        at: new Date(at).toISOString(),
        windowSeconds: Math.round(Math.min(windowMs, at - (since?.at ?? started)) / 1000),
        queues: consumerQueues(options.fauxqs, options.queues, current, at),
        functions: functionActivity(current, since?.counters),
      };
    },
    sample,
    stop: () => clearInterval(timer),
  };
}

/** The queues some function consumes (and any other queue with a dead-letter queue), with their DLQs. */
function consumerQueues(
  fauxqs: FauxqsServer,
  queues: Record<string, ProvisionedQueue>,
  counters: RuntimeCounters,
  at: number,
): QueueStatus[] {
  const consumed = new Set(counters.eventSources.map((source) => source.queueName));
  const nameOfUrl = new Map(Object.entries(queues).map(([name, queue]) => [queue.url, name]));
  return Object.entries(queues)
    .filter(([name, queue]) => consumed.has(name) || queue.dlqUrl !== undefined)
    .map(([name, queue]) => {
      const dlqName = queue.dlqUrl ? nameOfUrl.get(queue.dlqUrl) : undefined;
      return { ...queueDepth(fauxqs, name, at), dlq: dlqName ? queueDepth(fauxqs, dlqName, at) : null };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** What GetQueueAttributes would answer, counted from fauxqs's non-destructive inspection. */
export function queueDepth(fauxqs: Pick<FauxqsServer, 'inspectQueue'>, name: string, at: number = Date.now()): QueueDepth {
  const inspected = fauxqs.inspectQueue(name);
  if (!inspected) return { name, visible: 0, inFlight: 0, delayed: 0, oldestMessageAgeSeconds: null };
  const { ready, delayed, inflight } = inspected.messages;
  // A message whose visibility timeout has run out is visible again, even before fauxqs notices.
  const expired = inflight.filter((entry) => entry.visibilityDeadline <= at).length;
  const sent = [...ready, ...delayed, ...inflight.map((entry) => entry.message)].map((message) => message.sentTimestamp);
  return {
    name,
    visible: ready.length + expired,
    inFlight: inflight.length - expired,
    delayed: delayed.length,
    oldestMessageAgeSeconds: sent.length > 0 ? Math.max(0, Math.floor((at - Math.min(...sent)) / 1000)) : null,
  };
}

function functionActivity(current: RuntimeCounters, baseline: RuntimeCounters | undefined): FunctionActivity[] {
  return Object.entries(current.functions)
    .map(([name, stats]) => {
      const before = baseline?.functions[name];
      const invocations = stats.invocations - (before?.invocations ?? 0);
      const sources = current.eventSources.filter((source) => source.functionName === name);
      if (sources.length > 0) {
        const delta = (pick: (stats: EventSourceStats) => number) =>
          sources.reduce((sum, source) => {
            const old = baseline?.eventSources.find((s) => s.queueName === source.queueName && s.functionName === name);
            return sum + pick(source.stats) - (old ? pick(old.stats) : 0);
          }, 0);
        return { name, invocations, processed: delta((s) => s.deleted), failed: delta((s) => s.failedRecords), running: stats.running };
      }
      const failed = stats.errors - (before?.errors ?? 0);
      return { name, invocations, processed: invocations - failed, failed, running: stats.running };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}
