// Where the running `npm start` listens, in `.cache/local-runtime.json`, so that `npm run redrive`
// and `npm run status` find it on whatever ports it was given (`SQS_PORT=4800 npm start`). The
// runtime writes the file once it is ready and removes it when it stops, if the file is still its
// own; a tool ignores a file whose process is gone (a runtime killed with SIGKILL leaves it behind).

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isProcessAlive } from './launcher-watch.js';
import { REPOSITORY_ROOT } from './package-stack.js';

export interface LocalRuntimeState {
  pid: number;
  /** ISO 8601. */
  startedAt: string;
  /** The HTTP API, e.g. http://127.0.0.1:3000. */
  apiUrl: string;
  endpoints: { sqs: string; sns: string; dynamodb: string };
  /** The stage packaged (queue and table names are <service>-<stage>-...). */
  stage: string;
}

/** `.cache/local-runtime.json`; LOCAL_RUNTIME_STATE_FILE names another (tests, two checkouts). */
export function runtimeStatePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOCAL_RUNTIME_STATE_FILE || path.join(REPOSITORY_ROOT, '.cache', 'local-runtime.json');
}

export function writeRuntimeState(state: LocalRuntimeState, file = runtimeStatePath()): void {
  mkdirSync(path.dirname(file), { recursive: true });
  // Write then rename: a tool never reads half a file.
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(temporary, file);
}

/** The state of a runtime that is still running, or undefined (no file, unreadable, or its process gone). */
export function readRuntimeState(file = runtimeStatePath()): LocalRuntimeState | undefined {
  let state: Partial<LocalRuntimeState>;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalRuntimeState>;
  } catch {
    return undefined;
  }
  const complete =
    typeof state.pid === 'number' &&
    typeof state.apiUrl === 'string' &&
    typeof state.stage === 'string' &&
    typeof state.endpoints?.sqs === 'string' &&
    typeof state.endpoints.dynamodb === 'string';
  return complete && isProcessAlive(state.pid!) ? (state as LocalRuntimeState) : undefined;
}

/** Removes the file if `pid` wrote it: a second runtime's file is left alone. Synchronous, for exit paths. */
export function removeRuntimeState(pid = process.pid, file = runtimeStatePath()): void {
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalRuntimeState>;
    if (state.pid === pid) rmSync(file, { force: true });
  } catch {
    // No file, or not one of ours to judge: nothing to remove.
  }
}

/** What a tool talks to when it targets the local runtime. */
export interface LocalTarget {
  apiUrl: string;
  sqsEndpoint: string;
  stage: string;
}

/**
 * Environment variables first (PORT, SQS_ENDPOINT or SQS_PORT, LOCAL_STAGE: what `npm start`
 * itself reads), then the running runtime's state file, then `npm start`'s defaults.
 */
export function localTarget(env: NodeJS.ProcessEnv = process.env, state = readRuntimeState(runtimeStatePath(env))): LocalTarget {
  return {
    apiUrl: env.PORT ? `http://127.0.0.1:${env.PORT}` : (state?.apiUrl ?? 'http://127.0.0.1:3000'),
    sqsEndpoint: env.SQS_ENDPOINT || (env.SQS_PORT ? `http://127.0.0.1:${env.SQS_PORT}` : (state?.endpoints.sqs ?? 'http://127.0.0.1:4566')),
    stage: env.LOCAL_STAGE || (state?.stage ?? 'local'),
  };
}
