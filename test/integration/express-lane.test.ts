import { PublishCommand } from '@aws-sdk/client-sns';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderEvent, OrderPlaced } from '../../lib/events.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { orderIdOf, orderPlaced } from '../support/sqs-events.js';

// The lanes as the packaged template's subscriptions filter them, on the emulator's SNS (fauxqs,
// whose filter policies match `anything-but` and `exists` as SNS documents them): each event goes
// to exactly one of a consumer's two queues, the express one for an express order's events, the
// standard one for every other, a message published without a `lane` attribute included.

const CONSUMERS = ['Inventory', 'Payment', 'Shipping'] as const;

let stack: ProvisionedStack;
let publish: typeof import('../../lib/order-events-topic.js').publishOrderEvent;

beforeAll(async () => {
  stack = await startProvisionedStack();
  publish = (await import('../../lib/order-events-topic.js')).publishOrderEvent;
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

/** The order ids of the events in a queue now, taken off it (so each case starts from empty queues). */
async function drain(logicalId: string): Promise<string[]> {
  const { url } = stack.queue(logicalId);
  const ids: string[] = [];
  for (;;) {
    const { Messages = [] } = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    if (Messages.length === 0) return ids.sort();
    ids.push(...Messages.map((message) => (JSON.parse(message.Body ?? '{}') as { orderId: string }).orderId));
    await stack.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: url,
        Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  }
}

/** Where each consumer's copy of the events went: its standard queue, its express queue. */
async function lanes(): Promise<Record<string, { standard: string[]; express: string[] }>> {
  const found: Record<string, { standard: string[]; express: string[] }> = {};
  for (const consumer of CONSUMERS) {
    found[consumer] = { standard: await drain(`${consumer}Queue`), express: await drain(`${consumer}ExpressQueue`) };
  }
  return found;
}

const placed = (name: string, shippingSpeed?: 'standard' | 'express'): OrderPlaced => {
  const event = orderPlaced(orderIdOf(name)) as OrderPlaced;
  return shippingSpeed ? { ...event, data: { ...event.data, shippingSpeed } } : event;
};

describe('the lane filter policies', () => {
  it("send an express order's OrderPlaced to every consumer's express queue, a standard or unspecified one to the standard queues", async () => {
    const express = placed('lane-express', 'express');
    const standard = placed('lane-standard', 'standard');
    const unspecified = placed('lane-unspecified');
    for (const event of [express, standard, unspecified]) await publish(event);
    const found = await lanes();
    for (const consumer of CONSUMERS) {
      expect(found[consumer], consumer).toEqual({
        standard: [standard.orderId, unspecified.orderId].sort(),
        express: [express.orderId],
      });
    }
  });

  it('send an outcome to the lane its publisher names (the order’s), on the consumers that take that event type', async () => {
    const orderId = orderIdOf('lane-outcome');
    const confirmed: OrderEvent = {
      eventId: `${orderId}:OrderConfirmed`,
      eventType: 'OrderConfirmed',
      orderId,
      occurredAt: new Date().toISOString(),
      data: {},
    };
    await publish(confirmed, 'express');
    const found = await lanes();
    // Only shipping takes OrderConfirmed; it gets it in its express queue alone.
    expect(found).toEqual({
      Inventory: { standard: [], express: [] },
      Payment: { standard: [], express: [] },
      Shipping: { standard: [], express: [orderId] },
    });
  });

  it('send a message published without a lane attribute (by hand, or before the lanes) to the standard queues, never to neither', async () => {
    const event = placed('lane-by-hand');
    await stack.sns.send(
      new PublishCommand({
        TopicArn: stack.resources.topicArn,
        Message: JSON.stringify(event),
        MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderPlaced' } },
      }),
    );
    // And one naming a lane nobody serves: not express, so standard.
    const odd = placed('lane-odd');
    await stack.sns.send(
      new PublishCommand({
        TopicArn: stack.resources.topicArn,
        Message: JSON.stringify(odd),
        MessageAttributes: {
          eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
          lane: { DataType: 'String', StringValue: 'overnight' },
        },
      }),
    );
    const found = await lanes();
    for (const consumer of CONSUMERS) {
      expect(found[consumer], consumer).toEqual({ standard: [event.orderId, odd.orderId].sort(), express: [] });
    }
  });
});
