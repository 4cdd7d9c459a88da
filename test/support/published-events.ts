import { SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import type { OrderEvent } from '../../lib/events.js';
import type { ProvisionedStack } from './provisioned-stack.js';

/**
 * Subscribes a queue of the test's own to the stack's order events topic, with no filter policy and
 * raw delivery, and returns a reader of every event published since: those of one order, or all.
 * Reading inspects the queue and consumes nothing.
 */
export async function capturePublishedEvents(stack: ProvisionedStack, queueName: string): Promise<(orderId?: string) => OrderEvent[]> {
  const topicArn = stack.resources.topicArn;
  if (!topicArn) throw new Error('The template subscribes no queue to a topic');
  const { QueueUrl } = await stack.sqs.send(new CreateQueueCommand({ QueueName: queueName }));
  const { Attributes } = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  await stack.sns.send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'sqs',
      Endpoint: Attributes?.QueueArn,
      Attributes: { RawMessageDelivery: 'true' },
    }),
  );
  return (orderId) => {
    const queue = stack.emulators.fauxqs.inspectQueue(queueName);
    return [...(queue?.messages.ready ?? []), ...(queue?.messages.delayed ?? [])]
      .map((message) => JSON.parse(message.body) as OrderEvent)
      .filter((event) => orderId === undefined || event.orderId === orderId);
  };
}
