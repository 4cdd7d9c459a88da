// The local console: `GET /console` on the runtime's HTTP port (never deployed; no route of the
// template), a page that draws the pipeline as the runtime runs it (API → topic → queues →
// functions → tables, read from the runtime, so a queue or consumer added to the stack appears by
// itself), its live counters, the latest orders with each participant's timeline, and actions
// for a workshop: place an order of each kind, send a poison message, switch faults and outages
// on and off, redrive a dead-letter queue. Its JSON and actions are under /_local/console/, and
// its updates are pushed as server-sent events (one `state` event a second while a page listens).
//
// The runtime listens on 127.0.0.1 only, and the console adds no authentication of its own. A page
// from another origin could still make a browser send a simple POST to a loopback port, so every
// action wants `content-type: application/json` (which a cross-origin page cannot send without a
// preflight that is never answered) and refuses an Origin other than the console's own.

import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { FauxqsServer } from 'fauxqs';
import { type FaultSwitches, writeOutages } from '../lib/fault-injection.js';
import { type StoredOrder, toOrderRecord } from '../lib/order-store.js';
import { PARTICIPANTS } from '../lib/order-schema.js';
import { redriveDeadLetters } from '../scripts/dlq-redrive.js';
import type { RecentLine } from './invocation-log.js';
import { isLoopbackHost } from './http-api.js';
import type { FunctionStats } from './lambda-environment.js';
import type { ProvisionedResources } from './provision.js';
import { largeOrderItems, newRunId, stockCatalogue } from './large-order.js';
import { type Lane, type QueueConsumer, queueLabel } from './queue-consumers.js';
import { SAMPLE_ADDRESS } from './sample-order.js';
import type { EventSourceStats } from './sqs-poller.js';
import { queueDepth, type QueueDepth } from './status.js';

/** What the console reads of the runtime: everything is looked up at each read, nothing listed here. */
export interface ConsoleSources {
  apiUrl: () => string;
  stage: string;
  queueType: 'standard' | 'fifo';
  routes: string[];
  resources: ProvisionedResources;
  consumers: Array<QueueConsumer & { queueUrl: string; deadLetterQueueUrl: string | undefined }>;
  fauxqs: Pick<FauxqsServer, 'inspectQueue'>;
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
  /** Per function key: its deployed name and counters; per consumed queue: its poller's counters and settings. */
  functions: () => Array<{ name: string; functionName: string; stats: FunctionStats }>;
  eventSources: () => Array<{
    queueName: string;
    functionName: string;
    stats: EventSourceStats;
    batchSize: number;
    maximumConcurrency: number;
    setDuplicateDeliveryRate(rate: number): void;
  }>;
  /** The JSON file every function reads its outages and switched faults from (FAULT_OUTAGES_FILE). */
  faultSwitchesFile: string;
  tokenFor(customerId: string): Promise<string>;
  recentLog: () => RecentLine[];
}

/** The kinds of order the console places, each a POST /orders a customer could send. */
export const ORDER_KINDS = {
  normal: { label: 'Normal order', items: [{ sku: 'SKU-TSHIRT-M', quantity: 1 }], token: 'tok_visa' },
  declined: { label: 'Declined card', items: [{ sku: 'SKU-MUG', quantity: 1 }], token: 'tok_decline' },
  flaky: { label: 'Flaky card', items: [{ sku: 'SKU-HOODIE-M', quantity: 1 }], token: 'tok_flaky' },
  // The poster is a limited edition of one unit (local/seed-data.json): two are never in stock.
  outOfStock: { label: 'Out of stock', items: [{ sku: 'SKU-POSTER-LTD', quantity: 2 }], token: 'tok_visa' },
  // Its events carry `lane: express`: each consumer takes them from its express queue.
  express: { label: 'Express order', items: [{ sku: 'SKU-TSHIRT-M', quantity: 1 }], token: 'tok_visa', shippingSpeed: 'express' },
} as const;
/** `big`: 5,000 lines of SKUs stocked for it (local/large-order.ts), an OrderPlaced far over 256 KB: the claim-check. */
export type OrderKind = keyof typeof ORDER_KINDS | 'big';
export const BIG_ORDER_LINES = 5000;

/**
 * The failure rate a consumer's "faults" switch turns on by default: one record in five fails. A
 * record then reaches the DLQ only if it fails all of its 5 receives (0.2^5: 1 in 3,125).
 */
export const CONSOLE_TRANSIENT_ERROR_RATE = 0.2;
/** The console's customer: its orders are placed under this token subject. */
export const CONSOLE_CUSTOMER = 'cus_console';
const LATEST_ORDERS = 8;

