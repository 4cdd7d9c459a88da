import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { OrderEvent, OrderPlaced } from '../../lib/events.js';
import { type Lane, publishOrderEvent } from '../../lib/order-events-topic.js';
import { publishOutcome } from '../../lib/order-outcome.js';
import type { OrderRecord } from '../../lib/order-store.js';
import { orderIdOf, orderPlaced } from '../support/sqs-events.js';

// What a publish sends, on the standard topic and on the FIFO one (queueType=fifo): the code tells
// them apart by the topic ARN, which SNS requires to end in .fifo for a FIFO topic.
vi.hoisted(() => {
  process.env.AWS_REGION = 'us-east-1';
});

const sns = mockClient(SNSClient);
const TOPIC = 'arn:aws:sns:us-east-1:000000000000:order-pipeline-test-order-events';

beforeEach(() => {
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
});

describe('publishOrderEvent', () => {
  it('on a standard topic: the event and its filter attributes, no group, no deduplication id', async () => {
    process.env.ORDER_EVENTS_TOPIC_ARN = TOPIC;
    const event = orderPlaced(orderIdOf('std'));
    await publishOrderEvent(event);
    const input = sns.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(input).toMatchObject({ TopicArn: TOPIC, Message: JSON.stringify(event) });
    expect(input.MessageAttributes?.eventType?.StringValue).toBe('OrderPlaced');
    expect(input).not.toHaveProperty('MessageGroupId');
    expect(input).not.toHaveProperty('MessageDeduplicationId');
  });

  it('names the lane: OrderPlaced its order’s shipping speed, an outcome the lane its publisher passes, standard by default', async () => {
    process.env.ORDER_EVENTS_TOPIC_ARN = TOPIC;
    const lanes = () => sns.commandCalls(PublishCommand).map((call) => call.args[0].input.MessageAttributes?.lane?.StringValue);
    const placed = orderPlaced(orderIdOf('lanes')) as OrderPlaced;
    await publishOrderEvent({ ...placed, data: { ...placed.data, shippingSpeed: 'express' } });
    await publishOrderEvent({ ...placed, data: { ...placed.data, shippingSpeed: 'standard' } });
    // An OrderPlaced from before the lanes names no speed: standard.
    await publishOrderEvent(placed);
    const confirmed = {
      eventId: `${placed.orderId}:OrderConfirmed`,
      eventType: 'OrderConfirmed' as const,
      orderId: placed.orderId,
      occurredAt: placed.occurredAt,
      data: {},
    };
    await publishOrderEvent(confirmed, 'express');
    await publishOrderEvent(confirmed);
    expect(lanes()).toEqual(['express', 'standard', 'standard', 'express', 'standard']);
  });

  it('publishes an outcome in its order’s lane (publishOutcome, as the deciding participant, the sweep and a cancel do)', async () => {
    const published: Array<[string, string | undefined]> = [];
    const publish = async (event: OrderEvent, lane?: Lane) => {
      published.push([event.eventType, lane]);
      return 'm';
    };
    const decided = { orderId: orderIdOf('outcome'), status: 'CONFIRMED', decidedAt: '2030-01-01T00:00:00.000Z' } as OrderRecord;
    await publishOutcome({ ...decided, shippingSpeed: 'express' }, publish);
    await publishOutcome({ ...decided, status: 'CANCELLED', reason: 'CUSTOMER_CANCELLED' }, publish);
    expect(published).toEqual([
      ['OrderConfirmed', 'express'],
      ['OrderCancelled', 'standard'],
    ]);
  });

  it('on a FIFO topic: the order is the message group, the event id the explicit deduplication id', async () => {
    process.env.ORDER_EVENTS_TOPIC_ARN = `${TOPIC}.fifo`;
    const event = orderPlaced(orderIdOf('fifo'));
    await publishOrderEvent(event);
    const input = sns.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(input).toMatchObject({ TopicArn: `${TOPIC}.fifo`, MessageGroupId: event.orderId, MessageDeduplicationId: event.eventId });
    expect(input.MessageAttributes?.eventType?.StringValue).toBe('OrderPlaced');
  });
});
