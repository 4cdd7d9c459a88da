// A counting HTTP proxy in front of the emulators: every AWS request a function, a poller or a
// tool makes goes through it, and it counts what AWS would bill — SNS publishes, SQS requests by
// action (empty receives apart), DynamoDB requests and capacity units by table. Counted at the
// wire, not estimated: `startLocalPipeline({ countRequests: true })` hands the proxy's endpoints
// to everything it starts.
//
// How an action is read: SQS (JSON protocol) and DynamoDB name it in the `X-Amz-Target` header
// (`AmazonSQS.ReceiveMessage`, `DynamoDB_20120810.PutItem`); SNS (and SQS's older query protocol)
// in the `Action=` form field. A receive is empty when its response holds no message. DynamoDB
// requests get `ReturnConsumedCapacity: TOTAL` added, so dynalite reports the capacity units each
// one consumed with AWS's size rounding (1 WRU per KB written, 1 RRU per 4 KB read strongly
// consistent, half that eventually consistent); a conditional write that fails still costs on
// AWS, and is counted as 1 WRU (dynalite reports nothing for it). Index (GSI) writes are not
// reported by dynalite and so not counted.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DynamoTableCounts {
  /** Requests by action (GetItem, PutItem, UpdateItem, Query, ...). */
  actions: Record<string, number>;
  reads: number;
  writes: number;
  /** Reads that asked for ConsistentRead. */
  consistentReads: number;
  readCapacityUnits: number;
  writeCapacityUnits: number;
  /** Conditional writes whose condition failed (still billed on AWS). */
  conditionalCheckFailed: number;
  /** Requests and consumed units by action: where each unit goes (`npm run bench`). */
  unitsByAction: Record<string, { requests: number; readUnits: number; writeUnits: number }>;
}

export interface RequestCounts {
  sns: { actions: Record<string, number>; publishes: number; publishedMessages: number };
  sqs: {
    actions: Record<string, number>;
    /** ReceiveMessage requests that returned no message (billed like any other). */
    emptyReceives: number;
    receivedMessages: number;
    /** ReceiveMessage requests by queue name, and how many of them came back empty. */
    receivesByQueue: Record<string, { receives: number; empty: number }>;
  };
  dynamodb: { tables: Record<string, DynamoTableCounts> };
  /** Requests that failed at the proxy (emulator unreachable). */
  proxyErrors: number;
}

export interface RequestCounter {
  /** Give these to clients instead of the emulators' own. */
  endpoints: { sqs: string; sns: string; dynamodb: string };
  /** The emulators behind the proxy: traffic sent there is not counted. */
  targets: { sqs: string; sns: string; dynamodb: string };
  snapshot(): RequestCounts;
  reset(): void;
  stop(): Promise<void>;
}

const SNS_ACTIONS = new Set([
  'Publish',
  'PublishBatch',
  'CreateTopic',
  'DeleteTopic',
  'Subscribe',
  'Unsubscribe',
  'ListTopics',
  'ListSubscriptions',
  'ListSubscriptionsByTopic',
  'GetTopicAttributes',
  'SetTopicAttributes',
  'GetSubscriptionAttributes',
  'SetSubscriptionAttributes',
  'TagResource',
  'UntagResource',
  'ListTagsForResource',
]);
const DYNAMO_READS = new Set(['GetItem', 'BatchGetItem', 'Query', 'Scan', 'TransactGetItems']);
const DYNAMO_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);
const RETURNS_CAPACITY = new Set([...DYNAMO_READS, ...DYNAMO_WRITES]);

function emptyCounts(): RequestCounts {
  return {
    sns: { actions: {}, publishes: 0, publishedMessages: 0 },
    sqs: { actions: {}, emptyReceives: 0, receivedMessages: 0, receivesByQueue: {} },
    dynamodb: { tables: {} },
    proxyErrors: 0,
  };
}

