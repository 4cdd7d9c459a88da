// Closed-loop load on a running local pipeline: `concurrency` clients each place an order
// (POST /orders), wait until it is decided, and place the next, until `orders` were placed.
//
// How a decision is observed: a measurement queue, subscribed to the order events topic with a
// filter on OrderConfirmed and OrderCancelled, long-polled by this process straight at the
// emulator (not through the request counter, so it is not in the per-order counts). Its cost is one
// extra SNS-to-SQS delivery per order inside fauxqs and about one receive and one delete call per
// ten orders; polling GET /orders/{id} instead would add a Lambda invocation and a DynamoDB read per
// poll per order in flight, on the same two cores. Latency is taken from the event's `occurredAt`,
// which is the order's `decidedAt` (the time of the conditional write that decided it), minus the
// time this process sent the POST: the decision time itself, not when this process saw it.

import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { SNSClient, SubscribeCommand, UnsubscribeCommand } from '@aws-sdk/client-sns';
import http from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { clientConfig } from '../local/emulators.js';
import type { LocalPipeline } from '../local/runtime.js';
import { SAMPLE_ADDRESS } from '../local/sample-order.js';

export interface LoadResult {
  orders: number;
  concurrency: number;
  confirmed: number;
  cancelled: number;
  /** Orders with no decision within the timeout, or whose POST failed. */
  unfinished: number;
  postErrors: number;
  elapsedSeconds: number;
  /** Orders decided CONFIRMED per second, first POST to last decision. */
  ordersPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number; mean: number };
}

export interface DecisionWatcher {
  wait(orderId: string, timeoutMs: number): Promise<{ status: 'CONFIRMED' | 'CANCELLED'; decidedAt: number } | undefined>;
  stop(): Promise<void>;
}

/** Subscribes a measurement queue to the topic and long-polls it, directly at the emulator. */
export async function watchDecisions(pipeline: LocalPipeline): Promise<DecisionWatcher> {
  const direct = pipeline.requestCounter?.targets ?? pipeline.endpoints;
  const sqs = new SQSClient(clientConfig(direct.sqs));
  const sns = new SNSClient(clientConfig(direct.sns));
  const topicArn = pipeline.resources.topicArn;
  if (!topicArn) throw new Error('The pipeline has no order events topic');
  const { QueueUrl: queueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: `bench-decisions-${Date.now()}`, Attributes: { VisibilityTimeout: '60' } }),
  );
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  const { SubscriptionArn } = await sns.send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'sqs',
      Endpoint: Attributes?.QueueArn,
      Attributes: { RawMessageDelivery: 'true', FilterPolicy: JSON.stringify({ eventType: ['OrderConfirmed', 'OrderCancelled'] }) },
    }),
  );
  const decided = new Map<string, { status: 'CONFIRMED' | 'CANCELLED'; decidedAt: number }>();
  const waiters = new Map<string, (decision: { status: 'CONFIRMED' | 'CANCELLED'; decidedAt: number }) => void>();
  const abort = new AbortController();
  const receiver = async () => {
    while (!abort.signal.aborted) {
      try {
        const { Messages = [] } = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 }),
          { abortSignal: abort.signal },
        );
        for (const message of Messages) {
          const event = JSON.parse(message.Body ?? '{}') as { orderId?: string; eventType?: string; occurredAt?: string };
          if (!event.orderId) continue;
          const decision = {
            status: event.eventType === 'OrderConfirmed' ? 'CONFIRMED' : 'CANCELLED',
            decidedAt: Date.parse(event.occurredAt ?? ''),
          } as const;
          const waiter = waiters.get(event.orderId);
          if (waiter) {
            waiters.delete(event.orderId);
            waiter(decision);
          } else decided.set(event.orderId, decision);
        }
        if (Messages.length > 0) {
          await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
            }),
          );
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
        void error;
      }
    }
  };
  const loops = [receiver(), receiver()];
  return {
    wait(orderId, timeoutMs) {
      const early = decided.get(orderId);
      if (early) {
        decided.delete(orderId);
        return Promise.resolve(early);
      }
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(orderId);
          resolve(undefined);
        }, timeoutMs);
        waiters.set(orderId, (decision) => {
          clearTimeout(timer);
          resolve(decision);
        });
      });
    },
    async stop() {
      abort.abort();
      await Promise.allSettled(loops);
      await sns.send(new UnsubscribeCommand({ SubscriptionArn })).catch(() => undefined);
      sqs.destroy();
      sns.destroy();
    },
  };
}

