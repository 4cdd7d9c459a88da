import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';

export interface RedriveOptions {
  sqs: SQSClient;
  deadLetterQueueUrl: string;
  sourceQueueUrl: string;
  /** Move at most this many messages (forces the receive/send/delete path). */
  max?: number;
  /** List what would move, move nothing. */
  dryRun?: boolean;
  /** Leave a message in the DLQ when this returns false (for example a body that can never work). */
  select?: (message: Message) => boolean;
  /** Seconds a scanned message stays hidden while the redrive runs. */
  scanVisibilitySeconds?: number;
}

export interface RedrivenMessage {
  messageId: string;
  body: string;
  /** Its message attributes as received (a claim-checked event's type and order id are there). */
  attributes: Record<string, MessageAttributeValue>;
  /** Chosen to move (in a dry run: would have moved). */
  selected: boolean;
  moved: boolean;
}

export interface RedriveReport {
  method: 'StartMessageMoveTask' | 'receive-send-delete';
  moved: number;
  skipped: number;
  messages: RedrivenMessage[];
}

/**
 * Moves messages from a dead-letter queue back to its source queue.
 *
 * On AWS, StartMessageMoveTask does it server-side. Where that is not available (the local
 * emulator) or a limit is asked for, it receives, sends a copy with the original body and
 * attributes, and only then deletes: an interruption can leave a message in both queues (the
 * consumers are idempotent, so a duplicate is harmless) but never in neither.
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveReport> {
  if (!options.dryRun && options.max === undefined && options.select === undefined) {
    const moved = await tryMessageMoveTask(options);
    if (moved !== undefined) return { method: 'StartMessageMoveTask', moved, skipped: 0, messages: [] };
  }
  return receiveSendDelete(options);
}

async function queueArn(sqs: SQSClient, queueUrl: string): Promise<string> {
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  const arn = Attributes?.QueueArn;
  if (!arn) throw new Error(`No ARN for ${queueUrl}`);
  return arn;
}

async function tryMessageMoveTask(options: RedriveOptions): Promise<number | undefined> {
  const { sqs } = options;
  const sourceArn = await queueArn(sqs, options.deadLetterQueueUrl);
  const destinationArn = await queueArn(sqs, options.sourceQueueUrl);
  try {
    await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: sourceArn, DestinationArn: destinationArn }));
  } catch (error) {
    const name = (error as { name?: string }).name ?? '';
    // The local emulator answers these for actions it does not implement.
    if (/Unsupported|InvalidAction|UnknownOperation|NotImplemented|InvalidParameterValue/i.test(name)) return undefined;
    throw error;
  }
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const { Results } = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: sourceArn, MaxResults: 1 }));
    const task = Results?.[0];
    if (!task) continue;
    if (task.Status === 'COMPLETED') return task.ApproximateNumberOfMessagesMoved ?? 0;
    if (task.Status === 'FAILED' || task.Status === 'CANCELLED') {
      throw new Error(`Message move task ${task.Status}: ${task.FailureReason ?? 'no reason given'}`);
    }
  }
}

/** Received message attributes carry list fields SendMessage refuses; keep what SQS accepts. */
function sendableAttributes(
  attributes: Record<string, MessageAttributeValue> | undefined,
): Record<string, MessageAttributeValue> | undefined {
  if (!attributes) return undefined;
  return Object.fromEntries(
    Object.entries(attributes).map(([name, value]) => [
      name,
      {
        DataType: value.DataType,
        ...(value.StringValue !== undefined ? { StringValue: value.StringValue } : {}),
        ...(value.BinaryValue !== undefined ? { BinaryValue: value.BinaryValue } : {}),
      },
    ]),
  );
}

/**
 * A FIFO queue (queueType=fifo) takes a message only with its group, and drops one whose
 * deduplication id it saw in the last five minutes: the message's own group (its order), and a
 * deduplication id of the dead-lettered message, not the event's, which the source queue may still
 * remember from the first delivery. A redrive interrupted and run again within five minutes then
 * sends it once.
 */
function fifoSendAttributes(queueUrl: string, message: Message): { MessageGroupId?: string; MessageDeduplicationId?: string } {
  if (!queueUrl.endsWith('.fifo')) return {};
  const group = message.Attributes?.MessageGroupId;
  if (!group) throw new Error(`Message ${message.MessageId} has no MessageGroupId: it cannot go back to the FIFO queue ${queueUrl}`);
  return { MessageGroupId: group, MessageDeduplicationId: `redrive-${message.MessageId}` };
}

async function receiveSendDelete(options: RedriveOptions): Promise<RedriveReport> {
  const { sqs, deadLetterQueueUrl, sourceQueueUrl } = options;
  const max = options.max ?? Number.POSITIVE_INFINITY;
  const hiddenFor = options.scanVisibilitySeconds ?? 30;
  const report: RedriveReport = { method: 'receive-send-delete', moved: 0, skipped: 0, messages: [] };
  // Messages looked at but left in the DLQ: made visible again at the end.
  const leftBehind: Message[] = [];
  const seen = new Set<string>();
  let taken = 0;
  while (taken < max) {
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: deadLetterQueueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        VisibilityTimeout: hiddenFor,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    if (!Messages || Messages.length === 0) break;
    let fresh = 0;
    for (const message of Messages) {
      const messageId = message.MessageId ?? '';
      if (seen.has(messageId)) continue;
      seen.add(messageId);
      fresh += 1;
      const body = message.Body ?? '';
      const attributes = message.MessageAttributes ?? {};
      const wanted = taken < max && (options.select?.(message) ?? true);
      if (wanted) taken += 1;
      else report.skipped += 1;
      if (!wanted || options.dryRun) {
        leftBehind.push(message);
        report.messages.push({ messageId, body, attributes, selected: wanted, moved: false });
        continue;
      }
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: sourceQueueUrl,
          MessageBody: body,
          MessageAttributes: sendableAttributes(message.MessageAttributes),
          ...fifoSendAttributes(sourceQueueUrl, message),
        }),
      );
      await sqs.send(new DeleteMessageCommand({ QueueUrl: deadLetterQueueUrl, ReceiptHandle: message.ReceiptHandle }));
      report.moved += 1;
      report.messages.push({ messageId, body, attributes, selected: true, moved: true });
    }
    if (fresh === 0) break;
  }
  for (let start = 0; start < leftBehind.length; start += 10) {
    await sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: deadLetterQueueUrl,
        Entries: leftBehind.slice(start, start + 10).map((message, index) => ({
          Id: String(index),
          ReceiptHandle: message.ReceiptHandle,
          VisibilityTimeout: 0,
        })),
      }),
    );
  }
  return report;
}
