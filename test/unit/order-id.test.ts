import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { handler as getOrder } from '../../functions/getOrder.js';
import { orderIdSchema } from '../../lib/order-schema.js';
import { createQueueConsumer, InvalidMessageError, parseOrderEvent } from '../../lib/queue-consumer.js';
import { lambdaContext, orderIdOf, orderPlaced, sqsEvent, sqsRecord } from '../support/sqs-events.js';

// One order id schema for the API and the consumers: an event whose orderId GET /orders/{orderId}
// refuses as malformed is refused by every consumer too (an InvalidMessageError, reported failed
// until SQS moves it to the DLQ), with the same message.

vi.hoisted(() => {
  process.env.ORDERS_TABLE = 'orders';
  process.env.IDEMPOTENCY_TABLE = 'idempotency';
  process.env.AWS_REGION = 'us-east-1';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
});

const documents = mockClient(DynamoDBDocumentClient);
mockClient(DynamoDBClient);
mockClient(SQSClient);
beforeEach(() => {
  documents.reset();
  documents.on(GetCommand).resolves({});
});

const MESSAGE = 'must look like ord_ followed by 32 hex digits';
const hex32 = '0123456789abcdef0123456789abcdef';
const malformed = [
  'ord_1',
  'ord_a',
  `ord_${hex32.toUpperCase()}`,
  `ORD_${hex32}`,
  `ord_${hex32.slice(1)}`,
  `ord_${hex32}0`,
  `ord_${'g'.repeat(32)}`,
  `ord_${hex32}\n`,
  ` ord_${hex32}`,
  `ord-${hex32}`,
  '../../etc/passwd',
  '',
];

const getEvent = (orderId: string) =>
  ({
    version: '2.0',
    routeKey: 'GET /orders/{orderId}',
    rawPath: `/orders/${encodeURIComponent(orderId)}`,
    rawQueryString: '',
    headers: {},
    requestContext: {
      http: { method: 'GET', path: `/orders/${encodeURIComponent(orderId)}` },
      requestId: 'r1',
      authorizer: { jwt: { claims: { sub: 'cus_1' }, scopes: null } },
    },
    pathParameters: { orderId },
    isBase64Encoded: false,
  }) as unknown as APIGatewayProxyEventV2;

const eventsFor = (orderId: string) => {
  const placed = orderPlaced(orderIdOf('template'));
  return [
    { ...placed, orderId, eventId: `${orderId}:OrderPlaced` },
    { ...placed, orderId, eventId: `${orderId}:OrderConfirmed`, eventType: 'OrderConfirmed', data: {} },
    { ...placed, orderId, eventId: `${orderId}:OrderCancelled`, eventType: 'OrderCancelled', data: { reason: 'OUT_OF_STOCK' } },
  ];
};

describe('one order id schema', () => {
  it('is the schema GET /orders/{orderId} gives its message from', () => {
    const result = orderIdSchema.safeParse('ord_1');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe(MESSAGE);
  });

  it.each(malformed)('GET /orders/{orderId} and parseOrderEvent both refuse %j, with the same message', async (orderId) => {
    const response = (await getOrder(getEvent(orderId), lambdaContext('getOrder'))) as { statusCode: number; body: string };
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: 'ValidationError',
      message: `orderId: ${MESSAGE}`,
      issues: [{ field: 'orderId', message: MESSAGE }],
    });
    expect(documents.commandCalls(GetCommand)).toHaveLength(0);

    for (const event of eventsFor(orderId)) {
      const parse = () => parseOrderEvent(JSON.stringify(event));
      expect(parse).toThrow(InvalidMessageError);
      expect(parse).toThrow(`Message body is not an order event: orderId: ${MESSAGE}`);
    }
  });

  it('a consumer reports an event with a malformed orderId failed, without handling it, so it ends in the DLQ', async () => {
    const handled: string[] = [];
    const handler = createQueueConsumer('inventory', { OrderPlaced: async (event) => handled.push(event.orderId) });
    const bad = sqsRecord(JSON.stringify(eventsFor('ord_1')[0]));
    const good = sqsRecord(orderPlaced(orderIdOf('good')));
    const response = await handler(sqsEvent(bad, good), lambdaContext());
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: bad.messageId }]);
    expect(handled).toEqual([orderIdOf('good')]);
  });

  it('a well-formed id passes both: the event parses, and GET looks the order up', async () => {
    const orderId = orderIdOf('well-formed');
    for (const event of eventsFor(orderId)) expect(parseOrderEvent(JSON.stringify(event)).orderId).toBe(orderId);
    const response = (await getOrder(getEvent(orderId), lambdaContext('getOrder'))) as { statusCode: number; body: string };
    expect(response.statusCode).toBe(404);
    expect(documents.commandCalls(GetCommand)[0]?.args[0].input.Key).toEqual({ orderId });
  });
});
