import { describe, expect, it } from 'vitest';
import { LaneGate, STANDARD_LANE_MAX_WAIT_MS as MAX } from '../../local/sqs-poller.js';

// The local runtime's lane gate on a clock of the test's own: closed while an express batch is in
// hand, for at most MAX at a time, then open as long, so a steady express stream takes at most half
// of the standard lane's time.
describe('LaneGate', () => {
  const gateAt = () => {
    const clock = { now: 1_000_000 };
    return { clock, gate: new LaneGate(() => clock.now) };
  };

  it('is open with no express batch in hand, and closed while one is', () => {
    const { gate } = gateAt();
    expect(gate.closedUntil()).toBeUndefined();
    gate.hold();
    expect(gate.closedUntil()).toBeDefined();
    gate.release();
    expect(gate.closedUntil()).toBeUndefined();
  });

  it('stays closed MAX at most, then opens for MAX even though express still holds it, then closes again', () => {
    const { clock, gate } = gateAt();
    gate.hold();
    expect(gate.closedUntil()).toBe(clock.now + MAX);
    clock.now += MAX - 1;
    expect(gate.closedUntil()).toBeDefined();
    clock.now += 1;
    expect(gate.closedUntil()).toBeUndefined();
    clock.now += MAX - 1;
    expect(gate.closedUntil()).toBeUndefined();
    clock.now += 1;
    expect(gate.closedUntil()).toBe(clock.now + MAX);
  });

  it('counts holds: closed until the last express batch is released', () => {
    const { gate } = gateAt();
    gate.hold();
    gate.hold();
    gate.release();
    expect(gate.held).toBe(true);
    expect(gate.closedUntil()).toBeDefined();
    gate.release();
    expect(gate.held).toBe(false);
  });

  it('a hold that starts in an open window closes the gate only when the window ends', () => {
    const { clock, gate } = gateAt();
    gate.hold();
    clock.now += MAX;
    expect(gate.closedUntil()).toBeUndefined();
    const windowEnds = clock.now + MAX;
    gate.release();
    clock.now += 100;
    gate.hold();
    expect(gate.closedUntil()).toBeUndefined();
    clock.now = windowEnds;
    expect(gate.closedUntil()).toBe(windowEnds + MAX);
  });

  it('wakes a waiting poller on release, and on abort', async () => {
    const { gate } = gateAt();
    gate.hold();
    const waited = gate.open(new AbortController().signal);
    gate.release();
    await expect(waited).resolves.toBeUndefined();
    gate.hold();
    const abort = new AbortController();
    const aborted = gate.open(abort.signal);
    abort.abort();
    await expect(aborted).resolves.toBeUndefined();
  });
});
