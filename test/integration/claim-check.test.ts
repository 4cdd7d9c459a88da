import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  DeleteMessageBatchCommand,
  type MessageAttributeValue,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { OrderEvent, OrderPlaced } from '../../lib/events.js';
import { PARTICIPANTS, type Participant } from '../../lib/order-schema.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';
import { toSqsRecord } from '../../local/sqs-poller.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { lambdaContext } from '../support/sqs-events.js';
import { storeCreatedOrder } from '../support/stored-order.js';

// The claim-check on the emulators: the bucket, topic, queues, subscriptions and filter policies
// provisioned from the packaged template, the three participants' handlers as deployed, fed by a
// small poller that hands them records with their message attributes, as Lambda does. A low
// CLAIM_CHECK_THRESHOLD_BYTES stands in for a large order (the 5,000-line order end to end is
// issue 15's other test): an order of a few dozen lines is over it, outcome events are not.

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;
const THRESHOLD_BYTES = 1000;
const queueIdOf = (participant: Participant) => `${participant.charAt(0).toUpperCase()}${participant.slice(1)}Queue`;

let stack: ProvisionedStack;
const queues = {} as Record<Participant, { url: string; arn: string; dlqUrl: string }>;
const handlers = {} as Record<Participant, Handler>;
let orders: typeof import('../../lib/order-store.js');
let topic: typeof import('../../lib/order-events-topic.js');
/** The handlers' log lines (Powertools Logger, JSON on stdout). */
const logged: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  stack = await startProvisionedStack();
  for (const participant of PARTICIPANTS) {
    const { url, arn, dlqUrl } = stack.queue(queueIdOf(participant));
    if (!dlqUrl) throw new Error(`${queueIdOf(participant)} has no dead-letter queue`);
    queues[participant] = { url, arn, dlqUrl };
  }
  Object.assign(process.env, {
    // A failed record is visible again at once: the poller below is the only clock.
    RETRY_BACKOFF_BASE_SECONDS: '0',
    CLAIM_CHECK_THRESHOLD_BYTES: String(THRESHOLD_BYTES),
    POWERTOOLS_LOG_LEVEL: 'INFO',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  // Powertools Logger writes info lines to stdout, warnings to stderr.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      for (const line of String(chunk).split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          logged.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      }
      return true;
    });
  }
  [orders, topic] = await Promise.all([import('../../lib/order-store.js'), import('../../lib/order-events-topic.js')]);
  handlers.inventory = (await import('../../functions/inventory.js')).handler as Handler;
  handlers.payment = (await import('../../functions/payment.js')).handler as Handler;
  handlers.shipping = (await import('../../functions/shipping.js')).handler as Handler;
}, 120_000);

afterAll(async () => {
  vi.restoreAllMocks();
  await stack?.stop();
});

beforeEach(() => {
  process.env.CLAIM_CHECK_THRESHOLD_BYTES = String(THRESHOLD_BYTES);
});

/** One receive from a participant's queue handed to its handler as Lambda would; the records it did not fail are deleted. */
async function pollOnce(participant: Participant): Promise<number> {
  const { Messages = [] } = await stack.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queues[participant].url,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 0,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
    }),
  );
  if (Messages.length === 0) return 0;
  const records = Messages.map((message) => toSqsRecord(message, { queueArn: queues[participant].arn, region: 'us-east-1' }));
  const response = await handlers[participant]({ Records: records }, lambdaContext(`test-${participant}`));
  const failed = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
  const done = records.filter((record) => !failed.has(record.messageId));
  if (done.length > 0) {
    await stack.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queues[participant].url,
        Entries: done.map((record, i) => ({ Id: String(i), ReceiptHandle: record.receiptHandle })),
      }),
    );
  }
  return Messages.length;
}

/** Messages a queue holds in any state (ready, in flight, delayed). */
function heldIn(queueUrl: string): Array<{ body: string; messageAttributes?: Record<string, { DataType: string; StringValue?: string }> }> {
  const state = stack.emulators.fauxqs.inspectQueue(queueUrl.split('/').pop()!);
  if (!state) throw new Error(`No queue at ${queueUrl}`);
  return [...state.messages.ready, ...state.messages.delayed, ...state.messages.inflight.map((entry) => entry.message)];
}

