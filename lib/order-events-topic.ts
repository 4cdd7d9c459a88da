import { PublishCommand } from '@aws-sdk/client-sns';
import { snsClient } from './aws-clients.js';
import { config } from './config.js';
import { type OrderEvent } from './events.js';
import { chance, faultPlan, InjectedFault, inOutage } from './fault-injection.js';

/**
 * Publishes one order event. `eventType` goes in a message attribute so that subscriptions filter
 * without reading the body; `orderId` too, so that every consumer can log it as correlation id.
 */
export async function publishOrderEvent(event: OrderEvent): Promise<string | undefined> {
  const faults = faultPlan();
  if (faults && chance(faults.publishFailureRate)) throw new InjectedFault('Injected publish failure');
  if (inOutage('topic')) throw new InjectedFault('Injected topic outage: publish failed');
  const result = await snsClient().send(
    new PublishCommand({
      TopicArn: config.orderEventsTopicArn(),
      Message: JSON.stringify(event),
      MessageAttributes: {
        eventType: { DataType: 'String', StringValue: event.eventType },
        orderId: { DataType: 'String', StringValue: event.orderId },
      },
    }),
  );
  return result.MessageId;
}
