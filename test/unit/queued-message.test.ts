import { describe, expect, it } from 'vitest';
import { pointerBody } from '../../lib/claim-check.js';
import { describeQueuedMessage, isOrderEventMessage, queuedMessageLabel } from '../../lib/queued-message.js';
import { orderIdOf, orderPlaced } from '../support/sqs-events.js';

// What the tools that look into a dead-letter queue (npm run redrive, npm run lab, npm run chaos)
// take a message for, from its body and attributes alone: an order event, a claim-checked order
// event (a pointer whose type and order travel as attributes), or poison with its reason.

const ORDER_ID = orderIdOf('queued');
const POINTER = pointerBody({ s3BucketName: 'order-pipeline-local-claim-checks', s3Key: `order-events/${ORDER_ID}/OrderPlaced.json` });
const text = (StringValue: string, DataType = 'String') => ({ DataType, StringValue });
/** A pointer as the publisher sends it, in the SQS API's spelling of attributes. */
const pointerAttributes = (overrides: Record<string, { DataType: string; StringValue: string } | undefined> = {}) => ({
  eventType: text('OrderPlaced'),
  orderId: text(ORDER_ID),
  ExtendedPayloadSize: text('300123', 'Number'),
  ...overrides,
});

describe('describeQueuedMessage', () => {
  it('reads an order event from its body', () => {
    const description = describeQueuedMessage({ body: JSON.stringify(orderPlaced(ORDER_ID)) });
    expect(description).toMatchObject({ kind: 'order-event', eventType: 'OrderPlaced', orderId: ORDER_ID });
    expect(queuedMessageLabel(description)).toBe(`OrderPlaced ${ORDER_ID}`);
  });

  it('takes a pointer with the size attribute for a claim-checked order event, its type and order from the attributes, without S3', () => {
    const description = describeQueuedMessage({ body: POINTER, attributes: pointerAttributes() });
    expect(description).toEqual({
      kind: 'claim-checked',
      eventType: 'OrderPlaced',
      orderId: ORDER_ID,
      pointer: { s3BucketName: 'order-pipeline-local-claim-checks', s3Key: `order-events/${ORDER_ID}/OrderPlaced.json` },
      payloadBytes: 300123,
    });
    expect(queuedMessageLabel(description)).toBe(`OrderPlaced ${ORDER_ID} (claim-checked)`);
    expect(isOrderEventMessage({ body: POINTER, attributes: pointerAttributes() })).toBe(true);
  });

  it("reads attributes as Lambda spells them too, and the older clients' size attribute", () => {
    const lambda = {
      eventType: { dataType: 'String', stringValue: 'OrderCancelled' },
      orderId: { dataType: 'String', stringValue: ORDER_ID },
      SQSLargePayloadSize: { dataType: 'Number', stringValue: '270000' },
    };
    expect(describeQueuedMessage({ body: POINTER, attributes: lambda })).toMatchObject({
      kind: 'claim-checked',
      eventType: 'OrderCancelled',
      orderId: ORDER_ID,
    });
  });

  it.each([
    ['a body that is not JSON', { body: 'poison: never an order' }, /not JSON/],
    ['JSON that is not an order event', { body: JSON.stringify({ ...orderPlaced(ORDER_ID), orderId: 'ord_1' }) }, /orderId/],
    [
      'a pointer-looking body without the size attribute',
      { body: POINTER, attributes: { eventType: text('OrderPlaced'), orderId: text(ORDER_ID) } },
      /not an order event/,
    ],
    [
      'the size attribute on a body that is no pointer',
      { body: '{"not":"a pointer"}', attributes: pointerAttributes() },
      /\[class, pointer\]/,
    ],
    [
      'a pointer whose size is not a number',
      { body: POINTER, attributes: pointerAttributes({ ExtendedPayloadSize: text('big', 'Number') }) },
      /ExtendedPayloadSize/,
    ],
    [
      'a pointer of an unknown event type',
      { body: POINTER, attributes: pointerAttributes({ eventType: text('OrderShipped') }) },
      /eventType attribute.*"OrderShipped"/,
    ],
    [
      'a pointer without an eventType attribute',
      { body: POINTER, attributes: pointerAttributes({ eventType: undefined }) },
      /eventType attribute/,
    ],
    [
      'a pointer whose orderId is malformed',
      { body: POINTER, attributes: pointerAttributes({ orderId: text('ord_1') }) },
      /orderId attribute "ord_1" must look like ord_/,
    ],
    [
      'a pointer without an orderId attribute',
      { body: POINTER, attributes: pointerAttributes({ orderId: undefined }) },
      /orderId attribute/,
    ],
  ])('calls %s invalid, with the reason', (_what, message, reason) => {
    const description = describeQueuedMessage(message);
    expect(description.kind).toBe('invalid');
    if (description.kind === 'invalid') expect(description.reason).toMatch(reason);
    expect(queuedMessageLabel(description)).toMatch(/^not an order event \(/);
    expect(isOrderEventMessage(message)).toBe(false);
  });
});
