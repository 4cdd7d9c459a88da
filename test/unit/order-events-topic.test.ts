import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { publishOrderEvent } from '../../lib/order-events-topic.js';
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

  it('on a FIFO topic: the order is the message group, the event id the explicit deduplication id', async () => {
    process.env.ORDER_EVENTS_TOPIC_ARN = `${TOPIC}.fifo`;
    const event = orderPlaced(orderIdOf('fifo'));
    await publishOrderEvent(event);
    const input = sns.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(input).toMatchObject({ TopicArn: `${TOPIC}.fifo`, MessageGroupId: event.orderId, MessageDeduplicationId: event.eventId });
    expect(input.MessageAttributes?.eventType?.StringValue).toBe('OrderPlaced');
  });
});