export interface ConsoleQueue extends QueueDepth {
  dlq: QueueDepth | null;
}

export interface ConsoleState {
  at: string;
  stage: string;
  queueType: 'standard' | 'fifo';
  api: { url: string; routes: string[] };
  topic: { name: string; arn: string } | null;
  consumers: Array<{
    name: string;
    /** `standard`, or `express` for a consumer's express queue (the same function, its own queue and DLQ). */
    lane: Lane;
    /** Unique per queue: `payment`, `payment-express`. */
    key: string;
    eventTypes: string[];
    queue: ConsoleQueue;
    batchSize: number | null;
    maximumConcurrency: number | null;
    /** Records: received, deleted after success, left to come back, received again, delivered twice on purpose. */
    records: { received: number; processed: number; failed: number; redelivered: number; duplicated: number };
    maxConcurrent: number;
  }>;
  /** Every function, since the runtime started: the API's, the consumers', the scheduled ones. */
  functions: Array<{ name: string; invocations: number; errors: number; running: number; consumes: string[] }>;
  tables: Array<{ logicalId: string; name: string }>;
  /** S3 buckets the stack provisioned (the claim-check bucket), beside the tables. */
  buckets: Array<{ logicalId: string; name: string }>;
  switches: {
    /** A consumer's name → its injected transient error rate is on. */
    faults: Record<string, boolean>;
    outages: { provider: boolean; topic: boolean };
    duplicates: boolean;
  };
  orders: ConsoleOrder[];
}

export interface ConsoleOrder {
  orderId: string;
  status: string;
  reason?: string;
  createdAt: string;
  decidedAt?: string;
  /** The first lines (a 5,000-line order is not sent whole every second), and how many there are. */
  items: Array<{ sku: string; quantity: number }>;
  lines: number;
  /** Sent with "shippingSpeed": "express": its events go through the express queues. */
  express: boolean;
  paymentToken: string;
  stages: Record<string, { status: string; reason?: string; timeline: Array<{ at: string; what: string }> }>;
}

export interface LocalConsole {
  /** Answers GET /console and /_local/console/...; false for any other path. */
  handle(request: IncomingMessage, response: ServerResponse, path: string, query: URLSearchParams): Promise<boolean>;
  state(): Promise<ConsoleState>;
  stop(): void;
}

class ConsoleRefusal extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const FAR_FUTURE = 8_640_000_000_000_000;

