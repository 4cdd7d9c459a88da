// Notices when whatever started `npm start` goes away without a signal reaching this process.
// `npm start` runs npm -> sh -c -> this process (node local/launch.mjs); run through tsx
// (`npx tsx local/start.ts`), tsx's wrapper is this process's parent. A SIGKILL of npm reaches
// nobody else, so killing npm that way (or an IDE dropping its task) left this process running
// and holding every port. Every second this checks that its parent is still its parent (if the
// shell or tsx's wrapper exits, this process is re-parented) and, when npm launched it, that npm
// is still there.
// Linux reads /proc; macOS and the BSDs ask ps once, at start; on Windows only the parent is watched.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

interface ProcessInfo {
  ppid: number;
  /** The command line, or the title the process gave itself (npm's is `npm start`, `npm exec ...`). */
  command: string;
  /** Linux only: `Z` for a zombie, which has exited but not been reaped yet. */
  state?: string;
}

function processInfo(pid: number): ProcessInfo | undefined {
  try {
    if (process.platform === 'linux') {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may hold spaces and parentheses, so read after the last ')'.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      return { ppid: Number(ppid), command, ...(state === undefined ? {} : { state }) };
    }
    if (process.platform === 'win32') return undefined;
    const line = execFileSync('ps', ['-o', 'ppid=', '-o', 'command=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    const match = /^(\d+)\s+(.*)$/.exec(line);
    return match ? { ppid: Number(match[1]), command: match[2]! } : undefined;
  } catch {
    return undefined;
  }
}

/** True while a process with this pid exists and has not exited (a zombie counts as exited). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return process.platform !== 'linux' || processInfo(pid)?.state !== 'Z';
}

/** The npm process this one was started by, if npm is among its nearest ancestors. */
function npmAncestor(): number | undefined {
  let pid = process.ppid;
  // npm, sh -c, and tsx's wrapper when run through tsx: at most three levels; one more for a shell npm may put in between.
  for (let level = 0; level < 4 && pid > 1; level++) {
    const info = processInfo(pid);
    if (!info) return undefined;
    if (/^npm(\s|$)/.test(info.command)) return pid;
    pid = info.ppid;
  }
  return undefined;
}

/**
 * Calls `onGone` once, with what went away, when this process's parent exits, when the npm process
 * that launched it exits, or when the parent closes an IPC channel to it. `stop()` ends the watch.
 */
export function watchLauncher(onGone: (what: string) => void, intervalMs = 1000): { stop(): void } {
  const parent = process.ppid;
  const npm = npmAncestor();
  let done = false;
  const gone = (what: string) => {
    if (done) return;
    stop();
    onGone(what);
  };
  const timer = setInterval(() => {
    if (process.ppid !== parent) gone(`its parent process (pid ${parent}) exited`);
    else if (npm !== undefined && !isProcessAlive(npm)) gone(`npm (pid ${npm}) exited`);
  }, intervalMs);
  // The watch alone never keeps the process alive.
  timer.unref();
  const onDisconnect = () => gone('its parent closed the IPC channel');
  if (process.connected) process.once('disconnect', onDisconnect);
  function stop() {
    done = true;
    clearInterval(timer);
    process.off('disconnect', onDisconnect);
  }
  return { stop };
}
