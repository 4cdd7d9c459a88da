import { PublishCommand } from '@aws-sdk/client-sns';
import { snsClient } from './aws-clients.js';
import { checkIn, claimCheckKeyOf, exceedsClaimCheckThreshold, type MessageAttribute } from './claim-check.js';
import { config } from './config.js';
import type { OrderEvent } from './events.js';
import { chance, faultPlan, InjectedFault, inOutage } from './fault-injection.js';
import type { ShippingSpeed } from './order-schema.js';

/**
 * The lane an order's events travel in: every consumer has a queue per lane, and the `lane` message
 * attribute picks it (the subscriptions' filter policies, resources/consumer-resources.cjs). An
 * order keeps its lane for all its events, so on FIFO queues its events stay in order.
 */
export type Lane = ShippingSpeed;
export const LANE_ATTRIBUTE = 'lane';

/** The lane of an event that names its order's shipping speed (OrderPlaced); standard otherwise. */
export function laneOfEvent(event: OrderEvent): Lane {
  return event.eventType === 'OrderPlaced' && event.data.shippingSpeed === 'express' ? 'express' : 'standard';
}

/** SNS requires a FIFO topic's name, and so its ARN, to end in `.fifo` (queueType=fifo). */
export function isFifoTopic(topicArn: string): boolean {
  return topicArn.endsWith('.fifo');
}

/**
 * An event's SNS message: JSON in the body; `eventType` in a message attribute so that
 * subscriptions filter without reading the body; `orderId` too, so that every consumer can log it
 * as correlation id; and `lane`, which queue of each consumer gets it. OrderPlaced carries its lane;
 * an outcome event's publisher has the order at hand and passes the order's (lib/order-outcome.ts).
 */
export function messageOf(
  event: OrderEvent,
  lane: Lane = laneOfEvent(event),
): { body: string; attributes: Record<string, MessageAttribute> } {
  return {
    body: JSON.stringify(event),
    attributes: {
      eventType: { DataType: 'String', StringValue: event.eventType },
      orderId: { DataType: 'String', StringValue: event.orderId },
      [LANE_ATTRIBUTE]: { DataType: 'String', StringValue: lane },
    },
  };
}

/**
 * Whether publishing the event stores it in the claim-check bucket: its message is over the
 * threshold. The same answer for the same event, so whoever holds the event (the decider, rebuilding
 * OrderPlaced from the order, whose lane the event itself names) knows whether there is an object to
 * delete without asking S3.
 */
export function isClaimChecked(event: OrderEvent, lane: Lane = laneOfEvent(event)): boolean {
  const { body, attributes } = messageOf(event, lane);
  return exceedsClaimCheckThreshold(body, attributes);
}

/**
 * Publishes one order event (its message: messageOf). An event over the claim-check threshold is
 * stored in the bucket under its own key and the message carries a pointer to it
 * (lib/claim-check.ts), with the same attributes. On a FIFO topic an order is a message group (its
 * events reach each queue in publish order) and the event id is the deduplication id: a republish of
 * the same event within five minutes (a retried request, the sweep) is accepted and not delivered
 * again.
 */
export async function publishOrderEvent(event: OrderEvent, lane: Lane = laneOfEvent(event)): Promise<string | undefined> {
  const faults = faultPlan();
  if (faults && chance(faults.publishFailureRate)) throw new InjectedFault('Injected publish failure');
  if (inOutage('topic')) throw new InjectedFault('Injected topic outage: publish failed');
  const topicArn = config.orderEventsTopicArn();
  const message = messageOf(event, lane);
  const { body, attributes } = exceedsClaimCheckThreshold(message.body, message.attributes)
    ? await checkIn(claimCheckKeyOf(event), message.body, message.attributes)
    : message;
  const result = await snsClient().send(
    new PublishCommand({
      TopicArn: topicArn,
      ...(isFifoTopic(topicArn) ? { MessageGroupId: event.orderId, MessageDeduplicationId: event.eventId } : {}),
      Message: body,
      MessageAttributes: attributes,
    }),
  );
  return result.MessageId;
}