export function createLocalConsole(sources: ConsoleSources): LocalConsole {
  const switches: FaultSwitches = {};
  let duplicates = false;
  writeOutages(sources.faultSwitchesFile, switches);
  const listeners = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | undefined;
  let pushing = false;

  /** A queue by its consumer's name and lane (standard when none is given), or by its key (`payment-express`). */
  const consumerNamed = (name: unknown, lane: unknown = 'standard') => {
    const consumer = sources.consumers.find((c) => queueKey(c) === name || (c.name === name && c.lane === lane));
    if (!consumer) throw new ConsoleRefusal(400, `consumer: one of ${sources.consumers.map(queueKey).join(', ')}`);
    return consumer;
  };

  async function latestOrders(): Promise<ConsoleOrder[]> {
    const table = sources.resources.tables.OrdersTable;
    if (!table) return [];
    const documents = DynamoDBDocumentClient.from(sources.dynamodb);
    const items: StoredOrder[] = [];
    let startKey: Record<string, unknown> | undefined;
    // The local table only: a workshop's orders are a few hundred at most.
    do {
      const page = await documents.send(new ScanCommand({ TableName: table, ExclusiveStartKey: startKey }));
      items.push(...((page.Items ?? []) as StoredOrder[]));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    // Order ids are UUIDv7: they sort by creation time.
    return items
      .sort((a, b) => (a.orderId < b.orderId ? 1 : -1))
      .slice(0, LATEST_ORDERS)
      .map((stored) => {
        const order = toOrderRecord(stored);
        return {
          orderId: order.orderId,
          status: order.status,
          ...(order.reason ? { reason: order.reason } : {}),
          createdAt: order.createdAt,
          ...(order.decidedAt ? { decidedAt: order.decidedAt } : {}),
          items: order.items.slice(0, 3).map(({ sku, quantity }) => ({ sku, quantity })),
          lines: order.items.length,
          express: order.shippingSpeed === 'express',
          paymentToken: order.paymentTokenMasked,
          stages: Object.fromEntries(PARTICIPANTS.map((participant) => [participant, order.stages[participant]])),
        };
      });
  }

  async function state(): Promise<ConsoleState> {
    const at = Date.now();
    const sourcesByQueue = new Map(sources.eventSources().map((source) => [source.queueName, source]));
    const functions = sources.functions();
    const topicArn = sources.resources.topicArn;
    const depth = (name: string | undefined) => (name ? queueDepth(sources.fauxqs, name, at) : null);
    return {
      at: new Date(at).toISOString(),
      stage: sources.stage,
      queueType: sources.queueType,
      api: { url: sources.apiUrl(), routes: sources.routes },
      topic: topicArn ? { name: topicArn.slice(topicArn.lastIndexOf(':') + 1), arn: topicArn } : null,
      consumers: sources.consumers.map((consumer) => {
        const source = sourcesByQueue.get(consumer.queueName);
        const stats = source?.stats;
        return {
          name: consumer.name,
          lane: consumer.lane,
          key: queueKey(consumer),
          eventTypes: consumer.eventTypes,
          queue: { ...queueDepth(sources.fauxqs, consumer.queueName, at), dlq: depth(consumer.deadLetterQueueName) },
          batchSize: source?.batchSize ?? null,
          maximumConcurrency: source?.maximumConcurrency ?? null,
          records: {
            received: stats?.records ?? 0,
            processed: stats?.deleted ?? 0,
            failed: stats?.failedRecords ?? 0,
            redelivered: stats?.redeliveredRecords ?? 0,
            duplicated: stats?.duplicatedRecords ?? 0,
          },
          maxConcurrent: stats?.maxConcurrent ?? 0,
        };
      }),
      functions: functions.map(({ name, functionName, stats }) => ({
        name,
        invocations: stats.invocations,
        errors: stats.errors,
        running: stats.running,
        consumes: sources.consumers.filter((consumer) => consumer.functionName === functionName).map((consumer) => consumer.queueName),
      })),
      tables: Object.entries(sources.resources.tables)
        .map(([logicalId, name]) => ({ logicalId, name }))
        .sort((a, b) => a.logicalId.localeCompare(b.logicalId)),
      buckets: Object.entries(sources.resources.buckets ?? {})
        .map(([logicalId, name]) => ({ logicalId, name }))
        .sort((a, b) => a.logicalId.localeCompare(b.logicalId)),
      switches: switchState(),
      orders: await latestOrders(),
    };
  }

  async function placeOrder(kind: unknown): Promise<{ orderId: string; statusCode: number }> {
    if (typeof kind !== 'string' || (kind !== 'big' && !Object.hasOwn(ORDER_KINDS, kind)))
      throw new ConsoleRefusal(400, `kind: one of ${[...Object.keys(ORDER_KINDS), 'big'].join(', ')}`);
    let body: Record<string, unknown>;
    if (kind === 'big') {
      // What `npm run order` does: a catalogue of new SKUs stocked for this order alone, then the order.
      const inventoryTable = sources.resources.tables.InventoryTable;
      if (!inventoryTable) throw new ConsoleRefusal(500, 'the stack has no InventoryTable');
      const items = largeOrderItems(BIG_ORDER_LINES, newRunId());
      await stockCatalogue(DynamoDBDocumentClient.from(sources.dynamodb), inventoryTable, items);
      body = { items, payment: { token: 'tok_visa' } };
    } else {
      const kindOf: { items: readonly unknown[]; token: string; shippingSpeed?: string } = ORDER_KINDS[kind as keyof typeof ORDER_KINDS];
      body = {
        items: kindOf.items,
        payment: { token: kindOf.token },
        ...(kindOf.shippingSpeed ? { shippingSpeed: kindOf.shippingSpeed } : {}),
      };
    }
    // Through the HTTP API like any client: the authorizer, createOrder, the topic.
    const response = await fetch(`${sources.apiUrl()}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await sources.tokenFor(CONSOLE_CUSTOMER)}` },
      body: JSON.stringify({ ...body, shippingAddress: { ...SAMPLE_ADDRESS } }),
    });
    const answer = (await response.json()) as { orderId?: string; message?: string };
    if (!answer.orderId) throw new ConsoleRefusal(502, `POST /orders answered ${response.status}: ${answer.message ?? ''}`);
    return { orderId: answer.orderId, statusCode: response.status };
  }

  async function sendPoison(consumerName: unknown, lane: unknown): Promise<{ queue: string; messageId: string }> {
    const consumer = consumerNamed(consumerName, lane);
    const fifo = consumer.queueUrl.endsWith('.fifo');
    const sent = await sources.sqs.send(
      new SendMessageCommand({
        QueueUrl: consumer.queueUrl,
        // Not an order event: the consumer fails it on every receive, until SQS moves it to the DLQ.
        MessageBody: `poison from the console at ${new Date().toISOString()}: not an order event`,
        ...(fifo ? { MessageGroupId: 'poison', MessageDeduplicationId: `poison-${Date.now()}` } : {}),
      }),
    );
    return { queue: consumer.queueName, messageId: sent.MessageId ?? '' };
  }

  function setSwitch(body: Record<string, unknown>): ConsoleState['switches'] {
    const { target, on, rate, latencyMs } = body;
    if (typeof on !== 'boolean') throw new ConsoleRefusal(400, 'on: true or false');
    if (rate !== undefined && (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)))
      throw new ConsoleRefusal(400, 'rate: a number from 0 to 1');
    if (latencyMs !== undefined && (typeof latencyMs !== 'number' || !Number.isInteger(latencyMs) || latencyMs < 0 || latencyMs > 4000))
      throw new ConsoleRefusal(400, "latencyMs: whole milliseconds from 0 to 4000 (the consumers' local timeout is 5 s)");
    if (target === 'provider' || target === 'topic') {
      if (on) switches[target] = { from: 0, until: FAR_FUTURE };
      else delete switches[target];
    } else if (target === 'duplicates') {
      duplicates = on;
      for (const source of sources.eventSources()) source.setDuplicateDeliveryRate(on ? 1 : 0);
    } else {
      const consumer = sources.consumers.find((c) => c.name === target && c.lane === 'standard');
      if (!consumer)
        throw new ConsoleRefusal(
          400,
          `target: provider, topic, duplicates or a consumer (${sources.consumers.map((c) => c.name).join(', ')})`,
        );
      const functions = { ...switches.functions };
      // Latency alone when only latencyMs is given (backpressure); failures otherwise.
      if (on)
        functions[consumer.functionName] = {
          transientErrorRate: rate ?? (latencyMs === undefined ? CONSOLE_TRANSIENT_ERROR_RATE : 0),
          latencyMs: latencyMs ?? 0,
        };
      else delete functions[consumer.functionName];
      switches.functions = functions;
    }
    writeOutages(sources.faultSwitchesFile, switches);
    return switchState();
  }

  function switchState(): ConsoleState['switches'] {
    return {
      faults: Object.fromEntries(sources.consumers.map((c) => [c.name, switches.functions?.[c.functionName] !== undefined])),
      outages: { provider: switches.provider !== undefined, topic: switches.topic !== undefined },
      duplicates,
    };
  }

  async function redrive(consumerName: unknown, lane: unknown): Promise<{ moved: number }> {
    const consumer = consumerNamed(consumerName, lane);
    if (!consumer.deadLetterQueueUrl) throw new ConsoleRefusal(400, `${consumer.name} has no dead-letter queue`);
    // What `npm run redrive -- <consumer>` does: every message back to its queue, with its body.
    const report = await redriveDeadLetters({
      sqs: sources.sqs,
      deadLetterQueueUrl: consumer.deadLetterQueueUrl,
      sourceQueueUrl: consumer.queueUrl,
    });
    return { moved: report.moved };
  }

  async function push(): Promise<void> {
    if (pushing || listeners.size === 0) return;
    pushing = true;
    try {
      const event = `event: state\ndata: ${JSON.stringify(await state())}\n\n`;
      for (const listener of listeners) listener.write(event);
    } finally {
      pushing = false;
    }
  }

  function listen(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    response.write('retry: 2000\n\n');
    listeners.add(response);
    request.on('close', () => listeners.delete(response));
    timer ??= setInterval(() => void push().catch(() => {}), 1000);
    timer.unref();
    void push().catch(() => {});
  }

  async function handle(request: IncomingMessage, response: ServerResponse, path: string, query: URLSearchParams): Promise<boolean> {
    const method = (request.method ?? 'GET').toUpperCase();
    // The page has no icon: a browser asks for one anyway, and "no content" keeps a 404 out of its console.
    if (path === '/favicon.ico' && (method === 'GET' || method === 'HEAD')) {
      response.writeHead(204, { 'cache-control': 'max-age=86400' });
      response.end();
      return true;
    }
    if (path === '/console' || path === '/console/') {
      if (method !== 'GET') return false;
      if (!isLoopbackHost(request.headers.host))
        return sendJson(response, 403, { message: `host: ${request.headers.host} is not a loopback address` });
      const page = await readFile(new URL('./console.html', import.meta.url));
      response.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': page.length,
        'cache-control': 'no-store',
        // The page's own script and style only; it talks to this origin alone.
        'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
      });
      response.end(page);
      return true;
    }
    if (!path.startsWith('/_local/console/')) return false;
    try {
      // A name that another site rebinds to 127.0.0.1 reaches this port with its own Host (and a
      // matching Origin): only loopback names are answered.
      if (!isLoopbackHost(request.headers.host)) throw new ConsoleRefusal(403, `host: ${request.headers.host} is not a loopback address`);
      if (method === 'GET') {
        if (path === '/_local/console/events') {
          listen(request, response);
          return true;
        }
        if (path === '/_local/console/state') return sendJson(response, 200, await state());
        if (path === '/_local/console/logs') {
          const orderId = query.get('orderId');
          const limit = Math.min(Math.max(Number(query.get('limit') ?? 200) || 200, 1), 2000);
          const lines = sources
            .recentLog()
            .filter((entry) => orderId === null || entry.line.includes(`"correlation_id":"${orderId}"`))
            .slice(-limit);
          if (query.get('format') !== 'text') return sendJson(response, 200, { lines });
          const text = `${lines.map(briefLine).join('\n')}\n`;
          response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
          response.end(text);
          return true;
        }
        return sendJson(response, 404, { message: 'Not Found' });
      }
      if (method !== 'POST') return sendJson(response, 405, { message: 'Method Not Allowed' });
      const body = await actionBody(request);
      const answer =
        path === '/_local/console/orders'
          ? await placeOrder(body.kind)
          : path === '/_local/console/poison'
            ? await sendPoison(body.consumer, body.lane)
            : path === '/_local/console/faults'
              ? setSwitch(body)
              : path === '/_local/console/redrive'
                ? await redrive(body.consumer, body.lane)
                : undefined;
      if (answer === undefined) return sendJson(response, 404, { message: 'Not Found' });
      void push().catch(() => {});
      return sendJson(response, 200, answer);
    } catch (error) {
      if (error instanceof ConsoleRefusal) return sendJson(response, error.statusCode, { message: error.message });
      throw error;
    }
  }

  return {
    handle,
    state,
    stop() {
      if (timer) clearInterval(timer);
      for (const listener of listeners) listener.end();
      listeners.clear();
    },
  };
}

