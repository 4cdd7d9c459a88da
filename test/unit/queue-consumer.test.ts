import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ChangeMessageVisibilityBatchCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { OrderEvent } from '../../lib/events.js';
import { createQueueConsumer, parseOrderEvent, retryDelays, retryDelaySeconds } from '../../lib/queue-consumer.js';
import { fifoRecord, lambdaContext, orderIdOf, orderPlaced, sqsEvent, sqsRecord } from '../support/sqs-events.js';

// The SDK is mocked here: these tests pin the mapping from a batch to its partial response.
// The same behaviour against the real emulators is in test/integration.
vi.hoisted(() => {
  process.env.AWS_REGION = 'us-east-1';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
});

const dynamo = mockClient(DynamoDBClient);
const sqs = mockClient(SQSClient);

beforeEach(() => {
  dynamo.reset();
  sqs.reset();
  sqs.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/inventory' });
});

describe('createQueueConsumer', () => {
  it('reports exactly the failed record in batchItemFailures', async () => {
    const handler = createQueueConsumer('inventory', {
      OrderPlaced: async (event) => {
        if (event.orderId === orderIdOf('bad')) throw new Error('transient');
        return { reserved: true };
      },
    });
    const good = sqsRecord(orderPlaced(orderIdOf('good')));
    const bad = sqsRecord(orderPlaced(orderIdOf('bad')));
    const response = await handler(sqsEvent(good, bad), lambdaContext());
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: bad.messageId }]);
  });

  it('reports a poison body as failed without failing the rest of the batch', async () => {
    const handled: string[] = [];
    const handler = createQueueConsumer('inventory', {
      OrderPlaced: async (event) => handled.push(event.orderId),
    });
    const poison = sqsRecord('{not json');
    const wrongShape = sqsRecord(JSON.stringify({ eventType: 'OrderPlaced' }));
    const good = sqsRecord(orderPlaced(orderIdOf('good')));
    const response = await handler(sqsEvent(poison, good, wrongShape), lambdaContext());
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual([poison.messageId, wrongShape.messageId].sort());
    expect(handled).toEqual([orderIdOf('good')]);
  });

  it('fails an event type the consumer does not subscribe to, instead of dropping it', async () => {
    const handler = createQueueConsumer('payment', { OrderPlaced: async () => null });
    const confirmed = sqsRecord({
      ...orderPlaced(orderIdOf('1')),
      eventType: 'OrderConfirmed',
      eventId: `${orderIdOf('1')}:OrderConfirmed`,
      data: {},
    });
    const response = await handler(sqsEvent(confirmed), lambdaContext());
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: confirmed.messageId }]);
  });

  it('counts a delivery whose work was recorded earlier as a duplicate, and does not fail it', async () => {
    const handler = createQueueConsumer('inventory', { OrderPlaced: async () => ({ recorded: 'earlier' }) });
    const response = await handler(sqsEvent(sqsRecord(orderPlaced(orderIdOf('dup')))), lambdaContext());
    expect(response.batchItemFailures).toEqual([]);
    // No idempotency record of its own: the consumer writes nothing to DynamoDB for a record.
    expect(dynamo.calls()).toHaveLength(0);
  });

  it('ends an invocation only when its records are done, even past its deadline: Lambda stops it then, not the handler', async () => {
    // Middy's default early timeout would answer at the deadline while the record went on in the
    // background, to resume in a later invocation after its message was retried (lib/lambda-invocation.ts).
    let finished = false;
    const handler = createQueueConsumer('inventory', {
      OrderPlaced: async () => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        finished = true;
        return { reserved: true };
      },
    });
    const response = await handler(sqsEvent(sqsRecord(orderPlaced(orderIdOf('slow')))), lambdaContext(undefined, 50));
    expect(finished).toBe(true);
    expect(response.batchItemFailures).toEqual([]);
  });

  it('registers the Lambda context with the idempotency configurations its handlers use', async () => {
    const { IdempotencyConfig } = await import('@aws-lambda-powertools/idempotency');
    const guard = new IdempotencyConfig({ eventKeyJmesPath: 'id' });
    const register = vi.spyOn(guard, 'registerLambdaContext');
    const handler = createQueueConsumer('payment', { OrderPlaced: async () => null }, { idempotency: [guard] });
    const context = lambdaContext();
    await handler(sqsEvent(sqsRecord(orderPlaced(orderIdOf('1')))), context);
    expect(register).toHaveBeenCalledTimes(1);
    expect(register.mock.calls[0]?.[0]).toMatchObject({ awsRequestId: context.awsRequestId });
  });

  it('backs off failed records with ChangeMessageVisibility, doubling per receive', async () => {
    process.env.RETRY_BACKOFF_BASE_SECONDS = '2';
    const handler = createQueueConsumer('inventory', {
      OrderPlaced: async () => {
        throw new Error('transient');
      },
    });
    const firstTry = sqsRecord(orderPlaced(orderIdOf('1')), {}, 1);
    const thirdTry = sqsRecord(orderPlaced(orderIdOf('2')), {}, 3);
    await handler(sqsEvent(firstTry, thirdTry), lambdaContext());
    const calls = sqs.commandCalls(ChangeMessageVisibilityBatchCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input.QueueUrl).toBe('https://sqs.us-east-1.amazonaws.com/000000000000/inventory');
    const entries = calls[0]?.args[0].input.Entries ?? [];
    expect(entries.map((e) => [e.ReceiptHandle, e.VisibilityTimeout])).toEqual([
      [firstTry.receiptHandle, 2],
      [thirdTry.receiptHandle, 8],
    ]);
  });
});

