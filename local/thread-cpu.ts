import { readFileSync } from 'node:fs';

// Linux reports a thread's CPU time in clock ticks of USER_HZ, which is 100 on every architecture
// Node.js runs on there (it is part of the kernel's user-space ABI, whatever the kernel's own HZ).
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user and system) one thread of this process has used, from /proc/self/task/<id>/stat:
 * Linux only; undefined elsewhere, or once the thread has ended. `threadId` is the kernel's id of
 * the thread (the process id for the main thread), not a worker_threads threadId.
 */
export function threadCpuSeconds(threadId: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/self/task/${threadId}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return cpuSecondsOfStat(stat);
}

/** utime + stime of a /proc stat line; the command name in parentheses may itself hold spaces. */
export function cpuSecondsOfStat(stat: string): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), counted from the state (field 3) after the name.
  const user = Number(fields[11]);
  const system = Number(fields[12]);
  if (!Number.isFinite(user) || !Number.isFinite(system)) return undefined;
  return (user + system) / TICKS_PER_SECOND;
}

/** CPU seconds (user and system) this whole process has used, all its threads: every platform. */
export function processCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