/** An action's JSON body: only as JSON, and only from the console's own origin (or no browser at all). */
async function actionBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  const type = String(request.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  if (type !== 'application/json') throw new ConsoleRefusal(415, 'content-type: application/json');
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${request.headers.host}`)
    throw new ConsoleRefusal(403, `origin: ${origin} is not this console's (http://${request.headers.host})`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 10_000) throw new ConsoleRefusal(413, 'body: at most 10 KB');
    chunks.push(chunk);
  }
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // refused below
  }
  throw new ConsoleRefusal(400, 'body: a JSON object');
}

function sendJson(response: ServerResponse, statusCode: number, body: unknown): true {
  const text = JSON.stringify(body);
  response.writeHead(statusCode, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
  return true;
}

/**
 * One log line as a person reads it (GET /_local/console/logs?format=text): the time, the
 * function, the message or the metrics, and the keys a workshop looks at.
 */
export function briefLine(entry: RecentLine): string {
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(entry.line) as Record<string, unknown>;
  } catch {
    return `${entry.at.slice(11, 23)}  ${entry.function.padEnd(12)} ${entry.line}`;
  }
  const metrics = (
    fields._aws as { CloudWatchMetrics?: Array<{ Metrics?: Array<{ Name?: string }> }> } | undefined
  )?.CloudWatchMetrics?.flatMap((group) => group.Metrics?.map((metric) => `${metric.Name}=${String(fields[metric.Name ?? ''])}`) ?? []);
  const what = metrics ? `metrics ${metrics.join(' ')}` : String(fields.message ?? '');
  const keys = ['correlation_id', 'eventType', 'receiveCount', 'status', 'reason', 'replayed']
    .filter((key) => fields[key] !== undefined)
    .map((key) => `${key}=${String(fields[key])}`);
  const error = fields.error as { message?: string } | undefined;
  if (error?.message) keys.push(`error=${JSON.stringify(error.message)}`);
  return `${entry.at.slice(11, 23)}  ${entry.function.padEnd(12)} ${what}${keys.length ? `  ${keys.join(' ')}` : ''}`;
}

/** A queue's key in the console's state and page: `payment`, `payment-express`. */
export function queueKey(consumer: { name: string; lane: Lane }): string {
  return queueLabel(consumer).replace(' ', '-');
}
