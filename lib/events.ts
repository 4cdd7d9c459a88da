import * as z from 'zod/mini';
import { orderIdSchema, orderItemSchema, shippingAddressSchema, shippingSpeedSchema } from './order-schema.js';

// Every message on the order events topic is one of these, JSON in the message body, with its
// type also in the `eventType` message attribute so that subscriptions can filter on it.

export const EVENT_TYPES = ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const envelope = {
  /** The event's identity: the same for every delivery and every republish of one event. */
  eventId: z.string().check(z.minLength(1), z.maxLength(200)),
  orderId: orderIdSchema,
  occurredAt: z.iso.datetime(),
};

export const orderPlacedSchema = z.object({
  ...envelope,
  eventType: z.literal('OrderPlaced'),
  // No payment data: every participant's queue receives this event, and only the payment participant needs the
  // card token, which it reads from the payment tokens table (lib/payment-tokens.ts).
  data: z.object({
    customerId: z.string(),
    items: z.array(orderItemSchema).check(z.minLength(1)),
    shippingAddress: shippingAddressSchema,
    /** Left out by events published before the express lane: standard. */
    shippingSpeed: z.optional(shippingSpeedSchema),
  }),
});

export const cancellationReasons = ['OUT_OF_STOCK', 'PAYMENT_DECLINED', 'SHIPPING_UNAVAILABLE', 'CUSTOMER_CANCELLED'] as const;
export type CancellationReason = (typeof cancellationReasons)[number];

export const orderConfirmedSchema = z.object({
  ...envelope,
  eventType: z.literal('OrderConfirmed'),
  data: z.object({}),
});

export const orderCancelledSchema = z.object({
  ...envelope,
  eventType: z.literal('OrderCancelled'),
  data: z.object({ reason: z.enum(cancellationReasons) }),
});

export const orderEventSchema = z.discriminatedUnion('eventType', [orderPlacedSchema, orderConfirmedSchema, orderCancelledSchema]);

export type OrderPlaced = z.infer<typeof orderPlacedSchema>;
export type OrderConfirmed = z.infer<typeof orderConfirmedSchema>;
export type OrderCancelled = z.infer<typeof orderCancelledSchema>;
export type OrderEvent = z.infer<typeof orderEventSchema>;

/** One event of each type per order, so the pair names the event across redeliveries and republishes. */
export function eventIdOf(orderId: string, eventType: EventType): string {
  return `${orderId}:${eventType}`;
}
