// The command lines of the npm run tools (chaos, bench, redrive, status): node:util parseArgs in
// strict mode, so an unknown flag, a missing value or a stray argument is refused instead of
// silently ignored, and typed checks of the values. A refusal names the flag; the tool prints it
// with its usage and exits 2.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pathToFileURL } from 'node:url';

/** A command line the tool does not accept; the message names the flag or argument at fault. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type CommandLineConfig = Omit<ParseArgsConfig, 'args' | 'strict'>;

/** A value that reads as a negative number (`-60`, `-0.5`), and so not as a flag. */
const NEGATIVE_NUMBER = /^-(\d+(\.\d*)?|\.\d+)$/;

/**
 * parseArgs with strict: true; its errors become UsageErrors with a short message.
 * `negativeNumbers` names the options (without `--`) whose value may be a negative number:
 * parseArgs refuses `--expires-in -60` as ambiguous (a value starting with `-`), so for those
 * options alone a following argument that reads as a negative number is joined to the flag
 * (`--expires-in=-60`, which parseArgs takes).
 */
export function parseCommandLine<const T extends CommandLineConfig>(
  args: string[],
  config: T,
  { negativeNumbers = [] }: { negativeNumbers?: readonly string[] } = {},
): ReturnType<typeof parseArgs<T & { args: string[]; strict: true }>> {
  const joined: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') {
      // Everything after `--` is positional, left as it is.
      joined.push(...args.slice(index));
      break;
    }
    const next = args[index + 1];
    if (arg.startsWith('--') && negativeNumbers.includes(arg.slice(2)) && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      joined.push(`${arg}=${next}`);
      index++;
    } else {
      joined.push(arg);
    }
  }
  try {
    return parseArgs({ ...config, args: joined, strict: true });
  } catch (error) {
    throw new UsageError(describeParseError(error));
  }
}

function describeParseError(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  // Node's own message goes on about positionals after `--`; the flag is what matters.
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'([^']+)'/.exec(message)?.[1];
    if (flag) return `unknown flag ${flag}`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const argument = /'([^']*)'/.exec(message)?.[1];
    if (argument !== undefined) return `unexpected argument ${JSON.stringify(argument)}`;
  }
  if (code?.startsWith('ERR_PARSE_ARGS_')) return message;
  throw error;
}

/**
 * The flags that pick the stack a tool talks to (scripts/stack-target.ts): `--aws`,
 * `--stage NAME`, `--region R`. Here rather than there, so that a tool reads them without
 * loading the AWS SDK.
 */
export const TARGET_OPTIONS = {
  aws: { type: 'boolean', default: false },
  stage: { type: 'string' },
  region: { type: 'string' },
} as const;

export interface TargetFlags {
  aws: boolean;
  stage?: string | undefined;
  region?: string | undefined;
}

/**
 * A whole number within bounds, or undefined when the flag was not given. Digits only, after a
 * `-` when the bounds allow negatives: `1e3`, `0x10`, `2.0`, `+1` and an empty value are refused
 * rather than read as numbers.
 */
export function wholeNumber(flag: string, raw: string | undefined, bounds: { min: number; max?: number }): number | undefined {
  if (raw === undefined) return undefined;
  const value = (bounds.min < 0 ? /^-?\d+$/ : /^\d+$/).test(raw) ? Number(raw) : Number.NaN;
  const range = bounds.max === undefined ? `at least ${bounds.min}` : `from ${bounds.min} to ${bounds.max}`;
  if (!Number.isSafeInteger(value) || value < bounds.min || (bounds.max !== undefined && value > bounds.max)) {
    throw new UsageError(`${flag} must be a whole number ${range}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Whole numbers separated by commas (`8,32,64`), each within bounds. */
export function wholeNumberList(flag: string, raw: string | undefined, bounds: { min: number; max?: number }): number[] | undefined {
  if (raw === undefined) return undefined;
  try {
    return raw.split(',').map((part) => wholeNumber(flag, part.trim(), bounds)!);
  } catch {
    throw new UsageError(`${flag} must be whole numbers of at least ${bounds.min} separated by commas, not ${JSON.stringify(raw)}`);
  }
}

/** A decimal number within bounds (`0.05`, `.5`, `2`); no exponents, signs or hex. */
export function decimalNumber(
  flag: string,
  raw: string | undefined,
  bounds: { min: number; max?: number; minExclusive?: boolean },
): number | undefined {
  if (raw === undefined) return undefined;
  const value = /^(\d+(\.\d*)?|\.\d+)$/.test(raw) ? Number(raw) : Number.NaN;
  const low = bounds.minExclusive ? value <= bounds.min : value < bounds.min;
  if (!Number.isFinite(value) || low || (bounds.max !== undefined && value > bounds.max)) {
    const above = bounds.minExclusive ? `above ${bounds.min}` : `at least ${bounds.min}`;
    const range = bounds.max === undefined ? above : `${above} and at most ${bounds.max}`;
    throw new UsageError(`${flag} must be a number ${range}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

/** A probability, from 0 to 1. */
export function rate(flag: string, raw: string | undefined): number | undefined {
  return decimalNumber(flag, raw, { min: 0, max: 1 });
}

/** An http(s) URL, without a trailing slash. */
export function httpUrl(flag: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${flag} must be a URL such as http://127.0.0.1:3000, not ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`${flag} must be an http or https URL, not ${JSON.stringify(raw)}`);
  return raw.replace(/\/+$/, '');
}

/** A non-empty value of a string flag. */
export function nonEmpty(flag: string, raw: string | undefined): string | undefined {
  if (raw !== undefined && raw.trim() === '') throw new UsageError(`${flag} needs a value`);
  return raw;
}

/**
 * Reads a command line with `read`; on a UsageError prints it and the usage to stderr and exits
 * 2 (what a command line refused by its tool usually exits with).
 */
export function readCommandLine<T>(usage: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n\n${usage}\n`);
    process.exit(2);
  }
}

/** True when `error`, or an error it was caused by, is a refused connection (nothing listens there). */
export function isConnectionRefused(error: unknown): boolean {
  // fetch wraps it (TypeError: fetch failed, with the cause); the AWS SDK passes it on as it is.
  for (let depth = 0, cause = error; depth < 5 && typeof cause === 'object' && cause !== null; depth++) {
    if ((cause as NodeJS.ErrnoException).code === 'ECONNREFUSED') return true;
    if (cause instanceof AggregateError && cause.errors.some(isConnectionRefused)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

/** What a tool says when nothing answers where it looked for `npm start`: where, and what to do. */
export function noLocalRuntime(address: string, nameIt: string): string {
  return `No local runtime answers at ${address}: start it with \`npm start\`, or name the one running with ${nameIt}.`;
}

/** True when the module at `moduleUrl` is the script node was started with (not imported by a test). */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href;
}
