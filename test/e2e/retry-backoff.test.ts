import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetQueueAttributesCommand, SendMessageCommand, SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig } from '../../local/emulators.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { type HandlerLogEntry, handlerEntries, waitUntil } from '../support/handler-log.js';

// A failed record's backoff on the emulator, through the local pipeline: the packaged consumers,
// the Lambda-like poller and fauxqs, as built from the template. A poison message (a body that is
// no order event) fails on every receive, so each receive's handling time, logged by the consumer
// with the receive count, shows how long the record stayed hidden after the previous failure.
//
// 1. On the inventory queue, the consumer hides the failed record for
//    RETRY_BACKOFF_BASE_SECONDS × 2^(receives − 1) with ChangeMessageVisibility: 1, 2, 4, 8 s.
// 2. The payment function's SQS endpoint is a proxy that refuses ChangeMessageVisibility(Batch) as
//    IAM would without the permission; everything else goes through. The consumer cannot shorten
//    the visibility, so the record comes back after the queue's visibility timeout: late, not lost.

const BACKOFF_BASE_SECONDS = 1;
/** The local stage's batching window (serverless.yml `batchWindowSeconds`): each handling waits it out. */
const BATCH_WINDOW_MS = 1_000;
/** Scheduling, invocation and polling on a busy 2-core machine, on top of the hidden time and the window. */
const SLACK_MS = 4_000;
/** The payment queue's visibility timeout for this test: the local stage's 31 s would only make it longer. */
const PAYMENT_VISIBILITY_TIMEOUT_SECONDS = 12;
const RECEIVES = 5;

/** An HTTP proxy to fauxqs that answers ChangeMessageVisibility and its batch form with AccessDenied. */
async function startRefusingProxy() {
  let target: URL | undefined;
  const refused: string[] = [];
  const server = http.createServer((request, response) => {
    const action = String(request.headers['x-amz-target'] ?? '');
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (action === 'AmazonSQS.ChangeMessageVisibilityBatch' || action === 'AmazonSQS.ChangeMessageVisibility') {
        refused.push(action);
        response.writeHead(403, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-query-error': 'AccessDenied;Sender' });
        response.end(
          JSON.stringify({
            __type: 'com.amazon.coral.service#AccessDeniedException',
            message: 'User is not authorized to perform: sqs:ChangeMessageVisibility (refused by the test proxy)',
          }),
        );
        return;
      }
      if (!target) {
        response.writeHead(503).end();
        return;
      }
      const body = Buffer.concat(chunks);
      const forward = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: request.method,
          path: request.url,
          headers: { ...request.headers, host: target.host, 'content-length': String(body.length) },
        },
        (answer) => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        },
      );
      forward.on('error', () => response.destroy());
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refused,
    forwardTo(url: string) {
      target = new URL(url);
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let proxy: Awaited<ReturnType<typeof startRefusingProxy>>;
let handle: LocalPipeline;
let sqs: SQSClient;
const lines: string[] = [];

function queueUrl(logicalId: string): string {
  const queue = Object.values(handle.resources.queues).find((q) => q.logicalId === logicalId);
  if (!queue) throw new Error(`The local pipeline has no ${logicalId}`);
  return queue.url;
}

beforeAll(async () => {
  proxy = await startRefusingProxy();
  handle = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    seed: false,
    write: (line) => lines.push(line),
    environmentOverrides: {
      inventory: { RETRY_BACKOFF_BASE_SECONDS: String(BACKOFF_BASE_SECONDS) },
      payment: { RETRY_BACKOFF_BASE_SECONDS: String(BACKOFF_BASE_SECONDS), AWS_ENDPOINT_URL_SQS: proxy.url },
    },
  });
  proxy.forwardTo(handle.endpoints.sqs);
  sqs = new SQSClient(clientConfig(handle.endpoints.sqs));
  await sqs.send(
    new SetQueueAttributesCommand({
      QueueUrl: queueUrl('PaymentQueue'),
      Attributes: { VisibilityTimeout: String(PAYMENT_VISIBILITY_TIMEOUT_SECONDS) },
    }),
  );
});

afterAll(async () => {
  sqs?.destroy();
  await handle?.stop();
  await proxy?.close();
});

/** Sends a poison message straight to a queue; its message id. */
async function sendPoison(logicalId: string, body: string): Promise<string> {
  const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl(logicalId), MessageBody: body }));
  if (!MessageId) throw new Error('SendMessage returned no message id');
  return MessageId;
}

