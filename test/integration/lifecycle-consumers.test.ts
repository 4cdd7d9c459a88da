import { CreateTableCommand, type CreateTableCommandInput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import dynalite from 'dynalite';
import type { FauxqsServer } from 'fauxqs';
import { startFauxqsOnLoopback } from '../../local/fauxqs-loopback.js';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderPlaced } from '../../lib/events.js';
import type { OrderItem } from '../../lib/order.js';
import { lambdaContext } from '../support/sqs-events.js';

// The three stage handlers exactly as deployed (functions/*.ts: Powertools batch + idempotency),
// fed by a small poller from fauxqs queues subscribed to the topic with the template's filter
// policies, against dynalite. It stands in for the local runtime until the e2e suite can run.

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;
const STAGES = ['inventory', 'payment', 'shipping'] as const;
type StageName = (typeof STAGES)[number];
const FILTERS: Record<StageName, string[]> = {
  inventory: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'],
  payment: ['OrderPlaced', 'OrderCancelled'],
  shipping: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'],
};

let dynamoServer: ReturnType<typeof dynalite>;
let fauxqs: FauxqsServer;
let db: DynamoDBDocumentClient;
let sqs: SQSClient;
const queues = {} as Record<StageName, { url: string; arn: string }>;
const handlers = {} as Record<StageName, Handler>;
let orders: typeof import('../../lib/orders.js');
let topic: typeof import('../../lib/order-events-topic.js');
let inventory: typeof import('../../lib/inventory.js');
let payments: typeof import('../../lib/payments.js');
let shipping: typeof import('../../lib/shipping.js');

const table = (name: string, hash: string, range?: string): CreateTableCommandInput => ({
  TableName: name,
  AttributeDefinitions: [
    { AttributeName: hash, AttributeType: 'S' },
    ...(range ? [{ AttributeName: range, AttributeType: 'S' as const }] : []),
  ],
  KeySchema: [{ AttributeName: hash, KeyType: 'HASH' }, ...(range ? [{ AttributeName: range, KeyType: 'RANGE' as const }] : [])],
  BillingMode: 'PAY_PER_REQUEST',
});

beforeAll(async () => {
  dynamoServer = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => dynamoServer.listen(0, '127.0.0.1', () => resolve()));
  const dynamoEndpoint = `http://127.0.0.1:${(dynamoServer.address() as AddressInfo).port}`;
  fauxqs = await startFauxqsOnLoopback({ port: 0, logger: false });
  const { topicArn } = fauxqs.createTopic('order-events');
  for (const stage of STAGES) {
    const { queueUrl, queueArn } = fauxqs.createQueue(`${stage}-queue`);
    queues[stage] = { url: queueUrl, arn: queueArn };
    fauxqs.subscribe({
      topic: 'order-events',
      queue: `${stage}-queue`,
      attributes: { RawMessageDelivery: 'true', FilterPolicy: JSON.stringify({ eventType: FILTERS[stage] }) },
    });
  }

  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    // The SDK compares this variable with the string 'true'.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    AWS_ENDPOINT_URL_SNS: fauxqs.address,
    AWS_ENDPOINT_URL_SQS: fauxqs.address,
    ORDERS_TABLE: 'orders',
    INVENTORY_TABLE: 'inventory',
    RESERVATIONS_TABLE: 'reservations',
    PAYMENTS_TABLE: 'payments',
    SHIPMENTS_TABLE: 'shipments',
    IDEMPOTENCY_TABLE: 'idempotency',
    ORDER_EVENTS_TOPIC_ARN: topicArn,
    // A failed record is visible again at once: the poller below is the only clock.
    RETRY_BACKOFF_BASE_SECONDS: '0',
    POWERTOOLS_LOG_LEVEL: process.env.DEBUG_LOG ?? 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });

  const raw = new DynamoDBClient({ endpoint: dynamoEndpoint, region: 'us-east-1' });
  for (const input of [
    table('orders', 'orderId'),
    table('inventory', 'sku'),
    table('reservations', 'orderId', 'sku'),
    table('payments', 'orderId', 'entryId'),
    table('shipments', 'orderId'),
    table('idempotency', 'id'),
  ]) {
    await raw.send(new CreateTableCommand(input));
  }
  db = DynamoDBDocumentClient.from(raw);
  sqs = new SQSClient({ endpoint: fauxqs.address, region: 'us-east-1' });

  [orders, topic, inventory, payments, shipping] = await Promise.all([
    import('../../lib/orders.js'),
    import('../../lib/order-events-topic.js'),
    import('../../lib/inventory.js'),
    import('../../lib/payments.js'),
    import('../../lib/shipping.js'),
  ]);
  // Each function is its own execution environment on AWS, with its own AWS_LAMBDA_FUNCTION_NAME,
  // which Powertools idempotency reads when the handler module is loaded and puts in front of every
  // key: without it the three stages would share the key of one event and skip each other's work.
  const load = async (stage: StageName, module: () => Promise<{ handler: Handler }>) => {
    process.env.AWS_LAMBDA_FUNCTION_NAME = `order-pipeline-test-${stage}`;
    handlers[stage] = (await module()).handler;
  };
  await load('inventory', () => import('../../functions/inventory.js'));
  await load('payment', () => import('../../functions/payment.js'));
  await load('shipping', () => import('../../functions/shipping.js'));
  delete process.env.AWS_LAMBDA_FUNCTION_NAME;
}, 30_000);

