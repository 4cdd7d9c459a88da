import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { logger, maskSecrets, withLogKeys } from '../../lib/observability.js';
import { recordDecisionMetrics } from '../../lib/order-outcome.js';
import type { OrderRecord } from '../../lib/order-store.js';
import { createQueueConsumer } from '../../lib/queue-consumer.js';
import { lambdaContext, orderIdOf, orderPlaced, sqsEvent, sqsRecord } from '../support/sqs-events.js';

// What the functions write to stdout: Powertools JSON log lines and EMF metric blobs.
vi.hoisted(() => {
  process.env.AWS_REGION = 'us-east-1';
  process.env.POWERTOOLS_SERVICE_NAME = 'order-pipeline';
  process.env.POWERTOOLS_METRICS_NAMESPACE = 'OrderPipeline';
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
  // Powertools then writes through the global console, which the tests capture.
  process.env.POWERTOOLS_DEV = 'true';
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

mockClient(DynamoDBClient);
mockClient(SQSClient);

let lines: Array<Record<string, unknown>>;
beforeEach(() => {
  lines = [];
  const capture = (text: unknown) => {
    // One JSON document per call (indented in POWERTOOLS_DEV mode).
    if (String(text).trim().startsWith('{')) lines.push(JSON.parse(String(text)) as Record<string, unknown>);
  };
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) vi.spyOn(console, method).mockImplementation(capture);
});
afterEach(() => vi.restoreAllMocks());

const logLines = (message: string) => lines.filter((line) => line.message === message);
const emf = () =>
  lines.filter((line) => line._aws !== undefined) as Array<
    Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][]; Metrics: Array<{ Name: string }> }> } }
  >;

describe('log lines of a batch handled in parallel', () => {
  it("carry each record's own keys, in the consumer and in the domain code it calls", async () => {
    const handler = createQueueConsumer('payment', {
      OrderPlaced: async (event) => {
        // Interleave the records: a key set logger-wide by one would show on the other's line.
        await new Promise((resolve) => setTimeout(resolve, event.orderId === orderIdOf('a') ? 30 : 5));
        logger.info('Charging', { amount: 1 });
        return null;
      },
    });
    const attributes = (orderId: string) => ({
      orderId: { dataType: 'String', stringValue: orderId },
      eventType: { dataType: 'String', stringValue: 'OrderPlaced' },
    });
    const a = sqsRecord(orderPlaced(orderIdOf('a')), { messageAttributes: attributes(orderIdOf('a')) }, 1);
    const b = sqsRecord(orderPlaced(orderIdOf('b')), { messageAttributes: attributes(orderIdOf('b')) }, 3);
    await handler(sqsEvent(a, b), lambdaContext());

    const charging = logLines('Charging');
    expect(charging).toHaveLength(2);
    for (const [record, orderId, receiveCount] of [
      [a, orderIdOf('a'), 1],
      [b, orderIdOf('b'), 3],
    ] as const) {
      const line = charging.find((l) => l.messageId === record.messageId);
      expect(line).toMatchObject({
        correlation_id: orderId,
        orderId,
        eventType: 'OrderPlaced',
        receiveCount,
        consumer: 'payment',
        amount: 1,
      });
      expect(logLines('Handling event').find((l) => l.messageId === record.messageId)).toMatchObject({
        correlation_id: orderId,
        receiveCount,
      });
    }
    // Outside a record, nothing of it is left on the logger.
    logger.info('After the batch');
    expect(logLines('After the batch')[0]).not.toHaveProperty('messageId');
    expect(logLines('After the batch')[0]).not.toHaveProperty('correlation_id');
  });

  it('names the order from the message attribute even when the body cannot be parsed', async () => {
    const handler = createQueueConsumer('inventory', { OrderPlaced: async () => null });
    const poison = sqsRecord('{not json', { messageAttributes: { orderId: { dataType: 'String', stringValue: orderIdOf('p') } } });
    await handler(sqsEvent(poison), lambdaContext());
    expect(logLines('Record failed; it is retried, and moved to the dead-letter queue after maxReceiveCount receives')[0]).toMatchObject({
      correlation_id: orderIdOf('p'),
      messageId: poison.messageId,
      consumer: 'inventory',
    });
  });
});

describe('card tokens', () => {
  it('are masked in every logged string, keys and messages alike', () => {
    withLogKeys({ body: JSON.stringify(orderPlaced(orderIdOf('t'))) }, () => {
      logger.error('Declined tok_4242424242', { token: 'tok_visa', error: new Error('bad token tok_mastercard_debit') });
    });
    const text = JSON.stringify(lines);
    expect(text).not.toMatch(/tok_visa|tok_4242424242|tok_mastercard_debit/);
    expect(text).toContain('tok_****4242');
    expect(maskSecrets('token', 'tok_visa')).toBe('tok_****');
    expect(maskSecrets('n', 42)).toBe(42);
  });
});

describe('metrics', () => {
  it('per consumer: records processed, failed, retried and OrderPlaced to stage done, with a consumer dimension', async () => {
    const handler = createQueueConsumer('shipping', {
      OrderPlaced: async (event) => {
        if (event.orderId === orderIdOf('bad')) throw new Error('transient');
        return null;
      },
    });
    await handler(sqsEvent(sqsRecord(orderPlaced(orderIdOf('ok')), {}, 2), sqsRecord(orderPlaced(orderIdOf('bad')))), lambdaContext());
    const [blob] = emf();
    expect(blob?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service', 'consumer']]);
    expect(blob).toMatchObject({
      service: 'order-pipeline',
      consumer: 'shipping',
      RecordsProcessed: 1,
      RecordsFailed: 1,
      RecordsRetried: 1,
    });
    expect(blob?.OrderPlacedToStageDone).toBeGreaterThanOrEqual(0);
  });

  it("count a cancellation under `service` alone (the alarm's metric) and once more by reason", () => {
    const order = {
      orderId: orderIdOf('c'),
      status: 'CANCELLED',
      reason: 'OUT_OF_STOCK',
      createdAt: '2026-01-01T00:00:00.000Z',
      placedEvent: { occurredAt: '2026-01-01T00:00:00.000Z' },
    } as unknown as OrderRecord;
    recordDecisionMetrics(order, new Date('2026-01-01T00:00:01.500Z'));
    const blobs = emf().map((blob) => ({
      dimensions: blob._aws.CloudWatchMetrics[0]?.Dimensions,
      names: blob._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name),
      reason: blob.reason,
    }));
    expect(blobs).toEqual([
      { dimensions: [['service']], names: ['OrdersCancelled'], reason: undefined },
      { dimensions: [['service', 'reason']], names: ['OrdersCancelled'], reason: 'OUT_OF_STOCK' },
      { dimensions: [['service']], names: ['OrderPlacedToDecided'], reason: undefined },
    ]);
    expect(emf()[2]?.OrderPlacedToDecided).toBe(1500);
    expect(emf().every((blob) => blob.service === 'order-pipeline')).toBe(true);
  });
});
