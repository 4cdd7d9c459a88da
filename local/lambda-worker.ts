// Runs inside one worker thread: one Lambda execution environment. It loads the handler module once
// (the init phase) and then runs one invocation at a time, as the Node.js Lambda runtime does.
//
// This file is compiled on its own and loaded as the worker's entry point, so it may import only
// Node built-ins at run time (type-only imports are erased).

import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { getHeapStatistics } from 'node:v8';

export interface WorkerInit {
  modulePath: string;
  exportName: string;
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  logGroupName: string;
  logStreamName: string;
  /**
   * Nobody reads this environment's output (a quiet runtime): what the handler writes to stdout
   * and stderr is dropped here, as written, rather than sent to the main thread to be dropped there.
   */
  discardOutput?: boolean;
  /**
   * Added to this environment's thread's nice value before init (FOREGROUND_NICE_INCREMENT and
   * BACKGROUND_NICE_INCREMENT in lambda-environment.ts). Undefined or 0: the process's own.
   */
  niceIncrement?: number;
}

export interface InvokeMessage {
  type: 'invoke';
  requestId: string;
  /** JSON text of the event: Lambda hands the runtime serialised events too. */
  event: string;
  /** Epoch milliseconds at which the invocation times out. */
  deadline: number;
}

/** The runtime asks an environment for its V8 heap (`npm run bench`, GET /_local/memory). */
export interface HeapRequest {
  type: 'heap';
}

/** This environment's own V8 heap (a worker thread has its own isolate), in bytes. */
export interface WorkerHeap {
  totalBytes: number;
  usedBytes: number;
}

export interface SerializedError {
  errorType: string;
  errorMessage: string;
  stackTrace: string[];
}

export type WorkerMessage =
  /** kernelThreadId: so that the runtime can read the environment's CPU time (local/thread-cpu.ts). */
  | { type: 'ready'; kernelThreadId?: number }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'result'; requestId: string; payload: string | undefined }
  | { type: 'error'; requestId: string; error: SerializedError }
  | { type: 'heap'; heap: WorkerHeap };

type Handler = (event: unknown, context: unknown, callback?: (error?: unknown, result?: unknown) => void) => unknown;

function serializeError(error: unknown, fallbackType: string): SerializedError {
  if (error instanceof Error) {
    return {
      errorType: error.name && error.name !== 'Error' ? error.name : error.constructor?.name || fallbackType,
      errorMessage: error.message,
      stackTrace: (error.stack ?? '')
        .split('\n')
        .slice(1)
        .map((line) => line.trim()),
    };
  }
  return {
    errorType: fallbackType,
    errorMessage: typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)),
    stackTrace: [],
  };
}

/**
 * The streams stay what they are to the handler (writable, a write returns true and calls back,
 * console and loggers work as before); only the bytes go nowhere, as to /dev/null.
 */
function discardWrites(streams: NodeJS.WriteStream[]): void {
  for (const stream of streams) {
    const writable = stream as unknown as { _write: unknown; _writev: unknown };
    writable._write = (_chunk: unknown, _encoding: unknown, callback: () => void) => callback();
    writable._writev = (_chunks: unknown, callback: () => void) => callback();
  }
}

/** The kernel's id of this thread (Linux: /proc/thread-self); undefined elsewhere. */
function kernelThreadId(): number | undefined {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(threadId) && threadId > 0 ? threadId : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lowers this thread's scheduling priority, and this thread's alone: on Linux setpriority() with
 * PRIO_PROCESS and a thread id applies to that thread (man 2 setpriority, "BUGS"), and
 * /proc/thread-self names it. Elsewhere (macOS has no /proc) it does nothing: the environment runs at
 * the process's priority, as every environment did before. Unprivileged, a nice value can only go
 * up (never back), so an environment keeps its priority for life.
 */
function lowerThreadPriority(threadId: number | undefined, increment: number): void {
  if (threadId === undefined) return;
  try {
    setPriority(threadId, Math.min(19, getPriority(threadId) + increment));
  } catch {
    // Not permitted here (a sandbox): the environment keeps the process's priority.
  }
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('lambda-worker must run in a worker thread');
  const init = workerData as WorkerInit;
  const post = (message: WorkerMessage) => port.postMessage(message);

  if (init.discardOutput) discardWrites([process.stdout, process.stderr]);
  // Read once: the priority below and the ready message (the runtime reads its CPU time) both need it.
  const threadId = kernelThreadId();
  // Before init: a background environment's cold start yields the CPU too.
  if (init.niceIncrement) lowerThreadPriority(threadId, init.niceIncrement);

  // NODE_OPTIONS from the function's environment cannot reach a worker; honour the one that matters.
  if ((process.env.NODE_OPTIONS ?? '').includes('--enable-source-maps')) process.setSourceMapsEnabled(true);

  let handler: Handler;
  try {
    const url = pathToFileURL(init.modulePath).href;
    // A TypeScript handler (tests, or running from source) goes through tsx; bundles load natively.
    const module = (
      /\.[cm]?ts$/.test(init.modulePath) ? await (await import('tsx/esm/api')).tsImport(url, import.meta.url) : await import(url)
    ) as Record<string, unknown>;
    const exported = module[init.exportName];
    if (typeof exported !== 'function') {
      post({
        type: 'init-error',
        error: {
          errorType: 'Runtime.HandlerNotFound',
          errorMessage: `${init.modulePath}.${init.exportName} is undefined or not exported`,
          stackTrace: [],
        },
      });
      return;
    }
    handler = exported as Handler;
  } catch (error) {
    post({ type: 'init-error', error: serializeError(error, 'Runtime.ImportModuleError') });
    return;
  }

  port.on('message', (message: InvokeMessage | HeapRequest) => {
    if (message.type === 'heap') {
      // Answered between two turns of the event loop: an invocation awaiting I/O does not delay it.
      const { total_heap_size, used_heap_size } = getHeapStatistics();
      post({ type: 'heap', heap: { totalBytes: total_heap_size, usedBytes: used_heap_size } });
      return;
    }
    void invoke(message);
  });
  post(threadId === undefined ? { type: 'ready' } : { type: 'ready', kernelThreadId: threadId });

  async function invoke(message: InvokeMessage): Promise<void> {
    const context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: init.functionName,
      functionVersion: init.functionVersion,
      invokedFunctionArn: init.invokedFunctionArn,
      memoryLimitInMB: init.memoryLimitInMB,
      awsRequestId: message.requestId,
      logGroupName: init.logGroupName,
      logStreamName: init.logStreamName,
      getRemainingTimeInMillis: () => Math.max(0, message.deadline - Date.now()),
    };
    try {
      const event: unknown = JSON.parse(message.event);
      const result = await new Promise<unknown>((resolve, reject) => {
        // Callback-style handlers (three parameters) are still supported by the nodejs22.x runtime.
        const returned = handler(event, context, (error, value) => (error ? reject(error) : resolve(value)));
        if (handler.length < 3 || (returned && typeof (returned as Promise<unknown>).then === 'function')) {
          Promise.resolve(returned).then(resolve, reject);
        }
      });
      // Lambda returns the JSON serialisation of the result, so the caller gets exactly that.
      post({ type: 'result', requestId: message.requestId, payload: JSON.stringify(result) });
    } catch (error) {
      const serialized = serializeError(error, 'Error');
      // The Node.js runtime logs the error of a failed invocation in this shape.
      process.stderr.write(`${new Date().toISOString()}\t${message.requestId}\tERROR\tInvoke Error \t${JSON.stringify(serialized)}\n`);
      post({ type: 'error', requestId: message.requestId, error: serialized });
    }
  }
}

await main();