/** Polls the three queues until none holds anything, in flight included. */
async function drain(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(PARTICIPANTS.map((participant) => pollOnce(participant)));
    if (counts.every((count) => count === 0) && PARTICIPANTS.every((participant) => heldIn(queues[participant].url).length === 0)) return;
    if (Date.now() > deadline) throw new Error('The queues did not drain in time');
    if (counts.every((count) => count === 0)) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let skuCounter = 0;
/** `lines` SKUs with stock enough for one order of each. */
async function seedSkus(lines: number): Promise<string[]> {
  const skus: string[] = [];
  for (let i = 0; i < lines; i++) {
    skuCounter += 1;
    const sku = `SKU-CLAIM-${skuCounter}`;
    await stack.db.send(
      new PutCommand({ TableName: stack.table('InventoryTable'), Item: { sku, name: `Item ${skuCounter}`, available: 5, applying: {} } }),
    );
    skus.push(sku);
  }
  return skus;
}

/** An order stored as the order API stores it (its OrderPlaced is not published). */
async function storeOrder(lines: number): Promise<OrderPlaced> {
  const skus = await seedSkus(lines);
  const order = await storeCreatedOrder(
    'cus_claim',
    { items: skus.map((sku) => ({ sku, quantity: 1 })), payment: { token: 'tok_visa' }, shippingAddress: { ...SAMPLE_ADDRESS } },
    undefined,
  );
  return order.placedEvent;
}

async function objectText(key: string): Promise<string | undefined> {
  try {
    const { Body } = await stack.s3.send(new GetObjectCommand({ Bucket: stack.claimCheckBucket, Key: key }));
    return await Body?.transformToString();
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw error;
  }
}

const claimCheckKey = (event: OrderEvent) => `order-events/${event.orderId}/${event.eventType}.json`;
const stringAttribute = (value: string): MessageAttributeValue => ({ DataType: 'String', StringValue: value });

/** The claim-check pointer of an OrderPlaced, delivered again to a participant's queue as SNS would. */
async function sendPointerAgain(participant: Participant, event: OrderPlaced): Promise<void> {
  await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl: queues[participant].url,
      MessageBody: `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"${stack.claimCheckBucket}","s3Key":"${claimCheckKey(event)}"}]`,
      MessageAttributes: {
        eventType: stringAttribute('OrderPlaced'),
        orderId: stringAttribute(event.orderId),
        ExtendedPayloadSize: { DataType: 'Number', StringValue: '9999' },
      },
    }),
  );
}

describe('publishing an event over the threshold', () => {
  let placed: OrderPlaced;

  it('stores it in the bucket and puts a pointer, with its size and filter attributes, in each subscribed queue', async () => {
    placed = await storeOrder(30);
    const body = JSON.stringify(placed);
    expect(Buffer.byteLength(body)).toBeGreaterThan(THRESHOLD_BYTES);
    await topic.publishOrderEvent(placed);

    expect(await objectText(claimCheckKey(placed))).toBe(body);
    const pointer = `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"${stack.claimCheckBucket}","s3Key":"${claimCheckKey(placed)}"}]`;
    for (const participant of PARTICIPANTS) {
      const held = heldIn(queues[participant].url).filter((message) => message.body.includes(placed.orderId));
      expect(held.map((message) => message.body)).toEqual([pointer]);
      expect(held[0]!.messageAttributes).toMatchObject({
        eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
        orderId: { DataType: 'String', StringValue: placed.orderId },
        ExtendedPayloadSize: { DataType: 'Number', StringValue: String(Buffer.byteLength(body)) },
      });
    }
  });

  it("is handled from the pointer by every participant, and its object is gone once the order's three results are in", async () => {
    await drain();
    const order = await orders.findOrder(placed.orderId);
    expect(order).toMatchObject({ status: 'CONFIRMED', dispatchedAt: expect.any(String) });
    expect(order?.items).toHaveLength(30);
    expect(await objectText(claimCheckKey(placed))).toBeUndefined();
    for (const participant of PARTICIPANTS) expect(heldIn(queues[participant].dlqUrl)).toEqual([]);
  }, 60_000);

  it('a late duplicate of that OrderPlaced, its object deleted, is acknowledged by each participant, not dead-lettered', async () => {
    for (const participant of PARTICIPANTS) await sendPointerAgain(participant, placed);
    await drain();
    for (const participant of PARTICIPANTS) {
      expect(heldIn(queues[participant].dlqUrl).filter((message) => message.body.includes(placed.orderId))).toEqual([]);
    }
    const acknowledged = logged.filter((line) => line.orderId === placed.orderId && String(line.message).startsWith('Duplicate delivery'));
    expect(new Set(acknowledged.map((line) => line.consumer))).toEqual(new Set(PARTICIPANTS));
    expect(await orders.findOrder(placed.orderId)).toMatchObject({ status: 'CONFIRMED' });
  }, 60_000);

  it('a late duplicate whose earlier delivery died halfway through the stock: the unit that attempt took goes back', async () => {
    const sku = placed.data.items[0]!.sku;
    const inventoryTable = stack.table('InventoryTable');
    // The order holds 1 of its 5; an attempt that died (past its marker's `until`) took 1 more.
    const dead = `reserve:deadbeef:${Date.now() - 1000}`;
    await stack.db.send(
      new PutCommand({ TableName: inventoryTable, Item: { sku, name: 'Item', available: 3, applying: { [placed.orderId]: dead } } }),
    );
    await sendPointerAgain('inventory', placed);
    await drain();
    const { Item } = await stack.db.send(new GetCommand({ TableName: inventoryTable, Key: { sku }, ConsistentRead: true }));
    expect(Item).toMatchObject({ available: 4 });
    expect(Item?.applying).toEqual({});
    expect(heldIn(queues.inventory.dlqUrl).filter((message) => message.body.includes(placed.orderId))).toEqual([]);
  }, 60_000);

  it('a small event goes as it is, and its order leaves nothing in the bucket', async () => {
    const small = await storeOrder(1);
    await topic.publishOrderEvent(small);
    expect(heldIn(queues.shipping.url).map((message) => message.body)).toContain(JSON.stringify(small));
    expect(await objectText(claimCheckKey(small))).toBeUndefined();
    await drain();
    expect(await orders.findOrder(small.orderId)).toMatchObject({ status: 'CONFIRMED' });
  }, 60_000);

  it('a pointer passes the filter policies as its event would: a claim-checked OrderConfirmed reaches shipping alone', async () => {
    const small = await storeOrder(1);
    // The smallest threshold allowed: every event goes through the bucket.
    process.env.CLAIM_CHECK_THRESHOLD_BYTES = '1';
    const confirmed: OrderEvent = {
      eventId: `${small.orderId}:OrderConfirmed`,
      eventType: 'OrderConfirmed',
      orderId: small.orderId,
      occurredAt: new Date().toISOString(),
      data: {},
    };
    await topic.publishOrderEvent(confirmed);
    const pointers = (participant: Participant) =>
      heldIn(queues[participant].url).filter((message) => message.body.includes(claimCheckKey(confirmed)));
    expect(pointers('shipping')).toHaveLength(1);
    expect(pointers('inventory')).toEqual([]);
    expect(pointers('payment')).toEqual([]);
    expect(await objectText(claimCheckKey(confirmed))).toBe(JSON.stringify(confirmed));
    // The order is not decided: the event was published only to watch it pass the filters.
    await stack.sqs.send(new PurgeQueueCommand({ QueueUrl: queues.shipping.url }));
  });
});

