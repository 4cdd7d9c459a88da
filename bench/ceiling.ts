// The ceiling: the AWS requests one order needed in the pipeline run (as counted at the
// emulators), issued straight to a fresh set of the same emulators, provisioned from the same
// template, with no API, no Lambda environments and no pollers — `concurrency` clients, each
// issuing one "order's" requests one after the other, in a closed loop. What this measures is how
// fast this machine's emulators serve that request mix; the pipeline's throughput divided by it says
// how much the pipeline itself (handlers, workers, polling, batching windows) costs on top.
//
// Rates per order are fractional (0.13 DeleteMessageBatch per order at batch size 10); order i
// issues floor((i+1)·rate) − floor(i·rate) of each, so N orders issue exactly round(N·rate).
// Receives use WaitTimeSeconds 0 (the pipeline's long-poll waits cost time, not work).
//
// The requests go through the same counting proxy (local/request-counter.ts) as the pipeline's:
// in the pipeline run every AWS request crosses it (two more HTTP hops, its parsing, and the
// ReturnConsumedCapacity it adds to DynamoDB requests, in the same thread as the emulators), so a
// ceiling measured without it would compare the pipeline with a cheaper path to the same emulators.

import path from 'node:path';
import { DescribeTableCommand, DynamoDBClient, type KeySchemaElement, type AttributeDefinition } from '@aws-sdk/client-dynamodb';
import { DeleteItemCommand, GetItemCommand, PutItemCommand, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { clientConfig, LOCAL_ACCOUNT_ID, LOCAL_REGION, startEmulators } from '../local/emulators.js';
import { readPackagedStack } from '../local/package-stack.js';
import { provisionStack } from '../local/provision.js';
import { startRequestCounter, type RequestCounts } from '../local/request-counter.js';
import { readTemplate, StackResolver } from '../local/template.js';
import { round } from './load.js';

export interface CeilingResult {
  orders: number;
  concurrency: number;
  requestsPerOrder: number;
  requests: number;
  elapsedSeconds: number;
  ordersPerSecond: number;
  requestsPerSecond: number;
}

type Op = { kind: 'publish' } | { kind: 'sqs'; action: string; queue: string } | { kind: 'dynamo'; action: string; table: string };

/** The per-order request mix, from the counts of a pipeline run of `orders` orders. */
export function requestMix(counts: RequestCounts, orders: number, queueNames: string[]): Array<{ op: Op; rate: number }> {
  const mix: Array<{ op: Op; rate: number }> = [];
  const publishes = (counts.sns.actions.Publish ?? 0) + (counts.sns.actions.PublishBatch ?? 0);
  if (publishes > 0) mix.push({ op: { kind: 'publish' }, rate: publishes / orders });
  for (const [action, count] of Object.entries(counts.sqs.actions)) {
    if (
      ![
        'ReceiveMessage',
        'DeleteMessageBatch',
        'DeleteMessage',
        'ChangeMessageVisibilityBatch',
        'ChangeMessageVisibility',
        'SendMessage',
      ].includes(action)
    )
      continue;
    // Spread over the stack's queues as the pipeline did (receives by queue are counted; the rest evenly).
    queueNames.forEach((queue) => {
      const share =
        action === 'ReceiveMessage'
          ? (counts.sqs.receivesByQueue[queue]?.receives ?? 0) / Math.max(1, counts.sqs.actions.ReceiveMessage ?? 0)
          : 1 / queueNames.length;
      if (share > 0) mix.push({ op: { kind: 'sqs', action, queue }, rate: (count * share) / orders });
    });
  }
  for (const [table, entry] of Object.entries(counts.dynamodb.tables)) {
    for (const [action, count] of Object.entries(entry.actions)) mix.push({ op: { kind: 'dynamo', action, table }, rate: count / orders });
  }
  return mix;
}

export async function runCeiling(options: {
  templatePath: string;
  counts: RequestCounts;
  countedOrders: number;
  orders: number;
  concurrency: number;
  /** Orders replayed first and not measured. */
  warmupOrders?: number;
  onProgress?: (done: number) => void;
}): Promise<CeilingResult> {
  const packageDir = path.dirname(options.templatePath);
  const { serviceName, stage } = await readPackagedStack(packageDir);
  const resolver = new StackResolver(await readTemplate(options.templatePath), {
    region: LOCAL_REGION,
    accountId: LOCAL_ACCOUNT_ID,
    partition: 'aws',
    stackName: `${serviceName}-${stage}`,
  });
  const emulators = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
  const counter = await startRequestCounter(emulators.endpoints).catch(async (error: unknown) => {
    await emulators.stop();
    throw error;
  });
  const sqs = new SQSClient(clientConfig(counter.endpoints.sqs));
  const sns = new SNSClient(clientConfig(counter.endpoints.sns));
  const dynamodb = new DynamoDBClient(clientConfig(counter.endpoints.dynamodb));
  const s3 = new S3Client({ ...clientConfig(emulators.endpoints.s3), forcePathStyle: true });
  try {
    const resources = await provisionStack(resolver, { sqs, sns, dynamodb, s3 });
    const topicArn = resources.topicArn!;
    const queueUrls = Object.fromEntries(Object.entries(resources.queues).map(([name, queue]) => [name, queue.url]));
    const mix = requestMix(
      options.counts,
      options.countedOrders,
      Object.keys(options.counts.sqs.receivesByQueue).filter((name) => queueUrls[name]),
    );
    const keys = new Map<string, { schema: KeySchemaElement[]; types: AttributeDefinition[] }>();
    for (const table of new Set(mix.flatMap(({ op }) => (op.kind === 'dynamo' ? [op.table] : [])))) {
      const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: table })).catch(() => ({ Table: undefined }));
      if (Table?.KeySchema) keys.set(table, { schema: Table.KeySchema, types: Table.AttributeDefinitions ?? [] });
    }
    const handles = new Map<string, string[]>();
    const filler = 'x'.repeat(600);
    const body = JSON.stringify({ eventType: 'OrderPlaced', orderId: 'ord_ceiling', data: { filler } });
    const keyOf = (table: string, n: number) => {
      const key: Record<string, { S: string } | { N: string }> = {};
      for (const element of keys.get(table)?.schema ?? []) {
        const type = keys.get(table)?.types.find((d) => d.AttributeName === element.AttributeName)?.AttributeType;
        key[element.AttributeName!] = type === 'N' ? { N: String(n) } : { S: `ceiling-${n}` };
      }
      return key;
    };
    let requests = 0;
    const issue = async (op: Op, n: number, publishIndex: number) => {
      requests++;
      if (op.kind === 'publish') {
        await sns.send(
          new PublishCommand({
            TopicArn: topicArn,
            Message: body,
            MessageAttributes: {
              eventType: { DataType: 'String', StringValue: publishIndex % 2 === 0 ? 'OrderPlaced' : 'OrderConfirmed' },
            },
          }),
        );
        return;
      }
      if (op.kind === 'sqs') {
        const QueueUrl = queueUrls[op.queue]!;
        const pool = handles.get(op.queue) ?? [];
        handles.set(op.queue, pool);
        if (op.action === 'ReceiveMessage') {
          const { Messages = [] } = await sqs.send(
            new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }),
          );
          pool.push(...Messages.map((m) => m.ReceiptHandle!));
        } else if (op.action === 'SendMessage') {
          await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: body }));
        } else {
          const batch = pool.splice(0, 10);
          if (batch.length === 0) batch.push('missing-receipt-handle');
          const Entries = batch.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle }));
          if (op.action.startsWith('Delete')) await sqs.send(new DeleteMessageBatchCommand({ QueueUrl, Entries })).catch(() => undefined);
          else
            await sqs
              .send(new ChangeMessageVisibilityBatchCommand({ QueueUrl, Entries: Entries.map((e) => ({ ...e, VisibilityTimeout: 0 })) }))
              .catch(() => undefined);
        }
        return;
      }
      const TableName = op.table;
      const Key = keyOf(TableName, n);
      const swallow = () => undefined;
      switch (op.action) {
        case 'GetItem':
          await dynamodb.send(new GetItemCommand({ TableName, Key, ConsistentRead: true })).catch(swallow);
          break;
        case 'Query': {
          const [hash] = keys.get(TableName)?.schema ?? [];
          await dynamodb
            .send(
              new QueryCommand({
                TableName,
                KeyConditionExpression: '#k = :k',
                ExpressionAttributeNames: { '#k': hash!.AttributeName! },
                ExpressionAttributeValues: { ':k': Key[hash!.AttributeName!]! },
              }),
            )
            .catch(swallow);
          break;
        }
        case 'PutItem':
          await dynamodb.send(new PutItemCommand({ TableName, Item: { ...Key, filler: { S: filler } } })).catch(swallow);
          break;
        case 'UpdateItem':
          await dynamodb
            .send(
              new UpdateItemCommand({
                TableName,
                Key,
                UpdateExpression: 'ADD hits :one SET filler = :f',
                ExpressionAttributeValues: { ':one': { N: '1' }, ':f': { S: filler } },
              }),
            )
            .catch(swallow);
          break;
        case 'DeleteItem':
          await dynamodb.send(new DeleteItemCommand({ TableName, Key })).catch(swallow);
          break;
        default:
          await dynamodb.send(new GetItemCommand({ TableName, Key })).catch(swallow);
      }
    };
    /** Orders first .. first + count - 1, `concurrency` clients at a time. */
    const placeOrders = async (first: number, count: number, onProgress?: (done: number) => void) => {
      let next = first;
      let done = 0;
      const client = async () => {
        while (next < first + count) {
          const n = next++;
          let publishIndex = 0;
          for (const { op, rate } of mix) {
            const times = Math.floor((n + 1) * rate) - Math.floor(n * rate);
            for (let k = 0; k < times; k++) await issue(op, n, op.kind === 'publish' ? publishIndex++ : 0);
          }
          onProgress?.(++done);
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, () => client()));
    };
    // Warmed up as the pipeline is before its measured run (BenchOptions.warmupOrders).
    await placeOrders(0, options.warmupOrders ?? 0);
    requests = 0;
    const started = performance.now();
    await placeOrders(options.warmupOrders ?? 0, options.orders, options.onProgress);
    const elapsedSeconds = (performance.now() - started) / 1000;
    return {
      orders: options.orders,
      concurrency: options.concurrency,
      requestsPerOrder: round(requests / options.orders, 2),
      requests,
      elapsedSeconds: round(elapsedSeconds, 3),
      ordersPerSecond: round(options.orders / elapsedSeconds, 1),
      requestsPerSecond: round(requests / elapsedSeconds, 0),
    };
  } finally {
    for (const client of [sqs, sns, dynamodb, s3]) client.destroy();
    await counter.stop();
    await emulators.stop();
  }
}
