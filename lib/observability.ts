import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@aws-lambda-powertools/logger';
import type { ConstructorOptions, LogAttributes, LogItemExtraInput, LogItemMessage } from '@aws-lambda-powertools/logger/types';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { maskCardData } from './card-data.js';

// Powertools reads its settings (service name, namespace, log level) from the POWERTOOLS_*
// variables that serverless.yml sets, so these objects need no arguments.

/**
 * Keys of the record being processed. A consumer handles the records of a batch in parallel, so a
 * key set on the logger (appendKeys, setCorrelationId) would show up on the lines of the other
 * records; Powertools Logger 2.x scopes its keys per invocation, not per record. Each record runs
 * inside its own scope instead (`withLogKeys`), and every line logged while it runs, in the
 * consumer or in the domain modules it calls, carries that record's keys.
 */
const recordScope = /* @__PURE__ */ new AsyncLocalStorage<LogAttributes>();

/** Masks card tokens and card numbers in every string value of a log line, whatever key it is under. */
export function maskSecrets(_key: string, value: unknown): unknown {
  return typeof value === 'string' ? maskCardData(value) : value;
}

class PipelineLogger extends Logger {
  // The record's keys come first: the logger's own keys give way to them, keys passed with the call win.
  override trace(input: LogItemMessage, ...extraInput: LogItemExtraInput): void {
    super.trace(input, ...withRecordKeys(extraInput));
  }
  override debug(input: LogItemMessage, ...extraInput: LogItemExtraInput): void {
    super.debug(input, ...withRecordKeys(extraInput));
  }
  override info(input: LogItemMessage, ...extraInput: LogItemExtraInput): void {
    super.info(input, ...withRecordKeys(extraInput));
  }
  override warn(input: LogItemMessage, ...extraInput: LogItemExtraInput): void {
    super.warn(input, ...withRecordKeys(extraInput));
  }
  override error(input: LogItemMessage, ...extraInput: LogItemExtraInput): void {
    super.error(input, ...withRecordKeys(extraInput));
  }
  override critical(input: LogItemMessage, ...extraInput: LogItemExtraInput): void {
    super.critical(input, ...withRecordKeys(extraInput));
  }
  protected override createLogger(options?: ConstructorOptions): Logger {
    return new PipelineLogger({ jsonReplacerFn: maskSecrets, ...options });
  }
}

function withRecordKeys(extraInput: LogItemExtraInput): LogItemExtraInput {
  const keys = recordScope.getStore();
  if (!keys) return extraInput;
  // As Powertools itself files a lone Error or string passed with a message.
  const extra = extraInput.map((item) => (item instanceof Error ? { error: item } : typeof item === 'string' ? { extra: item } : item));
  return [{ ...keys }, ...extra];
}

// Pure, like `recordScope` and `metrics`: a bundle that never logs (getInventory) leaves the logger
// out; making one has no effect anyone sees.
export const logger: Logger = /* @__PURE__ */ new PipelineLogger({ jsonReplacerFn: maskSecrets });

/**
 * Runs `fn` with `keys` on every log line it causes, nested scopes adding to their parent's keys.
 * `correlation_id` among them replaces the logger's own for the lines of this scope only.
 */
export function withLogKeys<T>(keys: LogAttributes, fn: () => T): T {
  return recordScope.run({ ...recordScope.getStore(), ...keys }, fn);
}

/** Adds keys to the current scope (learnt while it runs, such as the event type once parsed). */
export function appendLogKeys(keys: LogAttributes): void {
  const scope = recordScope.getStore();
  if (scope) Object.assign(scope, keys);
  else logger.appendKeys(keys);
}

/**
 * Metrics flushed by the handlers' logMetrics middleware, with the `service` dimension. The queue
 * consumers flush their own instance instead, which adds a `consumer` dimension
 * (lib/queue-consumer.ts). Pure: a function that never emits metrics (getOrder) leaves Powertools
 * Metrics out of its bundle.
 */
export const metrics = /* @__PURE__ */ new Metrics();

/**
 * A metric written at once, with the `service` dimension only (plus any added to it) whichever
 * function emits it: what an alarm on an order metric expects (resources/monitoring.yml).
 */
export function singleMetric(): Metrics {
  return new Metrics({ singleMetric: true });
}
