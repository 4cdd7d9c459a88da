import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEventV2, SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { authenticatedCustomer, bodyBytes, header } from '../../lib/http-api.js';
import { ORDER_ID_PATTERN } from '../../lib/order-schema.js';
import { parseOrderRequest } from '../../lib/order-request.js';
import { parseOrderEvent } from '../../lib/queue-consumer.js';

// events/ holds sample Lambda events (README, "Repository layout") to feed a handler by hand or
// from a test: they must stay valid against the code, or the first thing a newcomer tries fails.
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../../events/${name}`, import.meta.url), 'utf8')) as T;

describe('sample events', () => {
  it('create-order.json is an order the API accepts', () => {
    const event = load<APIGatewayProxyEventV2>('create-order.json');
    const parsed = parseOrderRequest({
      body: bodyBytes(event),
      contentType: header(event, 'content-type'),
      idempotencyKey: header(event, 'idempotency-key'),
    });
    expect(parsed.ok).toBe(true);
    // As API Gateway hands it over after the JWT authorizer: the customer is the token's subject.
    expect(authenticatedCustomer(event)).toBe('cus_1');
  });

  it('get-order.json names a well-formed order id', () => {
    const event = load<APIGatewayProxyEventV2>('get-order.json');
    expect(event.pathParameters?.orderId).toMatch(ORDER_ID_PATTERN);
    expect(authenticatedCustomer(event)).toBe('cus_1');
  });

  it.each(['inventory', 'payment', 'shipping'])('%s-batch.json holds order events with their eventType attribute', (queue) => {
    const event = load<SQSEvent>(`${queue}-batch.json`);
    expect(event.Records.length).toBeGreaterThan(0);
    for (const record of event.Records) {
      const parsed = parseOrderEvent(record.body);
      expect(record.messageAttributes.eventType?.stringValue).toBe(parsed.eventType);
      expect(record.eventSourceARN).toContain(queue);
      // No payment data in any event: only the payment stage reads the token, from its own table.
      expect(record.body).not.toMatch(/tok_|"payment"/);
    }
  });
});