afterAll(async () => {
  await fauxqs?.stop();
  await new Promise((resolve) => dynamoServer?.close(resolve));
});

/** Lambda's SQS poller in miniature: batches of up to 10, failed records stay, the rest are deleted. */
async function pollOnce(stage: StageName): Promise<number> {
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queues[stage].url,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 0,
      VisibilityTimeout: 30,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
    }),
  );
  if (Messages.length === 0) return 0;
  const records = Messages.map(
    (message) =>
      ({
        messageId: message.MessageId ?? '',
        receiptHandle: message.ReceiptHandle ?? '',
        body: message.Body ?? '',
        attributes: {
          ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1',
          SentTimestamp: message.Attributes?.SentTimestamp ?? String(Date.now()),
          SenderId: 'local',
          ApproximateFirstReceiveTimestamp: String(Date.now()),
        },
        messageAttributes: {},
        md5OfBody: message.MD5OfBody ?? '',
        eventSource: 'aws:sqs',
        eventSourceARN: queues[stage].arn,
        awsRegion: 'us-east-1',
      }) satisfies SQSRecord,
  );
  const response = await handlers[stage]({ Records: records }, lambdaContext(`test-${stage}`));
  const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
  // The consumer's own backoff (ChangeMessageVisibility with base 0 here) addresses the queue by a
  // URL built from its ARN, which fauxqs does not resolve; make failed records visible again here.
  const retry = records.filter((r) => failed.has(r.messageId));
  if (retry.length > 0) {
    await sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: queues[stage].url,
        Entries: retry.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle, VisibilityTimeout: 0 })),
      }),
    );
  }
  const done = records.filter((r) => !failed.has(r.messageId));
  if (done.length > 0) {
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queues[stage].url,
        Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
  return Messages.length;
}

/**
 * Polls every queue at once until all stay empty. One poller per queue: a handler module is one
 * execution environment, which Lambda never invokes concurrently (its BatchProcessor has per-batch
 * state); the records of a batch still run in parallel, and the three stages run side by side.
 */
