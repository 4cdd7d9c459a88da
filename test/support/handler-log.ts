// What the packaged handlers logged, read back from the lines the local pipeline hands to its
// `write` option (`  <function> | <JSON line>`), and a deadline-bounded wait for a condition.
// A worker's stdout reaches the runtime apart from its invocation result, so a line may arrive a
// little after the invocation that wrote it has ended: tests wait for the lines they need.

/** One JSON log line of a handler (Powertools Logger), with the function that wrote it. */
export interface HandlerLogEntry {
  /** The serverless.yml key of the function (inventory, payment, ...). */
  fn: string;
  /** The line's `timestamp`, in epoch milliseconds. */
  at: number;
  level: string;
  message: string;
  [key: string]: unknown;
}

const HANDLER_LINE = /^ {2}(\w+) \| (\{.*\})\s*$/;

/** The handlers' JSON log lines among the pipeline's output lines, in the order they arrived. */
export function handlerEntries(lines: readonly string[]): HandlerLogEntry[] {
  const entries: HandlerLogEntry[] = [];
  for (const line of lines) {
    const match = HANDLER_LINE.exec(line);
    if (!match) continue;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(match[2]!) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof json.message !== 'string' || typeof json.timestamp !== 'string') continue;
    entries.push({ ...json, fn: match[1]!, at: Date.parse(json.timestamp), level: String(json.level), message: json.message });
  }
  return entries;
}

/**
 * Calls `probe` until it returns something other than undefined or false, and returns that; throws
 * naming `what` (and the last value `describe` gives) if the deadline passes first.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs: number; intervalMs?: number; describe?: () => unknown },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const last = options.describe ? `; last seen: ${JSON.stringify(options.describe())}` : '';
      throw new Error(`Timed out after ${options.timeoutMs} ms waiting for ${what}${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}
