import { createHash } from 'node:crypto';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { BrokenCircuitError, circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, IsolatedCircuitError } from 'cockatiel';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import { inOutage } from './fault-injection.js';
import { logger } from './observability.js';

// The card processor behind the payment participant. A real one (Stripe, Adyen...) would implement
// PaymentProvider; this reference app ships a simulator that behaves like one, including
// idempotency keys and transient faults, so the saga's failure paths can be exercised anywhere.

export interface ChargeRequest {
  /** The same key always names the same charge: a retried call never charges twice. */
  idempotencyKey: string;
  token: string;
  /** Minor units (cents). */
  amount?: number;
  currency?: string;
}

export type ChargeOutcome = { status: 'succeeded'; chargeId: string } | { status: 'declined'; declineCode: string };

export interface RefundRequest {
  idempotencyKey: string;
  chargeId: string;
  amount?: number;
}

export interface RefundOutcome {
  status: 'refunded';
  refundId: string;
}

export interface PaymentProvider {
  /** Declines are outcomes; faults worth retrying throw TransientProviderError. */
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  refund(request: RefundRequest): Promise<RefundOutcome>;
}

/** The provider could not answer now (timeout, 5xx, throttling): try again later. */
export class TransientProviderError extends Error {
  override name = 'TransientProviderError';
}

/** The circuit breaker is open: the call was not even tried. The record fails and SQS retries it later. */
export class CircuitOpenError extends Error {
  override name = 'CircuitOpenError';
}

/**
 * The simulator. Test tokens: `tok_decline` is declined, `tok_flaky` fails with a transient error
 * on its first two charge attempts for an idempotency key and then succeeds, any other token
 * succeeds (as tok_visa does).
 *
 * Like a real provider it answers a repeated idempotency key with the first answer: charge and
 * refund ids are derived from the key, so every call with one key gets the same charge, on any
 * execution environment, with no state. The one thing it must remember is how often a flaky
 * token was tried; that lives in the payments table (entryId `SIMULATOR#ATTEMPTS` under the key),
 * the simulator's own storage, which a real provider would not need from this stack.
 */
export class SimulatedPaymentProvider implements PaymentProvider {
  static readonly FLAKY_FAILURES = 2;

  static chargeIdFor(idempotencyKey: string): string {
    return `ch_${createHash('sha256').update(`charge\u0000${idempotencyKey}`).digest('hex').slice(0, 32)}`;
  }

  static refundIdFor(idempotencyKey: string): string {
    return `re_${createHash('sha256').update(`refund\u0000${idempotencyKey}`).digest('hex').slice(0, 32)}`;
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    failDuringOutage();
    if (request.token === 'tok_decline') return { status: 'declined', declineCode: 'card_declined' };
    if (request.token === 'tok_flaky') {
      const attempts = await this.countAttempt(request.idempotencyKey);
      if (attempts <= SimulatedPaymentProvider.FLAKY_FAILURES) {
        throw new TransientProviderError(`Simulated provider timeout (attempt ${attempts})`);
      }
    }
    const chargeId = SimulatedPaymentProvider.chargeIdFor(request.idempotencyKey);
    // The provider's own record of the call, as its dashboard would show it: one line per charge made.
    logger.info('Simulated provider: charged', { idempotencyKey: request.idempotencyKey, chargeId });
    return { status: 'succeeded', chargeId };
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    failDuringOutage();
    if (request.chargeId !== SimulatedPaymentProvider.chargeIdFor(request.idempotencyKey)) {
      throw new Error(`Simulated provider: no charge ${request.chargeId} under key ${request.idempotencyKey}`);
    }
    return { status: 'refunded', refundId: SimulatedPaymentProvider.refundIdFor(request.idempotencyKey) };
  }

  private async countAttempt(key: string): Promise<number> {
    try {
      const result = await dynamoDbDocumentClient().send(
        new UpdateCommand({
          TableName: config.paymentsTable(),
          Key: { orderId: key, entryId: 'SIMULATOR#ATTEMPTS' },
          UpdateExpression: 'ADD attempts :one',
          ExpressionAttributeValues: { ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Number(result.Attributes?.attempts ?? 1);
    } catch (error) {
      // The simulator's storage failing is, to its caller, the provider being unavailable.
      throw new TransientProviderError('Simulated provider unavailable', { cause: error });
    }
  }
}

/** A provider outage (fault injection, `npm run chaos -- --provider-outage`): every call fails as a timeout would. */
function failDuringOutage(): void {
  if (inOutage('provider')) throw new TransientProviderError('Simulated provider outage');
}

export interface CircuitBreakerOptions {
  /** Consecutive transient failures that open the circuit. */
  failureThreshold: number;
  /**
   * Milliseconds the circuit stays open before one trial call (half-open). Keep it well inside the
   * queue's retry window (maxReceiveCount receives with backoff): records failing fast meanwhile
   * use up receives, and too long a cool-down would send them to the DLQ.
   */
  coolDownMs: number;
}

export interface GuardedPaymentProvider extends PaymentProvider {
  readonly state: 'closed' | 'open' | 'half-open';
}

/**
 * Wraps a provider in a circuit breaker (cockatiel's ConsecutiveBreaker): only transient errors
 * count, declines are answers. While open, calls throw CircuitOpenError without reaching the
 * provider. One breaker per execution environment: state in memory, like the connection it guards.
 */
export function withCircuitBreaker(provider: PaymentProvider, options: CircuitBreakerOptions): GuardedPaymentProvider {
  const breaker = circuitBreaker(
    handleWhen((error) => error instanceof TransientProviderError),
    { halfOpenAfter: options.coolDownMs, breaker: new ConsecutiveBreaker(options.failureThreshold) },
  );
  const guarded = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await breaker.execute(call);
    } catch (error) {
      if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) {
        throw new CircuitOpenError('Payment provider circuit is open: failing fast', { cause: error });
      }
      throw error;
    }
  };
  return {
    charge: (request) => guarded(() => provider.charge(request)),
    refund: (request) => guarded(() => provider.refund(request)),
    get state() {
      switch (breaker.state) {
        case CircuitState.Closed:
          return 'closed';
        case CircuitState.HalfOpen:
          return 'half-open';
        default:
          return 'open';
      }
    },
  };
}