async function drainPipeline(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let idleRounds = 0;
  while (idleRounds < 3) {
    if (Date.now() > deadline) throw new Error('The pipeline did not drain in time');
    const counts = await Promise.all(STAGES.map((stage) => pollOnce(stage)));
    idleRounds = counts.every((count) => count === 0) ? idleRounds + 1 : 0;
    if (idleRounds > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-E2E-${skuCounter}`;
  await db.send(
    new PutCommand({
      TableName: 'inventory',
      Item: { sku, name: `Item ${skuCounter}`, available, reserved: 0, sold: 0, applying: {} },
    }),
  );
  return sku;
}

async function placeAndPublish(items: OrderItem[], token = 'tok_visa'): Promise<OrderPlaced> {
  const { order } = await orders.storeNewOrder(
    {
      customerId: 'cus_it',
      items,
      payment: { token },
      shippingAddress: { name: 'Ada', line1: '1 Main St', city: 'Springfield', postalCode: '12345', country: 'US' },
    },
    undefined,
  );
  await topic.publishOrderEvent(order.placedEvent);
  return order.placedEvent;
}

async function standingCharges(orderIds: string[]): Promise<number> {
  const ledgers = await Promise.all(orderIds.map((id) => payments.ledgerOf(id)));
  return ledgers.filter((entries) => entries.some((e) => e.entryId === 'CHARGE') && !entries.some((e) => e.entryId === 'REFUND')).length;
}

describe('the stage handlers, fed from SNS/SQS', () => {
  it('50 concurrent orders for a 10-unit SKU: 10 CONFIRMED, 40 CANCELLED OUT_OF_STOCK, stock 0, 10 charges standing', async () => {
    const sku = await seedSku(10);
    const placed = await Promise.all(Array.from({ length: 50 }, () => placeAndPublish([{ sku, quantity: 1 }])));
    await drainPipeline();
    const ids = placed.map((p) => p.orderId);
    const final = await Promise.all(ids.map((id) => orders.findOrder(id)));
    const confirmed = final.filter((o) => o?.status === 'CONFIRMED').length;
    const cancelled = final.filter((o) => o?.status === 'CANCELLED' && o.reason === 'OUT_OF_STOCK').length;
    const item = await inventory.findStockItem(sku);
    const charges = await standingCharges(ids);
    const shipments = await Promise.all(ids.map((id) => shipping.findShipment(id)));
    const dispatched = shipments.filter((s) => s?.status === 'DISPATCHED').length;
    console.log(
      `50 orders / 10 units (handlers): ${confirmed} CONFIRMED, ${cancelled} CANCELLED, available ${item?.available}, reserved ${item?.reserved}, sold ${item?.sold}, charges standing ${charges}, dispatched ${dispatched}`,
    );
    expect(confirmed).toBe(10);
    expect(cancelled).toBe(40);
    expect(item).toMatchObject({ available: 0, reserved: 0, sold: 10, applying: {} });
    expect(charges).toBe(10);
    expect(dispatched).toBe(10);
  }, 120_000);

  it('tok_flaky: the failed records are retried until the charge goes through, exactly once', async () => {
    const sku = await seedSku(5);
    const placed = await placeAndPublish([{ sku, quantity: 2 }], 'tok_flaky');
    await drainPipeline();
    expect(await orders.findOrder(placed.orderId)).toMatchObject({ status: 'CONFIRMED' });
    const ledger = await payments.ledgerOf(placed.orderId);
    expect(ledger.map((e) => e.entryId)).toEqual(['CHARGE']);
  }, 60_000);

  it('the same OrderPlaced published twice: one reservation, one charge, one shipment', async () => {
    const sku = await seedSku(5);
    const placed = await placeAndPublish([{ sku, quantity: 2 }]);
    await topic.publishOrderEvent(placed);
    await drainPipeline();
    expect(await orders.findOrder(placed.orderId)).toMatchObject({ status: 'CONFIRMED' });
    expect(await inventory.findStockItem(sku)).toMatchObject({ available: 3, reserved: 0, sold: 2 });
    expect((await payments.ledgerOf(placed.orderId)).map((e) => e.entryId)).toEqual(['CHARGE']);
    const shipments = await db.send(
      new ScanCommand({ TableName: 'shipments', FilterExpression: 'orderId = :id', ExpressionAttributeValues: { ':id': placed.orderId } }),
    );
    expect(shipments.Items).toHaveLength(1);
    expect(shipments.Items?.[0]).toMatchObject({ status: 'DISPATCHED' });
  }, 60_000);

  it('tok_decline: CANCELLED PAYMENT_DECLINED, stock back, no charge, shipment cancelled', async () => {
    const sku = await seedSku(5);
    const placed = await placeAndPublish([{ sku, quantity: 2 }], 'tok_decline');
    await drainPipeline();
    const order = await orders.findOrder(placed.orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    expect(await inventory.findStockItem(sku)).toMatchObject({ available: 5, reserved: 0, sold: 0, applying: {} });
    expect(await payments.ledgerOf(placed.orderId)).toEqual([]);
    expect(await shipping.findShipment(placed.orderId)).toMatchObject({ status: 'CANCELLED' });
    expect(order?.stages).toMatchObject({
      inventory: { status: 'COMPENSATED' },
      payment: { status: 'REJECTED', reason: 'PAYMENT_DECLINED' },
      shipping: { status: 'COMPENSATED' },
    });
  }, 60_000);
});
