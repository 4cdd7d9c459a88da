// The runtime's own output: one line per invocation (what ran, why, how it ended), plus the lines
// the handlers write, prefixed with the function's name.

import { maskCardData } from '../lib/card-data.js';

export interface InvocationLine {
  function: string;
  /** What caused the invocation: `http POST /orders`, `sqs <queue>`, `schedule rate(1 minute)`. */
  trigger: string;
  batchSize?: number;
  failures?: number;
  durationMs: number;
  initDurationMs?: number | undefined;
  outcome: string;
}

export interface InvocationLog {
  invocation(line: InvocationLine): void;
  info(message: string): void;
  error(message: string): void;
  /** A line a handler wrote to its stdout or stderr. */
  output(functionName: string, stream: 'stdout' | 'stderr', line: string): void;
  /**
   * True when output() discards every line (quiet): the execution environments then drop what
   * their handlers write where it is written, instead of sending it to this thread to be dropped.
   */
  readonly discardsOutput?: boolean;
}

export function createInvocationLog(options: { quiet?: boolean; write?: (line: string) => void }): InvocationLog {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const writeError = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (options.quiet) {
    const ignore = () => {};
    return { invocation: ignore, info: ignore, error: ignore, output: ignore, discardsOutput: true };
  }
  return {
    discardsOutput: false,
    invocation(line) {
      // The trigger holds the request path, which is the client's text: no card data in the log.
      const parts = [`λ ${line.function}`, maskCardData(line.trigger)];
      if (line.batchSize !== undefined) parts.push(`batch=${line.batchSize}`);
      if (line.failures !== undefined) parts.push(`failures=${line.failures}`);
      parts.push(`${line.durationMs}ms`);
      if (line.initDurationMs !== undefined) parts.push(`(cold start, init ${line.initDurationMs}ms)`);
      parts.push(line.outcome);
      write(parts.join(' '));
    },
    info: write,
    error: writeError,
    output(functionName, stream, line) {
      (stream === 'stdout' ? write : writeError)(`  ${functionName} | ${line}`);
    },
  };
}

/** A handler's log line as the runtime received it, kept for the console (GET /_local/console/logs). */
export interface RecentLine {
  at: string;
  function: string;
  line: string;
}

/**
 * The log, also keeping the last `limit` lines the handlers wrote (none when the log discards
 * them: a quiet runtime's environments drop their lines where they are written).
 */
export function keepingRecentLines(log: InvocationLog, limit: number): { log: InvocationLog; recent: () => RecentLine[] } {
  const lines: RecentLine[] = [];
  return {
    log: {
      ...log,
      output(functionName, stream, line) {
        lines.push({ at: new Date().toISOString(), function: functionName, line: maskCardData(line) });
        if (lines.length > limit) lines.splice(0, lines.length - limit);
        log.output(functionName, stream, line);
      },
    },
    recent: () => [...lines],
  };
}
