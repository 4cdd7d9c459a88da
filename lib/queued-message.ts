import * as z from 'zod/mini';
import {
  carriesPayloadSize,
  LEGACY_PAYLOAD_SIZE_ATTRIBUTE,
  PAYLOAD_SIZE_ATTRIBUTE,
  type PayloadPointer,
  parsePointerBody,
} from './claim-check.js';
import { EVENT_TYPES, type EventType, type OrderEvent, orderEventSchema } from './events.js';
import { InvalidMessageError } from './invalid-message.js';
import { orderIdSchema } from './order-schema.js';

// What a message on a consumer's queue or dead-letter queue is, told from the message alone: an
// order event (its body), a claim-checked order event (a pointer in the extended clients' format,
// lib/claim-check.ts, whose event type and order id travel as message attributes), or neither. The
// consumers parse bodies with parseOrderEvent; the tools that look into a DLQ (npm run redrive,
// npm run lab, npm run chaos) use describeQueuedMessage, and never read S3: following a pointer is
// the consumer's job, and a DLQ may outlive its object.

/** A message attribute as the SQS API (and fauxqs) writes it, or as Lambda hands it to a consumer. */
export interface QueuedMessageAttribute {
  DataType?: string;
  StringValue?: string;
  dataType?: string;
  stringValue?: string;
}

/** A queued message: its body and its message attributes, in either spelling. */
export interface QueuedMessage {
  body: string;
  attributes?: Record<string, QueuedMessageAttribute | undefined>;
}

export type QueuedMessageDescription =
  /** An order event in the body. */
  | { kind: 'order-event'; eventType: EventType; orderId: string; event: OrderEvent }
  /** A pointer to an order event in a bucket: its type and order from the message attributes. */
  | { kind: 'claim-checked'; eventType: EventType; orderId: string; pointer: PayloadPointer; payloadBytes: number }
  /** Neither: poison, with why. */
  | { kind: 'invalid'; reason: string };

/** An order event from a message body; an InvalidMessageError saying what is wrong otherwise. */
export function parseOrderEvent(body: string): OrderEvent {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new InvalidMessageError('Message body is not JSON');
  }
  const parsed = orderEventSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidMessageError(
      `Message body is not an order event: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
    );
  }
  return parsed.data;
}

const eventTypeSchema = z.enum(EVENT_TYPES);

const stringValueOf = (attribute: QueuedMessageAttribute | undefined): string | undefined =>
  attribute?.StringValue ?? attribute?.stringValue;

/** What a queued message is, from its body and attributes alone (no S3). */
export function describeQueuedMessage(message: QueuedMessage): QueuedMessageDescription {
  const attributes = message.attributes ?? {};
  if (!carriesPayloadSize(Object.keys(attributes))) {
    try {
      const event = parseOrderEvent(message.body);
      return { kind: 'order-event', eventType: event.eventType, orderId: event.orderId, event };
    } catch (error) {
      return { kind: 'invalid', reason: (error as Error).message };
    }
  }
  let pointer: PayloadPointer;
  try {
    pointer = parsePointerBody(message.body);
  } catch (error) {
    return { kind: 'invalid', reason: (error as Error).message };
  }
  const sizeName = attributes[PAYLOAD_SIZE_ATTRIBUTE] ? PAYLOAD_SIZE_ATTRIBUTE : LEGACY_PAYLOAD_SIZE_ATTRIBUTE;
  const size = stringValueOf(attributes[sizeName]);
  if (size === undefined || !/^\d+$/.test(size)) {
    return { kind: 'invalid', reason: `Claim-check pointer: its ${sizeName} attribute is not a size in bytes: ${JSON.stringify(size)}` };
  }
  const eventType = eventTypeSchema.safeParse(stringValueOf(attributes.eventType));
  if (!eventType.success) {
    return {
      kind: 'invalid',
      reason: `Claim-check pointer: its eventType attribute is not one of ${EVENT_TYPES.join(', ')}: ${JSON.stringify(stringValueOf(attributes.eventType))}`,
    };
  }
  const orderId = orderIdSchema.safeParse(stringValueOf(attributes.orderId));
  if (!orderId.success) {
    return {
      kind: 'invalid',
      reason: `Claim-check pointer: its orderId attribute ${JSON.stringify(stringValueOf(attributes.orderId))} ${orderId.error.issues[0]?.message ?? 'is invalid'}`,
    };
  }
  return { kind: 'claim-checked', eventType: eventType.data, orderId: orderId.data, pointer, payloadBytes: Number(size) };
}

/** Whether a queued message is an order event, in its body or claim-checked. */
export function isOrderEventMessage(message: QueuedMessage): boolean {
  return describeQueuedMessage(message).kind !== 'invalid';
}

/** One line for a person: `OrderPlaced ord_…` (with `(claim-checked)` for a pointer), or why it is not an order event. */
export function queuedMessageLabel(description: QueuedMessageDescription): string {
  if (description.kind === 'invalid') return `not an order event (${description.reason})`;
  return `${description.eventType} ${description.orderId}${description.kind === 'claim-checked' ? ' (claim-checked)' : ''}`;
}
