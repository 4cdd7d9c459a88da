import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { redriveDeadLetters, type RedriveOptions } from '../../scripts/dlq-redrive.js';

// The StartMessageMoveTask path of scripts/dlq-redrive.ts (what `npm run redrive -- --aws` uses), which
// the emulator does not implement: the task is started in the right direction, followed to its
// end, and a task that fails or is cancelled fails the redrive with its reason, moving nothing by
// hand. The receive/send/delete path runs against fauxqs in test/integration/dlq-redrive.test.ts.

const DLQ_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/order-pipeline-dev-payment-dlq';
const DLQ_ARN = 'arn:aws:sqs:us-east-1:123456789012:order-pipeline-dev-payment-dlq';
const SOURCE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/order-pipeline-dev-payment';
const SOURCE_ARN = 'arn:aws:sqs:us-east-1:123456789012:order-pipeline-dev-payment';

const sqs = new SQSClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const mock = mockClient(sqs);
const options: RedriveOptions = { sqs, deadLetterQueueUrl: DLQ_URL, sourceQueueUrl: SOURCE_URL };

const task = (Status: string, extra: Record<string, unknown> = {}) => ({
  Results: [{ TaskHandle: 'task-1', Status, SourceArn: DLQ_ARN, DestinationArn: SOURCE_ARN, ...extra }],
});

/** Runs a redrive to its end with the clock faked: the task is polled every 2 s. */
async function settle<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  const outcome = promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  await vi.runAllTimersAsync();
  return outcome;
}

/** The calls that move messages by hand. */
const handMoves = () => [
  ...mock.commandCalls(ReceiveMessageCommand),
  ...mock.commandCalls(SendMessageCommand),
  ...mock.commandCalls(DeleteMessageCommand),
];

beforeEach(() => {
  mock.reset();
  vi.useFakeTimers({ toFake: ['setTimeout'] });
  mock.on(GetQueueAttributesCommand, { QueueUrl: DLQ_URL }).resolves({ Attributes: { QueueArn: DLQ_ARN } });
  mock.on(GetQueueAttributesCommand, { QueueUrl: SOURCE_URL }).resolves({ Attributes: { QueueArn: SOURCE_ARN } });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('redriveDeadLetters on AWS (StartMessageMoveTask)', () => {
  it('starts a task from the DLQ to its source queue, follows it to COMPLETED and reports what it moved', async () => {
    mock.on(StartMessageMoveTaskCommand).resolves({ TaskHandle: 'task-1' });
    mock
      .on(ListMessageMoveTasksCommand)
      .resolvesOnce(task('RUNNING', { ApproximateNumberOfMessagesMoved: 2 }))
      .resolvesOnce(task('RUNNING', { ApproximateNumberOfMessagesMoved: 5 }))
      .resolves(task('COMPLETED', { ApproximateNumberOfMessagesMoved: 7 }));

    const { value, error } = await settle(redriveDeadLetters(options));
    expect(error).toBeUndefined();
    expect(value).toEqual({ method: 'StartMessageMoveTask', moved: 7, skipped: 0, messages: [] });
    // From the DLQ back to the queue, not the other way round.
    expect(mock.commandCalls(StartMessageMoveTaskCommand).map((call) => call.args[0].input)).toEqual([
      { SourceArn: DLQ_ARN, DestinationArn: SOURCE_ARN },
    ]);
    const polls = mock.commandCalls(ListMessageMoveTasksCommand);
    expect(polls).toHaveLength(3);
    for (const poll of polls) expect(poll.args[0].input).toMatchObject({ SourceArn: DLQ_ARN });
    expect(handMoves()).toHaveLength(0);
  });

  it('a task that FAILED fails the redrive with its reason, and moves nothing by hand', async () => {
    mock.on(StartMessageMoveTaskCommand).resolves({ TaskHandle: 'task-1' });
    mock
      .on(ListMessageMoveTasksCommand)
      .resolvesOnce(task('RUNNING'))
      .resolves(
        task('FAILED', {
          ApproximateNumberOfMessagesMoved: 3,
          FailureReason: 'AccessDenied: kms:GenerateDataKey on the destination queue',
        }),
      );

    const { value, error } = await settle(redriveDeadLetters(options));
    expect(value).toBeUndefined();
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('Message move task FAILED: AccessDenied: kms:GenerateDataKey on the destination queue');
    expect(handMoves()).toHaveLength(0);
  });

  it('a task CANCELLED (by someone in the console) fails the redrive too', async () => {
    mock.on(StartMessageMoveTaskCommand).resolves({ TaskHandle: 'task-1' });
    mock.on(ListMessageMoveTasksCommand).resolves(task('CANCELLED'));

    const { error } = await settle(redriveDeadLetters(options));
    expect((error as Error).message).toBe('Message move task CANCELLED: no reason given');
    expect(handMoves()).toHaveLength(0);
  });

  it('a refused StartMessageMoveTask (no permission) fails the redrive instead of moving by hand', async () => {
    mock
      .on(StartMessageMoveTaskCommand)
      .rejects(Object.assign(new Error('User is not authorized to perform sqs:StartMessageMoveTask'), { name: 'AccessDenied' }));
    mock.on(ReceiveMessageCommand).resolves({ Messages: [] });

    const { error } = await settle(redriveDeadLetters(options));
    expect(error).toMatchObject({ name: 'AccessDenied' });
    expect(mock.commandCalls(ListMessageMoveTasksCommand)).toHaveLength(0);
    expect(handMoves()).toHaveLength(0);
  });

  it('an endpoint without StartMessageMoveTask gets receive, send, then delete', async () => {
    mock.on(StartMessageMoveTaskCommand).rejects(Object.assign(new Error('not implemented'), { name: 'UnsupportedOperation' }));
    mock
      .on(ReceiveMessageCommand)
      .resolvesOnce({
        Messages: [
          {
            MessageId: 'm1',
            ReceiptHandle: 'r1',
            Body: '{"n":1}',
            MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderPlaced' } },
          },
        ],
      })
      .resolves({ Messages: [] });
    mock.on(SendMessageCommand).resolves({ MessageId: 'm1-copy' });
    mock.on(DeleteMessageCommand).resolves({});

    const { value } = await settle(redriveDeadLetters(options));
    expect(value).toMatchObject({ method: 'receive-send-delete', moved: 1 });
    const moves = mock
      .calls()
      .map((call) => call.args[0])
      .filter((command) => command instanceof SendMessageCommand || command instanceof DeleteMessageCommand);
    expect(moves.map((command) => command.constructor.name)).toEqual(['SendMessageCommand', 'DeleteMessageCommand']);
    expect(moves[0]!.input).toEqual({
      QueueUrl: SOURCE_URL,
      MessageBody: '{"n":1}',
      MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderPlaced' } },
    });
    expect(moves[1]!.input).toEqual({ QueueUrl: DLQ_URL, ReceiptHandle: 'r1' });
  });

  it('a dry run, a limit or a selection never starts a task: it could move what was not asked for', async () => {
    mock.on(ReceiveMessageCommand).resolves({ Messages: [] });
    for (const extra of [{ dryRun: true }, { max: 2 }, { select: () => true }]) {
      const { value } = await settle(redriveDeadLetters({ ...options, ...extra }));
      expect(value).toMatchObject({ method: 'receive-send-delete', moved: 0 });
    }
    expect(mock.commandCalls(StartMessageMoveTaskCommand)).toHaveLength(0);
  });
});
