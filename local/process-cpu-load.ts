import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { processCpuSeconds } from './thread-cpu.js';

/** The span over which the load is read: long enough to smooth one invocation, short enough to follow a flood. */
const WINDOW_MS = 500;

/**
 * Asked again sooner than this, the reading stands and the CPU time is not read: it is asked for at
 * every invocation that finds no idle environment, and by every poller's look, and the system call
 * was 1.3% of the main thread's time under the bench's flood.
 */
const SAMPLE_EVERY_MS = 50;

/** Less history than this and the load reads 0: a process just started is not yet busy. */
const MIN_SPAN_MS = 100;

/**
 * How many cores this process keeps busy, all its threads together (process.cpuUsage), over about
 * the last WINDOW_MS. Sampled when asked, not on a timer: a process that never asks spends nothing,
 * and one that asks rarely reads a longer, calmer window, which is what an idle one should read.
 */
export class ProcessCpuLoad {
  readonly #samples: Array<{ at: number; cpuMs: number }> = [];
  #reading = 0;

  constructor(
    readonly cores: number = availableParallelism(),
    readonly readCpuMs: () => number = () => processCpuSeconds() * 1000,
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Cores busy, from 0 to `cores` (more while the clock and the CPU count disagree for a moment). */
  busyCores(): number {
    const at = this.now();
    const samples = this.#samples;
    const last = samples.at(-1);
    if (last && at - last.at < SAMPLE_EVERY_MS) return this.#reading;
    const cpuMs = this.readCpuMs();
    samples.push({ at, cpuMs });
    // Keep the newest sample at least WINDOW_MS old as the start of the window.
    while (samples.length > 2 && at - samples[1]!.at >= WINDOW_MS) samples.shift();
    const start = samples[0]!;
    const span = at - start.at;
    this.#reading = span < MIN_SPAN_MS ? 0 : (cpuMs - start.cpuMs) / span;
    return this.#reading;
  }
}