export async function startRequestCounter(targets: { sqs: string; dynamodb: string }): Promise<RequestCounter> {
  let counts = emptyCounts();
  const messaging = await startProxy(
    targets.sqs,
    (request, body, status, response) => countMessaging(counts, request, body, status, response),
    () => counts.proxyErrors++,
  );
  const dynamo = await startProxy(
    targets.dynamodb,
    (request, body, status, response) => countDynamo(counts, request, body, status, response),
    () => counts.proxyErrors++,
    rewriteDynamoRequest,
  );
  return {
    endpoints: { sqs: messaging.url, sns: messaging.url, dynamodb: dynamo.url },
    targets: { sqs: targets.sqs, sns: targets.sqs, dynamodb: targets.dynamodb },
    snapshot: () => structuredClone(counts),
    reset: () => {
      counts = emptyCounts();
    },
    stop: async () => {
      await Promise.all([messaging.close(), dynamo.close()]);
    },
  };
}

type Counter = (request: http.IncomingMessage, body: Buffer, status: number, response: Buffer) => void;

async function startProxy(
  target: string,
  count: Counter,
  onError: () => void,
  rewrite?: (request: http.IncomingMessage, body: Buffer) => Buffer,
): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const original = Buffer.concat(chunks);
      const body = rewrite ? rewrite(request, original) : original;
      const headers = { ...request.headers, host: upstream.host, 'content-length': String(body.length) };
      const forward = http.request(
        { host: upstream.hostname, port: upstream.port, method: request.method, path: request.url, headers, agent },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => parts.push(chunk));
          answer.on('end', () => {
            const payload = Buffer.concat(parts);
            try {
              count(request, original, answer.statusCode ?? 0, payload);
            } catch {
              // A body the counter cannot read is forwarded all the same.
            }
            const outHeaders = { ...answer.headers };
            delete outHeaders['transfer-encoding'];
            outHeaders['content-length'] = String(payload.length);
            response.writeHead(answer.statusCode ?? 502, outHeaders);
            response.end(payload);
          });
          answer.on('error', () => response.destroy());
        },
      );
      forward.on('error', (error) => {
        onError();
        if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`request counter: ${error.message}`);
      });
      // A long poll aborted by the client (a poller stopping) ends upstream too.
      response.on('close', () => {
        if (!response.writableFinished) forward.destroy();
      });
      forward.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

function increment(record: Record<string, number>, key: string, by = 1): void {
  record[key] = (record[key] ?? 0) + by;
}

/** The action and its parameters: JSON protocol (X-Amz-Target) or query protocol (form fields). */
function readAction(
  request: http.IncomingMessage,
  body: Buffer,
): { service: 'sqs' | 'sns'; action: string; params: Record<string, unknown> } | undefined {
  const target = request.headers['x-amz-target'];
  if (typeof target === 'string' && target.includes('.')) {
    const [prefix, action] = target.split('.') as [string, string];
    const params = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
    return { service: prefix.startsWith('AmazonSQS') ? 'sqs' : 'sns', action, params };
  }
  const form = new URLSearchParams(body.toString('utf8'));
  const action = form.get('Action');
  if (!action) return undefined;
  const params: Record<string, unknown> = Object.fromEntries(form.entries());
  params.__batchEntries = [...form.keys()].filter((key) => /^PublishBatchRequestEntries\.member\.\d+\.Id$/.test(key)).length;
  return { service: SNS_ACTIONS.has(action) ? 'sns' : 'sqs', action, params };
}

function countMessaging(counts: RequestCounts, request: http.IncomingMessage, body: Buffer, _status: number, response: Buffer): void {
  const parsed = readAction(request, body);
  if (!parsed) return;
  const { service, action, params } = parsed;
  if (service === 'sns') {
    increment(counts.sns.actions, action);
    if (action === 'Publish') {
      counts.sns.publishes++;
      counts.sns.publishedMessages++;
    } else if (action === 'PublishBatch') {
      counts.sns.publishes++;
      const entries = Array.isArray(params.PublishBatchRequestEntries)
        ? params.PublishBatchRequestEntries.length
        : Number(params.__batchEntries ?? 0);
      counts.sns.publishedMessages += entries;
    }
    return;
  }
  increment(counts.sqs.actions, action);
  if (action === 'ReceiveMessage') {
    const received = receivedMessages(response);
    counts.sqs.receivedMessages += received;
    if (received === 0) counts.sqs.emptyReceives++;
    const queueUrl = String(params.QueueUrl ?? request.url ?? '');
    const queue = queueUrl.slice(queueUrl.lastIndexOf('/') + 1);
    const byQueue = (counts.sqs.receivesByQueue[queue] ??= { receives: 0, empty: 0 });
    byQueue.receives++;
    if (received === 0) byQueue.empty++;
  }
}

