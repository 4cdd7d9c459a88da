import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageStack, REPOSITORY_ROOT } from '../../local/package-stack.js';
import { queueConsumers } from '../../local/queue-consumers.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import type { PipelineStatus } from '../../local/status.js';
import { readTemplate, type CfnTemplate } from '../../local/template.js';
import { handlerEntries, waitUntil } from '../support/handler-log.js';

// docs/adding-a-consumer.md, followed in a scratch copy of the repository: one entry in
// resources/consumers.cjs and a handler, nothing else. The packaged template, the local runtime
// and its status then have the consumer, and it receives the events its filter lets through.
// The handler is the test's own (it logs what reaches it), so that the test follows the
// infrastructure's steps and not the domain's.

const DECLARATION = `
  // Says which events reached it (test/e2e/adding-a-consumer.test.ts).
  notifications: {
    handler: 'functions/notifications.handler',
    eventTypes: ['OrderConfirmed', 'OrderCancelled'],
    tables: {},
  },
`;

const HANDLER = `import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';

export const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  for (const record of event.Records) {
    const { eventType, orderId } = JSON.parse(record.body) as { eventType: string; orderId: string };
    console.log(JSON.stringify({ level: 'INFO', message: 'Received', eventType, orderId, timestamp: new Date().toISOString() }));
  }
  return { batchItemFailures: [] };
};
`;

/** What a packaging reads; the rest of the repository stays out of the copy. */
const SKIPPED = new Set(['node_modules', '.git', '.serverless', '.esbuild', '.cache', 'coverage', 'bench', 'docs', 'test']);

let scratch: string;
let template: CfnTemplate;
let pipeline: LocalPipeline;
const lines: string[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'adding-a-consumer-'));
  cpSync(REPOSITORY_ROOT, scratch, {
    recursive: true,
    filter: (source) => !SKIPPED.has(path.relative(REPOSITORY_ROOT, source).split(path.sep)[0] ?? ''),
  });
  symlinkSync(path.join(REPOSITORY_ROOT, 'node_modules'), path.join(scratch, 'node_modules'), 'dir');
  // Step 1: the declaration, as the last entry of resources/consumers.cjs.
  const consumersFile = path.join(scratch, 'resources', 'consumers.cjs');
  const declarations = readFileSync(consumersFile, 'utf8');
  const end = declarations.lastIndexOf('};');
  expect(end, 'resources/consumers.cjs ends its module.exports object with };').toBeGreaterThan(0);
  writeFileSync(consumersFile, `${declarations.slice(0, end)}${DECLARATION}${declarations.slice(end)}`);
  // Step 2: the handler.
  writeFileSync(path.join(scratch, 'functions', 'notifications.ts'), HANDLER);

  const packaged = await packageStack({ stage: 'local', serviceDir: scratch });
  template = await readTemplate(packaged.templatePath);
  pipeline = await startLocalPipeline({
    templatePath: packaged.templatePath,
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    write: (line) => lines.push(line),
  });
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('a consumer added by its declaration alone', () => {
  it('is in the packaged template with its queues, filter, role, alarms, dashboard lines and outputs', () => {
    const notifications = queueConsumers(template, 'order-pipeline-local').find((consumer) => consumer.name === 'notifications');
    expect(notifications).toMatchObject({
      queueName: 'order-pipeline-local-notifications',
      deadLetterQueueName: 'order-pipeline-local-notifications-dlq',
      eventTypes: ['OrderConfirmed', 'OrderCancelled'],
    });
    for (const id of [
      'NotificationsRole',
      'NotificationsQueuePolicy',
      'NotificationsDeadLetterQueuePolicy',
      'NotificationsDeadLetterQueueAlarm',
      'NotificationsQueueAgeAlarm',
      'NotificationsErrorsAlarm',
      'NotificationsThrottlesAlarm',
    ]) {
      expect(template.Resources[id], id).toBeDefined();
    }
    expect(Object.keys(template.Outputs ?? {})).toEqual(
      expect.arrayContaining(['NotificationsQueueUrl', 'NotificationsDeadLetterQueueUrl']),
    );
    const dashboard = JSON.stringify(template.Resources.Dashboard?.Properties?.DashboardBody);
    expect(dashboard).toContain('${NotificationsQueue.QueueName}');
    expect(dashboard).toContain('${NotificationsLambdaFunction}');
  });

  it('is one of the local runtime’s consumers, and its status lists its queue and function', async () => {
    expect(pipeline.consumers.map((consumer) => consumer.name)).toContain('notifications');
    const status = (await (await fetch(`${pipeline.apiUrl.replace(/\/$/, '')}/_local/status`)).json()) as PipelineStatus;
    expect(status.queues.find((queue) => queue.name === 'order-pipeline-local-notifications')?.dlq?.name).toBe(
      'order-pipeline-local-notifications-dlq',
    );
    expect(status.functions.map((fn) => fn.name)).toContain('notifications');
  });

  it('receives the outcome of an order, and nothing its filter keeps out', async () => {
    const response = await fetch(`${pipeline.apiUrl.replace(/\/$/, '')}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await pipeline.tokenFor('cus_notify')}` },
      body: JSON.stringify({
        items: [{ sku: 'SKU-MUG', quantity: 1 }],
        payment: { token: 'tok_visa' },
        shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
      }),
    });
    expect(response.status).toBe(202);
    const { orderId } = (await response.json()) as { orderId: string };
    const received = () => handlerEntries(lines).filter((entry) => entry.fn === 'notifications' && entry.orderId === orderId);
    await waitUntil(
      'notifications to receive the order’s outcome',
      () => received().some((entry) => entry.eventType === 'OrderConfirmed'),
      {
        timeoutMs: 30_000,
        describe: () => received(),
      },
    );
    // Its filter keeps OrderPlaced out (the outcome may come twice: delivery is at least once).
    expect(new Set(received().map((entry) => entry.eventType))).toEqual(new Set(['OrderConfirmed']));
  });
});