/** Stock for the benchmark, written straight to the inventory table: one SKU per client. */
export async function seedStock(pipeline: LocalPipeline, skus: number, unitsEach: number, prefix: string): Promise<string[]> {
  const direct = pipeline.requestCounter?.targets ?? pipeline.endpoints;
  const table = pipeline.resources.tables.InventoryTable;
  if (!table) throw new Error('The pipeline has no InventoryTable');
  const client = new DynamoDBClient(clientConfig(direct.dynamodb));
  const documents = DynamoDBDocumentClient.from(client);
  const names = Array.from({ length: skus }, (_, i) => `${prefix}-${i}`);
  for (let start = 0; start < names.length; start += 25) {
    await documents.send(
      new BatchWriteCommand({
        RequestItems: {
          [table]: names.slice(start, start + 25).map((sku) => ({
            PutRequest: { Item: { sku, name: `Benchmark item ${sku}`, available: unitsEach, applying: {} } },
          })),
        },
      }),
    );
  }
  client.destroy();
  return names;
}

export async function closedLoop(
  pipeline: LocalPipeline,
  watcher: DecisionWatcher,
  options: { orders: number; concurrency: number; skus: string[]; decisionTimeoutMs?: number; onProgress?: (done: number) => void },
): Promise<LoadResult> {
  const baseUrl = pipeline.apiUrl.replace(/\/$/, '');
  // One customer's token for the whole run, as a client keeps its token until it expires.
  const authorization = `Bearer ${await pipeline.tokenFor('cus_bench', { expiresInSeconds: 6 * 3600 })}`;
  const latencies: number[] = [];
  let placed = 0;
  let done = 0;
  let confirmed = 0;
  let cancelled = 0;
  let unfinished = 0;
  let postErrors = 0;
  let lastDecision = 0;
  // node:http with a socket kept per client rather than fetch: the clients share the main thread
  // with the emulators and the HTTP API, and fetch's machinery (undici, web streams) was about 2.5%
  // of that thread's time under this load, node:http about half of it.
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const started = Date.now();
  const client = async (slot: number) => {
    const sku = options.skus[slot % options.skus.length]!;
    while (placed < options.orders) {
      placed++;
      const postedAt = Date.now();
      let orderId: string | undefined;
      try {
        const response = await postJson(agent, `${baseUrl}/orders`, authorization, {
          items: [{ sku, quantity: 1 }],
          payment: { token: 'tok_visa' },
          shippingAddress: { ...SAMPLE_ADDRESS },
        });
        const body = response.body as { orderId?: string };
        if (response.status === 201 || response.status === 202) orderId = body.orderId;
      } catch {
        orderId = undefined;
      }
      if (!orderId) {
        postErrors++;
        unfinished++;
      } else {
        const decision = await watcher.wait(orderId, options.decisionTimeoutMs ?? 120_000);
        if (!decision) unfinished++;
        else {
          if (decision.status === 'CONFIRMED') confirmed++;
          else cancelled++;
          latencies.push(Math.max(0, decision.decidedAt - postedAt));
          lastDecision = Math.max(lastDecision, decision.decidedAt, Date.now());
        }
      }
      done++;
      options.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, slot) => client(slot)));
  agent.destroy();
  const elapsedSeconds = Math.max(0.001, ((lastDecision || Date.now()) - started) / 1000);
  return {
    orders: options.orders,
    concurrency: options.concurrency,
    confirmed,
    cancelled,
    unfinished,
    postErrors,
    elapsedSeconds: round(elapsedSeconds, 3),
    ordersPerSecond: round(confirmed / elapsedSeconds, 2),
    latencyMs: summarize(latencies),
  };
}

/** POSTs a JSON body and reads the JSON answer. */
function postJson(agent: http.Agent, url: string, authorization: string, payload: unknown): Promise<{ status: number; body: unknown }> {
  const body = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          try {
            resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
          } catch (error) {
            reject(error);
          }
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

export function summarize(values: number[]): LoadResult['latencyMs'] {
  if (values.length === 0) return { p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return {
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: sorted[sorted.length - 1]!,
    mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length, 1),
  };
}

export function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Waits until the pipeline's queues are empty and no batch runs (the follow-ups of the last orders). */
export async function waitUntilDrained(pipeline: LocalPipeline, timeoutMs = 60_000): Promise<void> {
  const direct = pipeline.requestCounter?.targets ?? pipeline.endpoints;
  const sqs = new SQSClient(clientConfig(direct.sqs));
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      let pending = 0;
      for (const queue of Object.values(pipeline.resources.queues)) {
        if (/dead|dlq/i.test(queue.logicalId)) continue;
        const { Attributes = {} } = await sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: queue.url,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        );
        pending += Number(Attributes.ApproximateNumberOfMessages ?? 0) + Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0);
      }
      const running = Object.values(pipeline.invocationStats().eventSources).reduce((sum, source) => sum + source.running, 0);
      if (pending === 0 && running === 0) return;
      if (Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    sqs.destroy();
  }
}
