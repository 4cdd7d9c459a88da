import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeCreatedOrder } from '../support/stored-order.js';
import type { OrderPlaced } from '../../lib/events.js';
import { type OrderItem, PARTICIPANTS, type Participant } from '../../lib/order-schema.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { lambdaContext } from '../support/sqs-events.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The three consumers exactly as deployed (functions/*.ts: Powertools batch, conditional writes,
// Powertools idempotency around the payment provider),
// fed by a small poller from the stage queues, on the tables, topic, queues, subscriptions and
// filter policies provisioned from the packaged template (test/support/provisioned-stack.ts), not
// a hand-written copy of them.

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;
// The saga participants' consumers: each is declared under its participant's name, so its queue's
// logical id follows from that name (resources/consumer-resources.cjs).
const STAGES = PARTICIPANTS;
type StageName = Participant;
const queueIdOf = (name: StageName) => `${name.charAt(0).toUpperCase()}${name.slice(1)}Queue`;

let stack: ProvisionedStack;
const queues = {} as Record<StageName, { url: string; arn: string; dlqUrl: string }>;
const handlers = {} as Record<StageName, Handler>;
let orders: typeof import('../../lib/order-store.js');
let topic: typeof import('../../lib/order-events-topic.js');
let inventory: typeof import('../../lib/inventory.js');

/** Every record the poller below handed a handler: which event, on which receive, and whether it failed. */
interface Delivery {
  stage: StageName;
  messageId: string;
  eventId: string | undefined;
  receiveCount: number;
  failed: boolean;
}
const deliveries: Delivery[] = [];

beforeAll(async () => {
  stack = await startProvisionedStack();
  for (const stage of STAGES) {
    const { url, arn, dlqUrl } = stack.queue(queueIdOf(stage));
    if (!dlqUrl) throw new Error(`The template gives ${queueIdOf(stage)} no dead-letter queue`);
    queues[stage] = { url, arn, dlqUrl };
  }
  Object.assign(process.env, {
    // A failed record is visible again at once: the consumer's own backoff (ChangeMessageVisibility
    // on the queue its record names) with a base of 0, so the poller below is the only clock.
    RETRY_BACKOFF_BASE_SECONDS: '0',
    POWERTOOLS_LOG_LEVEL: process.env.DEBUG_LOG ?? 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });

  // Imported once the environment points at the emulators: the handler modules build their
  // Powertools objects when they load.
  [orders, topic, inventory] = await Promise.all([
    import('../../lib/order-store.js'),
    import('../../lib/order-events-topic.js'),
    import('../../lib/inventory.js'),
  ]);
  handlers.inventory = (await import('../../functions/inventory.js')).handler as Handler;
  handlers.payment = (await import('../../functions/payment.js')).handler as Handler;
  handlers.shipping = (await import('../../functions/shipping.js')).handler as Handler;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/**
 * Lambda's SQS poller in miniature: batches of up to 10 on the queue's own visibility timeout,
 * failed records left to the consumer's backoff, the rest deleted.
 */
async function pollOnce(stage: StageName): Promise<number> {
  const { Messages = [] } = await stack.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queues[stage].url,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 0,
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
  for (const record of records) {
    let eventId: string | undefined;
    try {
      eventId = (JSON.parse(record.body) as { eventId?: string }).eventId;
    } catch {
      // not an event: recorded without one
    }
    deliveries.push({
      stage,
      messageId: record.messageId,
      eventId,
      receiveCount: Number(record.attributes.ApproximateReceiveCount),
      failed: failed.has(record.messageId),
    });
  }
  const done = records.filter((r) => !failed.has(r.messageId));
  if (done.length > 0) {
    await stack.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queues[stage].url,
        Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
  return Messages.length;
}

/** Messages a queue holds in any state (ready, in flight, delayed), from fauxqs's inspection. */
function held(queueUrl: string): number {
  const state = stack.emulators.fauxqs.inspectQueue(queueUrl.split('/').pop()!);
  if (!state) throw new Error(`No queue at ${queueUrl}`);
  return state.messages.ready.length + state.messages.inflight.length + state.messages.delayed.length;
}

/**
 * Polls every queue at once until all three hold nothing at all, in flight included: a record
 * failed and left invisible is not "drained". One poller per queue: a handler module is one
 * execution environment, which Lambda never invokes concurrently (its BatchProcessor has per-batch
 * state); the records of a batch still run in parallel, and the three stages run side by side.
 */
async function drainPipeline(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(STAGES.map((stage) => pollOnce(stage)));
    if (counts.every((count) => count === 0)) {
      if (STAGES.every((stage) => held(queues[stage].url) === 0)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (Date.now() > deadline) throw new Error('The pipeline did not drain in time');
  }
}

/** No event of these orders reached a dead-letter queue (in any state: ready, in flight, delayed). */
function expectNothingDeadLettered(orderIds: string[]): void {
  for (const stage of STAGES) {
    const state = stack.emulators.fauxqs.inspectQueue(queues[stage].dlqUrl.split('/').pop()!)!;
    const bodies = [...state.messages.ready, ...state.messages.delayed, ...state.messages.inflight.map((entry) => entry.message)].map(
      (m) => m.body,
    );
    expect(
      bodies.filter((body) => orderIds.some((id) => body.includes(id))),
      `the ${stage} DLQ`,
    ).toEqual([]);
  }
}

/** Deliveries of one event to one stage, in the order the poller handed them over. */
const deliveriesOf = (stage: StageName, eventId: string) => deliveries.filter((d) => d.stage === stage && d.eventId === eventId);

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-E2E-${skuCounter}`;
  await stack.db.send(
    new PutCommand({
      TableName: stack.table('InventoryTable'),
      Item: { sku, name: `Item ${skuCounter}`, available, applying: {} },
    }),
  );
  return sku;
}

async function placeAndPublish(items: OrderItem[], token = 'tok_visa'): Promise<OrderPlaced> {
  const order = await storeCreatedOrder(
    'cus_it',
    {
      items,
      payment: { token },
      shippingAddress: { ...SAMPLE_ADDRESS },
    },
    undefined,
  );
  await topic.publishOrderEvent(order.placedEvent);
  return order.placedEvent;
}

async function standingCharges(orderIds: string[]): Promise<number> {
  const found = await Promise.all(orderIds.map((id) => orders.findOrder(id)));
  return found.filter((order) => order?.payment?.outcome === 'SUCCEEDED' && !order.refund).length;
}

describe("the participants' consumers, fed from SNS/SQS", () => {
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
    const dispatched = final.filter((o) => o?.dispatchedAt !== undefined).length;
    console.log(
      `50 orders / 10 units (handlers): ${confirmed} CONFIRMED, ${cancelled} CANCELLED, available ${item?.available}, charges standing ${charges}, dispatched ${dispatched}`,
    );
    expect(confirmed).toBe(10);
    expect(cancelled).toBe(40);
    expect(item).toMatchObject({ available: 0, applying: {} });
    expect(charges).toBe(10);
    expect(dispatched).toBe(10);
    expectNothingDeadLettered(ids);
  }, 120_000);

  it('tok_flaky: the failed records are retried until the charge goes through, exactly once', async () => {
    const sku = await seedSku(5);
    const placed = await placeAndPublish([{ sku, quantity: 2 }], 'tok_flaky');
    await drainPipeline();
    expect(await orders.findOrder(placed.orderId)).toMatchObject({ status: 'CONFIRMED' });
    // The provider was really called three times: two simulated timeouts, then the charge.
    const simulator = await stack.db.send(
      new GetCommand({
        TableName: stack.table('PaymentsTable'),
        Key: { orderId: placed.orderId, entryId: 'SIMULATOR#ATTEMPTS' },
        ConsistentRead: true,
      }),
    );
    expect(simulator.Item).toMatchObject({ attempts: 3 });
    // And each call was a redelivery of the one SQS message, by the queue: receive counts 1, 2, 3,
    // the first two reported failed (not deleted), the third done.
    const payment = deliveriesOf('payment', placed.eventId);
    expect(payment.map((d) => [d.receiveCount, d.failed])).toEqual([
      [1, true],
      [2, true],
      [3, false],
    ]);
    expect(new Set(payment.map((d) => d.messageId)).size).toBe(1);
    // The other stages were not held up by payment's retries: one receive each.
    for (const stage of ['inventory', 'shipping'] as const) {
      expect(deliveriesOf(stage, placed.eventId).map((d) => [d.receiveCount, d.failed])).toEqual([[1, false]]);
    }
    expectNothingDeadLettered([placed.orderId]);
  }, 60_000);

  it('the same OrderPlaced published twice: one reservation, one charge, one shipment', async () => {
    const sku = await seedSku(5);
    const placed = await placeAndPublish([{ sku, quantity: 2 }]);
    await topic.publishOrderEvent(placed);
    await drainPipeline();
    // Both copies were delivered to every stage, as two SQS messages, and both were handled
    // (deleted, not failed): the second one was absorbed, not lost on the way.
    for (const stage of STAGES) {
      const copies = deliveriesOf(stage, placed.eventId);
      expect(copies.filter((d) => !d.failed)).toHaveLength(2);
      expect(new Set(copies.map((d) => d.messageId)).size).toBe(2);
    }
    const order = await orders.findOrder(placed.orderId);
    expect(order).toMatchObject({ status: 'CONFIRMED', payment: { outcome: 'SUCCEEDED' } });
    expect(order?.dispatchedAt).toBeDefined();
    expect(await inventory.findStockItem(sku)).toMatchObject({ available: 3, applying: {} });
    expectNothingDeadLettered([placed.orderId]);
  }, 60_000);

  it('tok_decline: CANCELLED PAYMENT_DECLINED, stock back, no charge, shipment cancelled', async () => {
    const sku = await seedSku(5);
    const placed = await placeAndPublish([{ sku, quantity: 2 }], 'tok_decline');
    await drainPipeline();
    const order = await orders.findOrder(placed.orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    expect(await inventory.findStockItem(sku)).toMatchObject({ available: 5, applying: {} });
    expect(order?.refund).toBeUndefined();
    expect(order?.shipmentCancelledAt).toBeDefined();
    expect(order?.stages).toMatchObject({
      inventory: { status: 'COMPENSATED' },
      payment: { status: 'REJECTED', reason: 'PAYMENT_DECLINED' },
      shipping: { status: 'COMPENSATED' },
    });
    expectNothingDeadLettered([placed.orderId]);
  }, 60_000);
});
