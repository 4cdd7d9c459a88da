// Where the local runtime's memory goes: the resident memory of its process (the main thread, with
// the emulators, the HTTP API and the pollers, and one worker thread per execution environment, all
// in one process), and the V8 heap of the main thread and of each environment. GET /_local/memory
// answers it; `npm run bench` prints it, and reads the processes that launched an `npm start` (npm
// and its shell; tsx's wrapper too when run through tsx) apart: they hold memory for as long as it
// runs, though they are not part of the runtime.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import type { FunctionMemory } from './lambda-environment.js';

export interface ProcessMemory {
  pid: number;
  /** The command line, as ps or /proc shows it. */
  command: string;
  /** Resident set size now, in bytes. */
  rssBytes: number;
  /** The most it has been resident (Linux: VmHWM); undefined where the system does not say. */
  peakRssBytes?: number;
  /** Threads of the process (Linux), undefined elsewhere. */
  threads?: number;
}

export interface RuntimeMemory {
  /** The runtime's own process: every thread, the environments' included. */
  process: ProcessMemory;
  /** The main thread's V8 heap (emulators, HTTP API, pollers, and whatever runs the runtime). */
  mainHeap: { totalBytes: number; usedBytes: number };
  /** Per function: its environments (worker threads) and each one's V8 heap. */
  functions: Record<string, FunctionMemory>;
}

/** Resident memory of a process; undefined if it is gone or the system cannot say. */
export function processMemory(pid: number): ProcessMemory | undefined {
  try {
    if (process.platform === 'linux') {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kilobytes = (field: string) => {
        const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
        return match ? Number(match[1]) * 1024 : undefined;
      };
      const rssBytes = kilobytes('VmRSS');
      // A zombie has no memory left to report.
      if (rssBytes === undefined) return undefined;
      const peakRssBytes = kilobytes('VmHWM');
      const threads = /^Threads:\s+(\d+)/m.exec(status);
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      return {
        pid,
        command,
        rssBytes,
        ...(peakRssBytes === undefined ? {} : { peakRssBytes }),
        ...(threads ? { threads: Number(threads[1]) } : {}),
      };
    }
    if (process.platform === 'win32') return undefined;
    // macOS and the BSDs: ps reports the resident size in KB.
    const line = execFileSync('ps', ['-o', 'rss=', '-o', 'command=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    const match = /^(\d+)\s+(.*)$/.exec(line);
    return match ? { pid, command: match[2]!, rssBytes: Number(match[1]) * 1024 } : undefined;
  } catch {
    return undefined;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    if (process.platform === 'linux') {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    }
    if (process.platform === 'win32') return undefined;
    return Number(execFileSync('ps', ['-o', 'ppid=', '-p', String(pid)], { encoding: 'utf8' }).trim());
  } catch {
    return undefined;
  }
}

/**
 * The processes that launched `pid` and do nothing but wait for it: the shell npm runs a script
 * in, npm itself, and tsx's wrapper (which starts node with tsx's loader) when the runtime runs
 * through tsx (`npx tsx local/start.ts`; `npm start` runs it with plain node). Walks up from the
 * parent and stops after npm, or at the first ancestor that is none of these.
 */
export function launcherProcesses(pid: number): ProcessMemory[] {
  const launchers: ProcessMemory[] = [];
  let parent = parentOf(pid);
  for (let level = 0; level < 4 && parent !== undefined && parent > 1; level++) {
    const info = processMemory(parent);
    if (!info) break;
    const isNpm = /^npm(\s|$)/.test(info.command) || /\bnpm-cli\.js\b/.test(info.command);
    const isShell = /^(\/\S*\/)?(sh|bash|dash|zsh) -c /.test(info.command);
    const isTsxWrapper = /\btsx(\/dist\/cli\.m?js)?\s/.test(info.command) && !/--import\s+\S*tsx/.test(info.command);
    if (!isNpm && !isShell && !isTsxWrapper) break;
    launchers.push(info);
    if (isNpm) break;
    parent = parentOf(parent);
  }
  return launchers;
}

/** The runtime's memory now: its process, the main thread's heap and each environment's. */
export async function runtimeMemory(functions: Iterable<{ name: string; memory(): Promise<FunctionMemory> }>): Promise<RuntimeMemory> {
  const entries = await Promise.all([...functions].map(async (fn) => [fn.name, await fn.memory()] as const));
  const heap = getHeapStatistics();
  const own = processMemory(process.pid) ?? { pid: process.pid, command: process.argv.join(' '), rssBytes: process.memoryUsage.rss() };
  return {
    process: own,
    mainHeap: { totalBytes: heap.total_heap_size, usedBytes: heap.used_heap_size },
    functions: Object.fromEntries(entries),
  };
}