describe('createQueueConsumer on a FIFO queue', () => {
  const cancelled = (orderId: string): OrderEvent => ({
    eventId: `${orderId}:OrderCancelled`,
    eventType: 'OrderCancelled',
    orderId,
    occurredAt: new Date().toISOString(),
    data: { reason: 'CUSTOMER_CANCELLED' },
  });

  it("handles each group's records in the batch order, one at a time, and the groups side by side", async () => {
    const seen: string[] = [];
    const running = new Map<string, number>();
    let peak = 0;
    const record = async (event: OrderEvent) => {
      running.set(event.orderId, (running.get(event.orderId) ?? 0) + 1);
      expect(running.get(event.orderId), 'one record of a group at a time').toBe(1);
      peak = Math.max(
        peak,
        [...running.values()].reduce((sum, n) => sum + n, 0),
      );
      await new Promise((resolve) => setTimeout(resolve, event.orderId === a ? 20 : 5));
      seen.push(`${event.eventType} ${event.orderId}`);
      running.set(event.orderId, running.get(event.orderId)! - 1);
    };
    const handler = createQueueConsumer('inventory', { OrderPlaced: record, OrderCancelled: record });
    const [a, b] = [orderIdOf('a'), orderIdOf('b')];
    const response = await handler(
      sqsEvent(fifoRecord(orderPlaced(a)), fifoRecord(orderPlaced(b)), fifoRecord(cancelled(a)), fifoRecord(cancelled(b))),
      lambdaContext(),
    );
    expect(response.batchItemFailures).toEqual([]);
    const of = (orderId: string) => seen.filter((line) => line.endsWith(orderId));
    expect([of(a), of(b)]).toEqual([
      [`OrderPlaced ${a}`, `OrderCancelled ${a}`],
      [`OrderPlaced ${b}`, `OrderCancelled ${b}`],
    ]);
    expect(peak, 'two groups at once').toBe(2);
  });

  it('a failed record stops its group: the rest of that group is reported failed, not handled; other groups go on', async () => {
    const handled: string[] = [];
    const [bad, good] = [orderIdOf('fifo-bad'), orderIdOf('fifo-good')];
    const handler = createQueueConsumer('inventory', {
      OrderPlaced: async (event) => {
        handled.push(`placed ${event.orderId}`);
        if (event.orderId === bad) throw new Error('transient');
      },
      OrderCancelled: async (event) => handled.push(`cancelled ${event.orderId}`),
    });
    const badPlaced = fifoRecord(orderPlaced(bad));
    const badCancelled = fifoRecord(cancelled(bad));
    const goodPlaced = fifoRecord(orderPlaced(good));
    const goodCancelled = fifoRecord(cancelled(good));
    const response = await handler(sqsEvent(badPlaced, goodPlaced, badCancelled, goodCancelled), lambdaContext());
    expect(response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([badPlaced.messageId, badCancelled.messageId]);
    expect(handled.sort()).toEqual([`cancelled ${good}`, `placed ${bad}`, `placed ${good}`]);
  });

  it('backs off a failed group as a whole: every record of it hidden for the backoff of the one that failed', async () => {
    process.env.RETRY_BACKOFF_BASE_SECONDS = '2';
    const [bad, good] = [orderIdOf('fifo-backoff-bad'), orderIdOf('fifo-backoff-good')];
    const handler = createQueueConsumer('inventory', {
      OrderPlaced: async (event) => {
        if (event.orderId === bad) throw new Error('transient');
      },
      OrderCancelled: async () => null,
    });
    // The head has been received three times; the follower joined the group later.
    const head = fifoRecord(orderPlaced(bad), 3);
    const follower = fifoRecord(cancelled(bad), 1);
    await handler(sqsEvent(head, fifoRecord(orderPlaced(good)), follower), lambdaContext());
    const entries = sqs.commandCalls(ChangeMessageVisibilityBatchCommand).flatMap((call) => call.args[0].input.Entries ?? []);
    expect(entries.map((e) => [e.ReceiptHandle, e.VisibilityTimeout])).toEqual([
      [head.receiptHandle, 8],
      [follower.receiptHandle, 8],
    ]);
  });

  it('the delays: per record on a standard queue, per group (its most received record) on a FIFO queue', () => {
    const [a, b] = [orderIdOf('delay-a'), orderIdOf('delay-b')];
    const records = [fifoRecord(orderPlaced(a), 4), fifoRecord(cancelled(a), 1), fifoRecord(orderPlaced(b), 1)];
    expect([...retryDelays(records, 1, true).values()]).toEqual([8, 8, 1]);
    expect([...retryDelays(records, 1, false).values()]).toEqual([8, 1, 1]);
  });
});

describe('retryDelaySeconds', () => {
  it('doubles from the base and stops at 15 minutes', () => {
    expect([1, 2, 3, 4].map((n) => retryDelaySeconds(n, 1))).toEqual([1, 2, 4, 8]);
    expect(retryDelaySeconds(30, 2)).toBe(900);
    expect(retryDelaySeconds(5, 0)).toBe(0);
  });
});

describe('parseOrderEvent', () => {
  it('names the field that makes a message invalid', () => {
    expect(() => parseOrderEvent(JSON.stringify({ ...orderPlaced(orderIdOf('1')), orderId: 7 }))).toThrow(/orderId/);
  });
});

describe('fault injection', () => {
  it('is off unless FAULT_* variables are set', async () => {
    const { faultPlan, resetFaultPlan } = await import('../../lib/fault-injection.js');
    resetFaultPlan();
    expect(faultPlan()).toBeNull();
  });

  it('fails every record at rate 1 and none at rate 0, reported as batch item failures', async () => {
    const { resetFaultPlan } = await import('../../lib/fault-injection.js');
    const handler = createQueueConsumer('inventory', { OrderPlaced: async () => null });
    const records = [sqsRecord(orderPlaced(orderIdOf('1'))), sqsRecord(orderPlaced(orderIdOf('2')))];
    try {
      process.env.FAULT_TRANSIENT_ERROR_RATE = '1';
      resetFaultPlan();
      expect((await handler(sqsEvent(...records), lambdaContext())).batchItemFailures).toHaveLength(2);
      process.env.FAULT_TRANSIENT_ERROR_RATE = '0';
      resetFaultPlan();
      expect((await handler(sqsEvent(...records), lambdaContext())).batchItemFailures).toHaveLength(0);
    } finally {
      delete process.env.FAULT_TRANSIENT_ERROR_RATE;
      resetFaultPlan();
    }
  });

  it('crashes an invocation after handling half of its batch', async () => {
    const { resetFaultPlan } = await import('../../lib/fault-injection.js');
    const handled: string[] = [];
    const handler = createQueueConsumer('inventory', { OrderPlaced: async (e) => handled.push(e.orderId) });
    try {
      process.env.FAULT_CRASH_RATE = '1';
      resetFaultPlan();
      const records = [orderIdOf('1'), orderIdOf('2'), orderIdOf('3'), orderIdOf('4')].map((id) => sqsRecord(orderPlaced(id)));
      await expect(handler(sqsEvent(...records), lambdaContext())).rejects.toThrow(/Injected crash after 2 of 4/);
      expect(handled).toEqual([orderIdOf('1'), orderIdOf('2')]);
    } finally {
      delete process.env.FAULT_CRASH_RATE;
      resetFaultPlan();
    }
  });
});
