import { createHash } from 'node:crypto';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { OrderEvent } from '../../lib/events.js';
import { ORDER_ID_PATTERN } from '../../lib/order-schema.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// Lambda events built the way Lambda builds them, for tests that call handlers directly.

export const QUEUE_ARN = 'arn:aws:sqs:us-east-1:000000000000:order-pipeline-test-inventory';

export function sqsRecord(body: string | OrderEvent, overrides: Partial<SQSRecord> = {}, receiveCount = 1): SQSRecord {
  const messageId = overrides.messageId ?? crypto.randomUUID();
  return {
    messageId,
    receiptHandle: `handle-${messageId}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: String(Date.now()),
      SenderId: 'AIDAEXAMPLE',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: QUEUE_ARN,
    awsRegion: 'us-east-1',
    ...overrides,
  };
}

export const FIFO_QUEUE_ARN = `${QUEUE_ARN}.fifo`;

/** A record of a FIFO queue as Lambda hands it over: its order is its group, as the publisher sets it. */
export function fifoRecord(event: OrderEvent, receiveCount = 1, sequence = 1): SQSRecord {
  const record = sqsRecord(event, { eventSourceARN: FIFO_QUEUE_ARN }, receiveCount);
  return {
    ...record,
    attributes: {
      ...record.attributes,
      SequenceNumber: String(sequence).padStart(20, '0'),
      MessageGroupId: event.orderId,
      MessageDeduplicationId: event.eventId,
    },
  };
}

export function sqsEvent(...records: SQSRecord[]): SQSEvent {
  return { Records: records };
}

export function lambdaContext(functionName = 'order-pipeline-test-inventory', timeoutMs = 10_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/**
 * A well-formed order id named by a short label (`orderIdOf('bad')`), the same for the same label:
 * consumers refuse an event whose orderId GET /orders/{orderId} would refuse, so tests cannot use
 * ids such as `ord_1`.
 */
export function orderIdOf(label: string): string {
  return `ord_${createHash('sha256').update(label).digest('hex').slice(0, 32)}`;
}

export function orderPlaced(orderId: string): OrderEvent {
  // Fail here, not as a puzzling batch item failure: the consumers would refuse this event.
  if (!ORDER_ID_PATTERN.test(orderId)) throw new Error(`orderPlaced(${orderId}): not an order id; use orderIdOf('${orderId}')`);
  return {
    eventId: `${orderId}:OrderPlaced`,
    eventType: 'OrderPlaced',
    orderId,
    occurredAt: new Date().toISOString(),
    data: {
      customerId: 'cus_1',
      items: [{ sku: 'SKU-TSHIRT-M', quantity: 1 }],
      shippingAddress: { ...SAMPLE_ADDRESS },
    },
  };
}
