// Where each running `npm start` listens, in `.cache/local-runtime.json`, so that `npm run redrive`,
// `npm run status` and `npm run token` find it on whatever ports it was given (`SQS_PORT=4800 npm
// start`). Several may run at once on different ports: the file lists every one, each runtime adds
// its own entry once it is ready and removes only its own when it stops (the file goes with the
// last one). Readers ignore an entry whose process is gone (a runtime killed with SIGKILL leaves
// its entry behind; the next writer drops it) and pick the runtime on the port a variable names,
// else the one started last. A file from before the list (one runtime's object) still reads.

import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isProcessAlive } from './launcher-watch.js';
import { defaultTemplatePath, REPOSITORY_ROOT } from './package-stack.js';

export interface LocalRuntimeState {
  pid: number;
  /** ISO 8601. */
  startedAt: string;
  /** The HTTP API, e.g. http://127.0.0.1:3000. */
  apiUrl: string;
  endpoints: { sqs: string; sns: string; dynamodb: string };
  /** The stage packaged (queue and table names are <service>-<stage>-...). */
  stage: string;
  /** The packaged template it runs: where the tools read its consumers. Absent from older files. */
  templatePath?: string;
}

/** The file: every runtime that said it runs, oldest first. */
interface RuntimeStateFile {
  runtimes: LocalRuntimeState[];
}

/** `.cache/local-runtime.json`; LOCAL_RUNTIME_STATE_FILE names another (tests, two checkouts). */
export function runtimeStatePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOCAL_RUNTIME_STATE_FILE || path.join(REPOSITORY_ROOT, '.cache', 'local-runtime.json');
}

function isComplete(state: unknown): state is LocalRuntimeState {
  const candidate = state as Partial<LocalRuntimeState> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.pid === 'number' &&
    typeof candidate.startedAt === 'string' &&
    typeof candidate.apiUrl === 'string' &&
    typeof candidate.stage === 'string' &&
    typeof candidate.endpoints?.sqs === 'string' &&
    typeof candidate.endpoints.dynamodb === 'string'
  );
}

/** Every complete entry of the file, live or not; none when it is missing or unreadable. */
function readEntries(file: string): LocalRuntimeState[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  const runtimes = (parsed as Partial<RuntimeStateFile> | null)?.runtimes;
  // The file before the list: one runtime's object.
  const entries: unknown[] = Array.isArray(runtimes) ? runtimes : [parsed];
  return entries.filter(isComplete);
}

