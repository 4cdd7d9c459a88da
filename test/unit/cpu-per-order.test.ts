import { describe, expect, it } from 'vitest';
import { cpuPerOrder } from '../../bench/cpu-per-order.js';
import { cpuSecondsOfStat } from '../../local/thread-cpu.js';

// The bench's "CPU per order by thread" table: where the machine's CPU time went, per order.

describe('a thread CPU time read from /proc', () => {
  it('adds user and system ticks, whatever the thread is named', () => {
    // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const stat = '4242 (node (worker) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 12 0';
    expect(cpuSecondsOfStat(stat)).toBeCloseTo(12.9, 6);
  });
});

describe('CPU per order by thread', () => {
  it('splits the process time into the main thread, each function and the rest', () => {
    const before = { processSeconds: 10, mainThreadSeconds: 4, functions: { createOrder: 1, payment: 2, sweepOrders: 0.5 } };
    const after = { processSeconds: 30, mainThreadSeconds: 10, functions: { createOrder: 5, payment: 4, sweepOrders: 0.5, inventory: 3 } };
    expect(cpuPerOrder(before, after, 1000)).toEqual({
      mainThread: 6,
      // An environment of a function that had none before counts from nothing; one that used nothing is left out.
      functions: { createOrder: 4, payment: 2, inventory: 3 },
      otherThreads: 5,
      total: 20,
    });
  });

  it('says nothing where /proc could not tell (not Linux)', () => {
    const none = { processSeconds: 1, mainThreadSeconds: 0, functions: {} };
    expect(cpuPerOrder(none, { ...none, processSeconds: 2 }, 100)).toBeUndefined();
  });
});
