// The payment provider's circuit breaker against the packaged template's retry parameters: while
// the circuit is open the payment consumer's records fail fast and use up receives, so its
// cool-down must end before a record that met the open circuit on its first receive runs out of
// receives into the DLQ. The record waits retryDelaySeconds(n) after each failed receive
// n = 1 … maxReceiveCount − 1 (after the last one SQS moves it): that sum is the budget. Read per
// stage from what deploys: the payment function's RETRY_BACKOFF_BASE_SECONDS and the
// maxReceiveCount of the queue its event source mapping reads. (The pipeline itself is exercised by
// test/e2e/circuit-breaker.test.ts.)
import { describe, expect, it } from 'vitest';
import { PROVIDER_CIRCUIT } from '../../lib/payments.js';
import { retryDelaySeconds } from '../../lib/queue-consumer.js';
import { eventSourceMappings, functionByKey, packageStack, resource } from './template.js';

function retryBudget(stage: string) {
  const { template } = packageStack({ stage });
  const payment = functionByKey(template, stage, 'payment');
  const base = Number(payment.resource.Properties?.Environment?.Variables?.RETRY_BACKOFF_BASE_SECONDS);
  // Its standard queue and its express queue: the budget is the smaller of theirs (the same today).
  const mappings = eventSourceMappings(template).filter((m) => m.functionId === payment.id);
  expect(mappings, 'the payment function reads its standard and its express queue').toHaveLength(2);
  const maxReceiveCount = Math.min(
    ...mappings.map((m) => Number(resource(template, m.queueId).Properties?.RedrivePolicy?.maxReceiveCount)),
  );
  const delays = Array.from({ length: maxReceiveCount - 1 }, (_, index) => retryDelaySeconds(index + 1, base));
  return { base, maxReceiveCount, delays, budgetSeconds: delays.reduce((sum, delay) => sum + delay, 0) };
}

describe('the payment circuit breaker', () => {
  // Today: dev (the defaults) base 2 s, 5 receives: 2 + 4 + 8 + 16 = 30 s; local base 1 s: 15 s.
  it.each(['dev', 'local'])('cools down inside the retries a record gets before its DLQ (stage %s)', (stage) => {
    const { base, maxReceiveCount, delays, budgetSeconds } = retryBudget(stage);
    expect(base).toBeGreaterThan(0);
    expect(maxReceiveCount).toBeGreaterThan(1);
    expect(delays.every((delay) => delay > 0)).toBe(true);
    expect(PROVIDER_CIRCUIT.coolDownMs / 1000, `cool-down against ${delays.join(' + ')} s`).toBeLessThan(budgetSeconds);
  });
});