function receivedMessages(response: Buffer): number {
  const text = response.toString('utf8');
  if (text.trimStart().startsWith('{')) {
    const messages = (JSON.parse(text) as { Messages?: unknown[] }).Messages;
    return Array.isArray(messages) ? messages.length : 0;
  }
  return (text.match(/<Message>/g) ?? []).length;
}

function dynamoAction(request: http.IncomingMessage): string | undefined {
  const target = request.headers['x-amz-target'];
  return typeof target === 'string' && target.startsWith('DynamoDB_') ? target.slice(target.indexOf('.') + 1) : undefined;
}

function rewriteDynamoRequest(request: http.IncomingMessage, body: Buffer): Buffer {
  const action = dynamoAction(request);
  if (!action || !RETURNS_CAPACITY.has(action) || body.length === 0) return body;
  try {
    const params = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    params.ReturnConsumedCapacity = 'TOTAL';
    return Buffer.from(JSON.stringify(params));
  } catch {
    return body;
  }
}

function tableCounts(counts: RequestCounts, table: string): DynamoTableCounts {
  return (counts.dynamodb.tables[table] ??= {
    actions: {},
    reads: 0,
    writes: 0,
    consistentReads: 0,
    readCapacityUnits: 0,
    writeCapacityUnits: 0,
    conditionalCheckFailed: 0,
    unitsByAction: {},
  });
}

function actionUnits(entry: DynamoTableCounts, action: string) {
  return (entry.unitsByAction[action] ??= { requests: 0, readUnits: 0, writeUnits: 0 });
}

function countDynamo(counts: RequestCounts, request: http.IncomingMessage, body: Buffer, status: number, response: Buffer): void {
  const action = dynamoAction(request);
  if (!action) return;
  const params = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
  const tables =
    typeof params.TableName === 'string'
      ? [params.TableName]
      : params.RequestItems && typeof params.RequestItems === 'object'
        ? Object.keys(params.RequestItems)
        : ['(none)'];
  const isRead = DYNAMO_READS.has(action);
  const isWrite = DYNAMO_WRITES.has(action);
  for (const table of tables) {
    const entry = tableCounts(counts, table);
    increment(entry.actions, action);
    actionUnits(entry, action).requests++;
    if (isRead) {
      entry.reads++;
      if (params.ConsistentRead === true) entry.consistentReads++;
    }
    if (isWrite) entry.writes++;
  }
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(response.toString('utf8')) as Record<string, unknown>;
  } catch {
    return;
  }
  if (status >= 400) {
    if (isWrite && String(answer.__type ?? '').endsWith('ConditionalCheckFailedException')) {
      const entry = tableCounts(counts, tables[0]!);
      entry.conditionalCheckFailed++;
      entry.writeCapacityUnits += 1;
      actionUnits(entry, action).writeUnits += 1;
    }
    return;
  }
  const consumed = answer.ConsumedCapacity;
  for (const capacity of Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) {
    const { TableName, CapacityUnits } = capacity as { TableName?: string; CapacityUnits?: number };
    const entry = tableCounts(counts, TableName ?? tables[0]!);
    if (isRead) {
      entry.readCapacityUnits += CapacityUnits ?? 0;
      actionUnits(entry, action).readUnits += CapacityUnits ?? 0;
    } else if (isWrite) {
      entry.writeCapacityUnits += CapacityUnits ?? 0;
      actionUnits(entry, action).writeUnits += CapacityUnits ?? 0;
    }
  }
}