function writeEntries(file: string, runtimes: LocalRuntimeState[]): void {
  if (runtimes.length === 0) {
    rmSync(file, { force: true });
    return;
  }
  // Write then rename: a tool never reads half a file.
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ runtimes } satisfies RuntimeStateFile, null, 2)}\n`);
  renameSync(temporary, file);
}

/** A pause without giving up the thread: the exit path that removes an entry cannot await. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs a read-modify-write of the file while holding `<file>.lock`, so that two runtimes starting
 * or stopping at once do not drop each other's entry. A lock whose holder is gone is taken over;
 * after 2 s of waiting (or when no lock can be made at all) the update goes ahead without it.
 */
function withLock(file: string, update: () => void): void {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 2000;
  let held = false;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      held = true;
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || Date.now() > deadline) break;
    }
    if (lockIsStale(lock)) rmSync(lock, { force: true });
    else sleepSync(10);
  }
  try {
    update();
  } finally {
    if (held) rmSync(lock, { force: true });
  }
}

function lockIsStale(lock: string): boolean {
  try {
    const owner = Number(readFileSync(lock, 'utf8'));
    // Empty: just made, its pid not written yet, unless it has stayed empty for a second.
    return owner > 0 ? !isProcessAlive(owner) : Date.now() - statSync(lock).mtimeMs > 1000;
  } catch {
    // Gone already: try again.
    return false;
  }
}

/**
 * Adds `state` to the file (replacing an entry of the same pid), dropping entries whose process
 * is gone. Synchronous.
 */
export function writeRuntimeState(state: LocalRuntimeState, file = runtimeStatePath()): void {
  mkdirSync(path.dirname(file), { recursive: true });
  withLock(file, () => {
    const others = readEntries(file).filter((entry) => entry.pid !== state.pid && isProcessAlive(entry.pid));
    writeEntries(file, [...others, state]);
  });
}

/**
 * Removes the entry of `pid`, and with it entries whose process is gone; the file goes with the
 * last entry. Other runtimes' entries are left alone. Synchronous, for exit paths.
 */
export function removeRuntimeState(pid = process.pid, file = runtimeStatePath()): void {
  try {
    withLock(file, () => {
      const entries = readEntries(file);
      if (!entries.some((entry) => entry.pid === pid)) return;
      writeEntries(
        file,
        entries.filter((entry) => entry.pid !== pid && isProcessAlive(entry.pid)),
      );
    });
  } catch {
    // Nothing to remove, or nowhere to write: leave it; readers ignore entries of gone processes.
  }
}

/** The runtimes still running, the most recently started first. */
export function readRuntimeStates(file = runtimeStatePath()): LocalRuntimeState[] {
  return (
    readEntries(file)
      .filter((entry) => isProcessAlive(entry.pid))
      .map((entry, index) => ({ entry, index }))
      // Later start first; of two started in the same millisecond, the one added later.
      .sort((a, b) => b.entry.startedAt.localeCompare(a.entry.startedAt) || b.index - a.index)
      .map(({ entry }) => entry)
  );
}

const portOf = (url: string): number | undefined => {
  try {
    const { port, protocol } = new URL(url);
    return port ? Number(port) : protocol === 'https:' ? 443 : 80;
  } catch {
    return undefined;
  }
};

/** The running runtime listening on `port` (API, SNS/SQS or DynamoDB), if the file lists one. */
export function runtimeOnPort(port: number, states: LocalRuntimeState[]): LocalRuntimeState | undefined {
  return states.find((state) =>
    [state.apiUrl, state.endpoints.sqs, state.endpoints.sns, state.endpoints.dynamodb].some((url) => portOf(url) === port),
  );
}

/**
 * The runtime a tool means, of those running (most recent first): with PORT, the one whose API is
 * on it; else with SQS_ENDPOINT or SQS_PORT, the one whose SNS/SQS is there; none if the port named
 * is not listed (a runtime this file does not know). With no port named, the one started last.
 */
export function pickRuntime(states: LocalRuntimeState[], env: NodeJS.ProcessEnv = process.env): LocalRuntimeState | undefined {
  if (env.PORT) return states.find((state) => portOf(state.apiUrl) === Number(env.PORT));
  if (env.SQS_ENDPOINT) return states.find((state) => state.endpoints.sqs.replace(/\/+$/, '') === env.SQS_ENDPOINT!.replace(/\/+$/, ''));
  if (env.SQS_PORT) return states.find((state) => portOf(state.endpoints.sqs) === Number(env.SQS_PORT));
  return states[0];
}

/** The runtime a tool means (pickRuntime), from the file. */
export function readRuntimeState(file = runtimeStatePath(), env: NodeJS.ProcessEnv = process.env): LocalRuntimeState | undefined {
  return pickRuntime(readRuntimeStates(file), env);
}

/** What a tool talks to when it targets the local runtime. */
export interface LocalTarget {
  apiUrl: string;
  sqsEndpoint: string;
  stage: string;
  /** The template the runtime runs, or where `npm start` packages the stage's. */
  templatePath: string;
}

/**
 * Environment variables first (PORT, SQS_ENDPOINT or SQS_PORT, LOCAL_STAGE: what `npm start`
 * itself reads), then the runtime they name (or the last started) from the state file, then
 * `npm start`'s defaults.
 */
export function localTarget(env: NodeJS.ProcessEnv = process.env, states = readRuntimeStates(runtimeStatePath(env))): LocalTarget {
  const state = pickRuntime(states, env);
  const stage = env.LOCAL_STAGE || (state?.stage ?? 'local');
  return {
    apiUrl: env.PORT ? `http://127.0.0.1:${env.PORT}` : (state?.apiUrl ?? 'http://127.0.0.1:3000'),
    sqsEndpoint:
      env.SQS_ENDPOINT || (env.SQS_PORT ? `http://127.0.0.1:${env.SQS_PORT}` : (state?.endpoints.sqs ?? 'http://127.0.0.1:4566')),
    stage,
    templatePath: (state?.stage === stage ? state.templatePath : undefined) ?? defaultTemplatePath(stage),
  };
}
