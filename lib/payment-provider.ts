import { randomUUID } from 'node:crypto';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  BrokenCircuitError,
  circuitBreaker,
  CircuitState,
  ConsecutiveBreaker,
  handleWhen,
  IsolatedCircuitError,
} from 'cockatiel';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import { inOutage } from './fault-injection.js';

// The card processor behind the payment stage. A real one (Stripe, Adyen...) would implement
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

export type ChargeOutcome =
  | { status: 'succeeded'; chargeId: string }
  | { status: 'declined'; declineCode: string };

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
 * Its state must outlive one invocation and be shared by concurrent execution environments (on
 * AWS too, where there is no real provider behind it), so it lives in the payments table: items
 * with entryId `SIMULATOR#CHARGE` / `SIMULATOR#REFUND` under the idempotency key as partition key.
 * The ledger proper only uses entryId CHARGE and REFUND, so the two never mix.
 */
export class SimulatedPaymentProvider implements PaymentProvider {
  static readonly FLAKY_FAILURES = 2;

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    failDuringOutage();
    if (request.token === 'tok_decline') return { status: 'declined', declineCode: 'card_declined' };
    const state = await this.update(request.idempotencyKey, 'SIMULATOR#CHARGE', {
      UpdateExpression: 'ADD attempts :one SET #token = if_not_exists(#token, :token)',
      ExpressionAttributeNames: { '#token': 'tokenKind' },
      ExpressionAttributeValues: { ':one': 1, ':token': request.token === 'tok_flaky' ? 'flaky' : 'ok' },
    });
    if (request.token === 'tok_flaky' && Number(state.attempts) <= SimulatedPaymentProvider.FLAKY_FAILURES) {
      throw new TransientProviderError(`Simulated provider timeout (attempt ${String(state.attempts)})`);
    }
    // First success wins: every later call with this key gets the same charge back.
    const charged = await this.update(request.idempotencyKey, 'SIMULATOR#CHARGE', {
      UpdateExpression:
        'SET chargeId = if_not_exists(chargeId, :chargeId), amount = if_not_exists(amount, :amount), chargedAt = if_not_exists(chargedAt, :at)',
      ExpressionAttributeValues: {
        ':chargeId': `ch_${randomUUID().replaceAll('-', '')}`,
        ':amount': request.amount ?? 0,
        ':at': new Date().toISOString(),
      },
    });
    return { status: 'succeeded', chargeId: String(charged.chargeId) };
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    failDuringOutage();
    const charge = await this.read(request.idempotencyKey, 'SIMULATOR#CHARGE');
    if (charge?.chargeId !== request.chargeId) {
      throw new Error(`Simulated provider: no charge ${request.chargeId} under key ${request.idempotencyKey}`);
    }
    const refunded = await this.update(request.idempotencyKey, 'SIMULATOR#REFUND', {
      UpdateExpression: 'SET refundId = if_not_exists(refundId, :refundId), chargeId = :chargeId, refundedAt = if_not_exists(refundedAt, :at)',
      ExpressionAttributeValues: {
        ':refundId': `re_${randomUUID().replaceAll('-', '')}`,
        ':chargeId': request.chargeId,
        ':at': new Date().toISOString(),
      },
    });
    return { status: 'refunded', refundId: String(refunded.refundId) };
  }

  private async read(key: string, entryId: string): Promise<Record<string, unknown> | undefined> {
    try {
      const result = await dynamoDbDocumentClient().send(
        new GetCommand({ TableName: config.paymentsTable(), Key: { orderId: key, entryId }, ConsistentRead: true }),
      );
      return result.Item;
    } catch (error) {
      throw new TransientProviderError('Simulated provider unavailable', { cause: error });
    }
  }

  private async update(
    key: string,
    entryId: string,
    expression: Pick<
      ConstructorParameters<typeof UpdateCommand>[0],
      'UpdateExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
  ): Promise<Record<string, unknown>> {
    try {
      const result = await dynamoDbDocumentClient().send(
        new UpdateCommand({
          TableName: config.paymentsTable(),
          Key: { orderId: key, entryId },
          ...expression,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return result.Attributes ?? {};
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
