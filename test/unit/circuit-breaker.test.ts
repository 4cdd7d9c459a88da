import { BrokenCircuitError } from 'cockatiel';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ChargeOutcome,
  type ChargeRequest,
  CircuitOpenError,
  type PaymentProvider,
  TransientProviderError,
  withCircuitBreaker,
} from '../../lib/payment-provider.js';

// The payment provider's circuit breaker (cockatiel's ConsecutiveBreaker behind withCircuitBreaker),
// with a scripted provider and a fake clock.

type Answer = 'ok' | 'decline' | 'transient' | 'bug';

function scriptedProvider() {
  const answers: Answer[] = [];
  const calls: ChargeRequest[] = [];
  const provider: PaymentProvider = {
    async charge(request): Promise<ChargeOutcome> {
      calls.push(request);
      const answer = answers.shift() ?? 'ok';
      if (answer === 'transient') throw new TransientProviderError('timeout');
      if (answer === 'bug') throw new TypeError('not a provider fault');
      return answer === 'decline' ? { status: 'declined', declineCode: 'card_declined' } : { status: 'succeeded', chargeId: 'ch_1' };
    },
    async refund() {
      return { status: 'refunded', refundId: 're_1' };
    },
  };
  return { provider, answers, calls };
}

const request: ChargeRequest = { idempotencyKey: 'ord_1', token: 'tok_visa', amount: 1000 };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
});
afterEach(() => {
  vi.useRealTimers();
});

describe('withCircuitBreaker', () => {
  it('opens after N consecutive transient failures and then fails fast without calling the provider', async () => {
    const { provider, answers, calls } = scriptedProvider();
    const guarded = withCircuitBreaker(provider, { failureThreshold: 3, coolDownMs: 10_000 });
    answers.push('transient', 'transient', 'transient');
    for (let i = 0; i < 3; i += 1) await expect(guarded.charge(request)).rejects.toBeInstanceOf(TransientProviderError);
    expect(guarded.state).toBe('open');
    await expect(guarded.charge(request)).rejects.toBeInstanceOf(CircuitOpenError);
    await expect(guarded.refund({ idempotencyKey: 'ord_1', chargeId: 'ch_1' })).rejects.toBeInstanceOf(CircuitOpenError);
    expect(calls).toHaveLength(3);
  });

  it('counts only consecutive failures: a success in between resets the count', async () => {
    const { provider, answers } = scriptedProvider();
    const guarded = withCircuitBreaker(provider, { failureThreshold: 3, coolDownMs: 10_000 });
    answers.push('transient', 'transient', 'ok', 'transient', 'transient');
    for (const expected of ['fail', 'fail', 'ok', 'fail', 'fail']) {
      const attempt = guarded.charge(request);
      if (expected === 'ok') await expect(attempt).resolves.toMatchObject({ status: 'succeeded' });
      else await expect(attempt).rejects.toBeInstanceOf(TransientProviderError);
    }
    expect(guarded.state).toBe('closed');
  });

  it('does not count declines or non-transient errors as provider failures', async () => {
    const { provider, answers } = scriptedProvider();
    const guarded = withCircuitBreaker(provider, { failureThreshold: 2, coolDownMs: 10_000 });
    answers.push('decline', 'decline', 'bug', 'bug', 'decline');
    await guarded.charge(request);
    await guarded.charge(request);
    await expect(guarded.charge(request)).rejects.toBeInstanceOf(TypeError);
    await expect(guarded.charge(request)).rejects.toBeInstanceOf(TypeError);
    await expect(guarded.charge(request)).resolves.toMatchObject({ status: 'declined' });
    expect(guarded.state).toBe('closed');
  });

  it('half-opens after the cool-down: one successful trial closes it', async () => {
    const { provider, answers, calls } = scriptedProvider();
    const guarded = withCircuitBreaker(provider, { failureThreshold: 2, coolDownMs: 10_000 });
    answers.push('transient', 'transient');
    await expect(guarded.charge(request)).rejects.toThrow(TransientProviderError);
    await expect(guarded.charge(request)).rejects.toThrow(TransientProviderError);
    vi.advanceTimersByTime(9_999);
    await expect(guarded.charge(request)).rejects.toBeInstanceOf(CircuitOpenError);
    vi.advanceTimersByTime(1);
    await expect(guarded.charge(request)).resolves.toMatchObject({ status: 'succeeded' });
    expect(guarded.state).toBe('closed');
    expect(calls).toHaveLength(3);
  });

  it('half-opens after the cool-down: a failed trial opens it again for another cool-down', async () => {
    const { provider, answers } = scriptedProvider();
    const guarded = withCircuitBreaker(provider, { failureThreshold: 2, coolDownMs: 10_000 });
    answers.push('transient', 'transient', 'transient');
    await expect(guarded.charge(request)).rejects.toThrow(TransientProviderError);
    await expect(guarded.charge(request)).rejects.toThrow(TransientProviderError);
    vi.advanceTimersByTime(10_000);
    await expect(guarded.charge(request)).rejects.toBeInstanceOf(TransientProviderError);
    expect(guarded.state).toBe('open');
    await expect(guarded.charge(request)).rejects.toBeInstanceOf(CircuitOpenError);
  });

  it('keeps the open-circuit cause for the logs', async () => {
    const { provider, answers } = scriptedProvider();
    const guarded = withCircuitBreaker(provider, { failureThreshold: 1, coolDownMs: 1_000 });
    answers.push('transient');
    await expect(guarded.charge(request)).rejects.toThrow(TransientProviderError);
    const error = await guarded.charge(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitOpenError);
    // The cause is the breaker's own refusal (cockatiel's BrokenCircuitError), not some other error.
    const { cause } = error as CircuitOpenError;
    expect(cause).toBeInstanceOf(BrokenCircuitError);
    expect((cause as BrokenCircuitError).message).toMatch(/circuit breaker is open/);
  });

  it("passes the provider's own error through unwrapped while the circuit is closed", async () => {
    const thrown = new TransientProviderError('timeout after 3 s');
    const provider: PaymentProvider = {
      charge: () => Promise.reject(thrown),
      refund: () => Promise.reject(thrown),
    };
    const guarded = withCircuitBreaker(provider, { failureThreshold: 5, coolDownMs: 1_000 });
    const error = await guarded.charge(request).catch((e: unknown) => e);
    // The very error the provider threw: its message, stack and cause reach the logs as they were.
    expect(error).toBe(thrown);
    expect(guarded.state).toBe('closed');
  });
});