describe('a message written by an AWS extended client', () => {
  it("is read and handled: the payload stored under the client's own key, the pointer as Python's json.dumps writes it, no attribute of ours", async () => {
    const placed = await storeOrder(1);
    // The Java and Python clients store the payload under a random UUID key and send the pointer
    // with the size attribute alone.
    const key = randomUUID();
    const body = JSON.stringify(placed);
    await stack.s3.send(new PutObjectCommand({ Bucket: stack.claimCheckBucket, Key: key, Body: body }));
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: queues.shipping.url,
        MessageBody: `["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "${stack.claimCheckBucket}", "s3Key": "${key}"}]`,
        MessageAttributes: { ExtendedPayloadSize: { DataType: 'Number', StringValue: String(Buffer.byteLength(body)) } },
      }),
    );
    while ((await pollOnce('shipping')) > 0);
    expect(heldIn(queues.shipping.url)).toEqual([]);
    expect(heldIn(queues.shipping.dlqUrl).filter((message) => message.body.includes(key))).toEqual([]);
    expect((await orders.findOrder(placed.orderId))?.shipping).toMatchObject({ outcome: 'SUCCEEDED' });
  });
});

describe('a pointer whose object is missing', () => {
  it('fails until the record is in the DLQ with its original body, the error naming the bucket and key', async () => {
    const placed = await storeOrder(1);
    const key = `order-events/${placed.orderId}/OrderPlaced.json`;
    const pointer = `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"${stack.claimCheckBucket}","s3Key":"${key}"}]`;
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: queues.inventory.url,
        MessageBody: pointer,
        MessageAttributes: {
          eventType: stringAttribute('OrderPlaced'),
          orderId: stringAttribute(placed.orderId),
          ExtendedPayloadSize: { DataType: 'Number', StringValue: '1234' },
        },
      }),
    );
    const deadline = Date.now() + 30_000;
    while (!heldIn(queues.inventory.dlqUrl).some((message) => message.body.includes(placed.orderId))) {
      await pollOnce('inventory');
      if (Date.now() > deadline) throw new Error('The record did not reach the DLQ');
    }
    expect(
      heldIn(queues.inventory.dlqUrl)
        .filter((message) => message.body.includes(placed.orderId))
        .map((message) => message.body),
    ).toEqual([pointer]);
    expect(heldIn(queues.inventory.url)).toEqual([]);
    // Nothing was done for the order: inventory never saw its event.
    expect((await orders.findOrder(placed.orderId))?.inventory).toBeUndefined();
    const failures = logged.filter((line) => line.orderId === placed.orderId && line.level === 'WARN');
    expect(failures.length).toBeGreaterThan(0);
    expect(JSON.stringify(failures[0]!.error)).toContain(`s3://${stack.claimCheckBucket}/${key}`);
    expect(JSON.stringify(failures[0]!.error)).toContain('ClaimCheckObjectMissingError');
    expect(JSON.stringify(failures[0]!.error)).toContain('is gone');
  }, 60_000);
});
