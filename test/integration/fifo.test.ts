import { GetTopicAttributesCommand } from '@aws-sdk/client-sns';
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, PurgeQueueCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderEvent, OrderPlaced } from '../../lib/events.js';
import { sampleOrder } from '../../local/sample-order.js';
import { toSqsRecord } from '../../local/sqs-poller.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { lambdaContext, orderIdOf, orderPlaced } from '../support/sqs-events.js';
import { storeCreatedOrder } from '../support/stored-order.js';

// The FIFO variant (queueType=fifo) provisioned from its packaged template into the emulators: the
// SNS FIFO topic fans out to SQS FIFO queues with the filters and raw delivery of the standard
// variant, one message group per order, deduplicated by event id. The participants' own handlers
// (functions/*.ts, Powertools' FIFO processor) drain the queues here, by hand and in the order the
// queues give, so that a cancel can race the decision on purpose, as in cancel.test.ts.

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;
const PARTICIPANTS = ['inventory', 'payment', 'shipping'] as const;
type Participant = (typeof PARTICIPANTS)[number];

let stack: ProvisionedStack;
let handlers: Record<Participant, Handler>;
let publish: typeof import('../../lib/order-events-topic.js').publishOrderEvent;
const CUSTOMER = 'cus_fifo';

beforeAll(async () => {
  stack = await startProvisionedStack({ queueType: 'fifo' });
  Object.assign(process.env, { POWERTOOLS_LOG_LEVEL: 'WARN', POWERTOOLS_METRICS_DISABLED: 'true', RETRY_BACKOFF_BASE_SECONDS: '1' });
  const [inventory, payment, shipping, topic] = await Promise.all([
    import('../../functions/inventory.js'),
    import('../../functions/payment.js'),
    import('../../functions/shipping.js'),
    import('../../lib/order-events-topic.js'),
  ]);
  handlers = {
    inventory: inventory.handler as unknown as Handler,
    payment: payment.handler as unknown as Handler,
    shipping: shipping.handler as unknown as Handler,
  };
  publish = topic.publishOrderEvent;
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

const queueOf = (participant: Participant) => stack.queue(`${participant.charAt(0).toUpperCase()}${participant.slice(1)}Queue`);

/** What a participant's queue holds now, per order, in the order it will hand it over (inspection consumes nothing). */
function queued(participant: Participant): Record<string, string[]> {
  const name = queueOf(participant).arn.split(':').pop()!;
  const byOrder: Record<string, string[]> = {};
  for (const message of stack.emulators.fauxqs.inspectQueue(name)?.messages.ready ?? []) {
    const event = JSON.parse(message.body) as OrderEvent;
    (byOrder[event.orderId] ??= []).push(event.eventType);
  }
  return byOrder;
}

/**
 * What the event source mapping does, once per batch until the queue has nothing to give: receive,
 * invoke the participant's function, delete what it did not report failed. Returns each order's
 * events in the order the function was handed them.
 */
async function drain(participant: Participant, batches = Number.POSITIVE_INFINITY): Promise<Record<string, string[]>> {
  const queue = queueOf(participant);
  const seen: Record<string, string[]> = {};
  for (let batch = 0; batch < batches; batch += 1) {
    const { Messages = [] } = await stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queue.url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    if (Messages.length === 0) return seen;
    const records = Messages.map((message) => toSqsRecord(message, { queueArn: queue.arn, region: 'us-east-1' }));
    for (const record of records) {
      const event = JSON.parse(record.body) as OrderEvent;
      (seen[event.orderId] ??= []).push(event.eventType);
    }
    const { batchItemFailures } = await handlers[participant]({ Records: records }, lambdaContext(`order-pipeline-local-${participant}`));
    if (batchItemFailures.length > 0) throw new Error(`${participant} failed ${JSON.stringify(batchItemFailures)}`);
    await stack.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queue.url,
        Entries: Messages.map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle })),
      }),
    );
  }
  return seen;
}