/** The consumer's 'Record failed' lines for one message, oldest first, once there are `count` of them. */
function failuresOf(fn: string, messageId: string, count: number, timeoutMs: number): Promise<HandlerLogEntry[]> {
  const failures = () =>
    handlerEntries(lines)
      .filter((e) => e.fn === fn && e.messageId === messageId && e.message.startsWith('Record failed'))
      .sort((a, b) => a.at - b.at);
  return waitUntil(`${count} failed receives of ${messageId} in ${fn}`, () => failures().length >= count && failures(), {
    timeoutMs,
    intervalMs: 100,
    describe: () => failures().map((e) => [e.receiveCount, e.timestamp]),
  });
}

describe('a failed record on the emulator', () => {
  it('comes back after its backoff, doubled on each receive; and after the visibility timeout when the backoff cannot be set', async () => {
    // Both run at once: the inventory consumer's SQS calls go straight to fauxqs, the payment one's
    // through the refusing proxy.
    const [backoff, fallback] = await Promise.all([backedOff(), fellBack()]);

    // 1. Receives 1..5, and from the failure on receive n to the next handling: at least the
    // backoff base × 2^(n-1) (the record is hidden that long after the failure is logged) plus the
    // batching window, and not much more: 2, 3, 5, 9 s here. Without the backoff each would be the
    // queue's visibility timeout; a backoff that did not double would miss the later lower bounds.
    expect(backoff.receiveCounts).toEqual([1, 2, 3, 4, 5]);
    console.log(`e2e backoff: from each failure to the next handling ${backoff.gaps.join(', ')} ms`);
    backoff.gaps.forEach((gap, index) => {
      const hiddenMs = BACKOFF_BASE_SECONDS * 2 ** index * 1000;
      expect(gap, `after failed receive ${index + 1}`).toBeGreaterThanOrEqual(hiddenMs + BATCH_WINDOW_MS);
      expect(gap, `after failed receive ${index + 1}`).toBeLessThan(hiddenMs + BATCH_WINDOW_MS + SLACK_MS);
    });
    expect(backoff.visibilityTimeoutMs).toBeGreaterThan(backoff.gaps.at(-1)! + SLACK_MS);

    // 2. The consumer tried to set the backoff, was refused, said so, and the record still came
    // back, on its second receive, after about the queue's visibility timeout rather than its 1 s
    // backoff. (Received at most a cold start before the first failure was logged: hence the
    // lower bound's leeway of a quarter.)
    expect(proxy.refused.length).toBeGreaterThanOrEqual(1);
    expect(fallback.refusalLogged).toBe(true);
    expect(fallback.receiveCounts).toEqual([1, 2]);
    console.log(`e2e fallback: visibility timeout ${fallback.visibilityTimeoutMs} ms; back after ${fallback.gap} ms`);
    expect(fallback.gap).toBeGreaterThanOrEqual(fallback.visibilityTimeoutMs * 0.75);
    expect(fallback.gap).toBeLessThan(fallback.visibilityTimeoutMs + BATCH_WINDOW_MS + SLACK_MS);
  }, 90_000);
});

async function visibilityTimeoutMs(logicalId: string): Promise<number> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl(logicalId), AttributeNames: ['VisibilityTimeout'] }),
  );
  return Number(Attributes?.VisibilityTimeout) * 1000;
}

async function backedOff() {
  const messageId = await sendPoison('InventoryQueue', 'poison: not an order event (backoff test)');
  const failures = await failuresOf('inventory', messageId, RECEIVES, 60_000);
  return {
    receiveCounts: failures.map((e) => e.receiveCount),
    gaps: failures.slice(1).map((e, index) => e.at - failures[index]!.at),
    visibilityTimeoutMs: await visibilityTimeoutMs('InventoryQueue'),
  };
}

async function fellBack() {
  const messageId = await sendPoison('PaymentQueue', 'poison: not an order event (fallback test)');
  const timeoutMs = await visibilityTimeoutMs('PaymentQueue');
  const failures = await failuresOf('payment', messageId, 2, timeoutMs + 30_000);
  const refusalLogged = handlerEntries(lines).some(
    (e) =>
      e.fn === 'payment' && e.message.startsWith('Could not shorten the visibility') && JSON.stringify(e.error).includes('AccessDenied'),
  );
  return {
    receiveCounts: failures.map((e) => e.receiveCount),
    gap: failures[1]!.at - failures[0]!.at,
    visibilityTimeoutMs: timeoutMs,
    refusalLogged,
  };
}