describe('the FIFO variant on the emulators', () => {
  it('provisions an SNS FIFO topic and SQS FIFO queues and dead-letter queues: explicit deduplication, high throughput per group', async () => {
    const topic = await stack.sns.send(new GetTopicAttributesCommand({ TopicArn: stack.resources.topicArn }));
    expect(stack.resources.topicArn).toMatch(/order-events\.fifo$/);
    expect(topic.Attributes).toMatchObject({ FifoTopic: 'true', ContentBasedDeduplication: 'false' });
    for (const participant of PARTICIPANTS) {
      const queue = queueOf(participant);
      const { Attributes } = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['All'] }));
      expect(Attributes, participant).toMatchObject({
        FifoQueue: 'true',
        ContentBasedDeduplication: 'false',
        DeduplicationScope: 'messageGroup',
        FifoThroughputLimit: 'perMessageGroupId',
      });
      expect(queue.dlqUrl, participant).toMatch(/-dlq\.fifo$/);
      const dlq = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.dlqUrl, AttributeNames: ['FifoQueue'] }));
      expect(dlq.Attributes?.FifoQueue, `${participant} DLQ`).toBe('true');
    }
  });

  it("delivers an event published twice within five minutes once, and each order's events in publish order, through the filters", async () => {
    const [a, b] = [orderIdOf('fifo-dedup-a'), orderIdOf('fifo-dedup-b')];
    const event = (orderId: string, eventType: 'OrderConfirmed' | 'OrderCancelled'): OrderEvent =>
      eventType === 'OrderConfirmed'
        ? { eventId: `${orderId}:OrderConfirmed`, eventType, orderId, occurredAt: new Date().toISOString(), data: {} }
        : {
            eventId: `${orderId}:OrderCancelled`,
            eventType,
            orderId,
            occurredAt: new Date().toISOString(),
            data: { reason: 'CUSTOMER_CANCELLED' },
          };
    const placedA = orderPlaced(a);
    // Interleaved, and A's OrderPlaced and OrderCancelled each published twice (a retried request,
    // the sweep, a late result asking for its compensation again).
    for (const published of [
      placedA,
      orderPlaced(b),
      placedA,
      event(a, 'OrderCancelled'),
      event(b, 'OrderConfirmed'),
      event(a, 'OrderCancelled'),
    ]) {
      await publish(published);
    }
    expect([queued('inventory')[a], queued('inventory')[b]]).toEqual([['OrderPlaced', 'OrderCancelled'], ['OrderPlaced']]);
    expect([queued('payment')[a], queued('payment')[b]]).toEqual([['OrderPlaced', 'OrderCancelled'], ['OrderPlaced']]);
    expect([queued('shipping')[a], queued('shipping')[b]]).toEqual([
      ['OrderPlaced', 'OrderCancelled'],
      ['OrderPlaced', 'OrderConfirmed'],
    ]);
    // Not for handling: these orders are not in the orders table.
    for (const participant of PARTICIPANTS) await stack.sqs.send(new PurgeQueueCommand({ QueueUrl: queueOf(participant).url }));
  });
});

let skuCounter = 0;
async function seedSku(available: number): Promise<string> {
  skuCounter += 1;
  const sku = `SKU-FIFO-${skuCounter}`;
  await stack.db.send(new PutCommand({ TableName: stack.table('InventoryTable'), Item: { sku, name: sku, available, applying: {} } }));
  return sku;
}

/** What must hold for every cancelled order once its events are handled (as in cancel.test.ts). */
async function expectNothingStanding(placed: OrderPlaced, sku: string, initial: number): Promise<void> {
  const [{ loadOrder }, { findStockItem }, { missingFollowUps }] = await Promise.all([
    import('../../lib/order-outcome.js'),
    import('../../lib/inventory.js'),
    import('../../lib/order-store.js'),
  ]);
  const order = await loadOrder(placed.orderId);
  expect(order).toMatchObject({ status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' });
  expect(await findStockItem(sku), 'no units taken').toMatchObject({ available: initial, applying: {} });
  expect(order.payment?.outcome !== 'SUCCEEDED' || order.refund !== undefined, 'no charge without its refund').toBe(true);
  expect(order.dispatchedAt, 'not dispatched').toBeUndefined();
  expect(order.shipping?.outcome !== 'SUCCEEDED' || order.shipmentCancelledAt !== undefined, 'no shipment left prepared').toBe(true);
  expect(missingFollowUps(order)).toEqual([]);
}

describe("a customer's cancellation on FIFO queues", () => {
  it("a cancel racing the deciding result, many times over: each participant takes the order's events in publish order, and every order ends cancelled with nothing standing", async () => {
    const { cancelOrder } = await import('../../lib/cancel-order.js');
    const RACES = ['cancel first', 'decision first', 'at once'] as const;
    let decidedFirst = 0;
    for (let round = 0; round < 12; round += 1) {
      const sku = await seedSku(5);
      const placed = (await storeCreatedOrder(CUSTOMER, sampleOrder([{ sku, quantity: 2 }]))).placedEvent;
      await publish(placed);
      const seen: Record<Participant, string[]> = { inventory: [], payment: [], shipping: [] };
      const note = (participant: Participant) => (handled: Record<string, string[]>) =>
        seen[participant].push(...(handled[placed.orderId] ?? []));
      await Promise.all([drain('inventory').then(note('inventory')), drain('payment').then(note('payment'))]);
      // The last result and the cancellation: the cancel first, the decision first, or both at
      // once (either may land first). The cancel's OrderCancelled queues behind whatever shipping
      // has not finished of the order, in the same group.
      const race = RACES[round % RACES.length]!;
      const cancelNow = () => cancelOrder(CUSTOMER, placed.orderId);
      // One batch: its OrderPlaced (what follows, OrderConfirmed, is dispatched below, after the cancel).
      const shippingNow = () => drain('shipping', 1).then(note('shipping'));
      const cancel =
        race === 'cancel first'
          ? await cancelNow().then(async (result) => {
              await shippingNow();
              return result;
            })
          : race === 'decision first'
            ? await shippingNow().then(cancelNow)
            : (await Promise.all([cancelNow(), shippingNow()]))[0];
      expect(cancel.outcome, `round ${round}, ${race}`).toBe('cancelled');
      for (let more = 0; more < 5; more += 1) {
        const handled = await Promise.all(
          PARTICIPANTS.map((participant) =>
            drain(participant).then((h) => {
              note(participant)(h);
              return h;
            }),
          ),
        );
        if (handled.every((h) => Object.keys(h).length === 0)) break;
      }
      await expectNothingStanding(placed, sku, 5);
      // In publish order, and once each: a late result's "compensate me again" republish of
      // OrderCancelled is a duplicate within five minutes, and the one already queued behind the
      // OrderPlaced it follows does the compensation.
      expect(seen.inventory, `round ${round}`).toEqual(['OrderPlaced', 'OrderCancelled']);
      expect(seen.payment, `round ${round}`).toEqual(['OrderPlaced', 'OrderCancelled']);
      expect(
        seen.shipping.filter((type) => type !== 'OrderConfirmed'),
        `round ${round}`,
      ).toEqual(['OrderPlaced', 'OrderCancelled']);
      expect(seen.shipping.indexOf('OrderConfirmed'), `round ${round}: OrderConfirmed, if decided first, between the two`).not.toBe(0);
      if (seen.shipping.includes('OrderConfirmed')) decidedFirst += 1;
    }
    // Both ways round happened: cancelled before the decision, and after it (refund, restock).
    expect(decidedFirst).toBeGreaterThan(0);
    expect(decidedFirst).toBeLessThan(12);
  });
});
