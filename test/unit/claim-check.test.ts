import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ClaimCheckObjectMissingError,
  MalformedPointerError,
  messageBytes,
  payloadOf,
  pointerBody,
  pointerOf,
} from '../../lib/claim-check.js';
import { InvalidMessageError } from '../../lib/invalid-message.js';
import { messageOf, publishOrderEvent } from '../../lib/order-events-topic.js';
import { orderIdOf, orderPlaced, sqsRecord } from '../support/sqs-events.js';

// The claim-check pointer in the AWS extended client libraries' wire format (payloadoffloading-common's
// PayloadS3Pointer as Jackson writes it; the Java SNS/SQS and Python SQS extended clients' size
// attribute), written by publishOrderEvent for an event over the threshold, and read back.

vi.hoisted(() => {
  process.env.AWS_REGION = 'us-east-1';
  process.env.ORDER_EVENTS_TOPIC_ARN = 'arn:aws:sns:us-east-1:000000000000:order-pipeline-test-order-events';
  process.env.CLAIM_CHECK_BUCKET = 'order-pipeline-test-claim-checks';
});

const BUCKET = 'order-pipeline-test-claim-checks';
const sns = mockClient(SNSClient);
const s3 = mockClient(S3Client);

beforeEach(() => {
  sns.reset();
  s3.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  s3.on(PutObjectCommand).resolves({});
  delete process.env.CLAIM_CHECK_THRESHOLD_BYTES;
});

/** A GetObject answer: the SDK's stream body, of which the code reads transformToString alone. */
function objectBody(text: string) {
  return { Body: { transformToString: async (encoding?: string) => Buffer.from(text).toString((encoding ?? 'utf-8') as BufferEncoding) } };
}

describe('the pointer', () => {
  it('is the JSON Jackson writes for PayloadS3Pointer with default typing: class name, then bucket and key, compact', () => {
    expect(pointerBody({ s3BucketName: 'my-bucket', s3Key: 'order-events/ord_1/OrderPlaced.json' })).toBe(
      '["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"my-bucket","s3Key":"order-events/ord_1/OrderPlaced.json"}]',
    );
  });

  it("measures a message as the extended clients do: the body's UTF-8 bytes plus each attribute's name, type and value", () => {
    const event = orderPlaced(orderIdOf('size'));
    const { body, attributes } = messageOf(event);
    const expected =
      Buffer.byteLength(body) +
      'eventType'.length +
      'String'.length +
      'OrderPlaced'.length +
      'orderId'.length +
      'String'.length +
      event.orderId.length +
      'lane'.length +
      'String'.length +
      'standard'.length;
    expect(messageBytes(body, attributes)).toBe(expected);
    expect(messageBytes('é', {})).toBe(2);
  });
});

describe('publishOrderEvent and the threshold', () => {
  it('publishes an event at the threshold as it is, with no S3 call', async () => {
    const event = orderPlaced(orderIdOf('at-threshold'));
    const { body, attributes } = messageOf(event);
    process.env.CLAIM_CHECK_THRESHOLD_BYTES = String(messageBytes(body, attributes));
    await publishOrderEvent(event);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
    expect(sns.commandCalls(PublishCommand)[0]!.args[0].input.Message).toBe(JSON.stringify(event));
  });

  it('stores an event one byte over it under its own key, and publishes the pointer with the size and the filter attributes', async () => {
    const event = orderPlaced(orderIdOf('over-threshold'));
    const { body, attributes } = messageOf(event);
    process.env.CLAIM_CHECK_THRESHOLD_BYTES = String(messageBytes(body, attributes) - 1);
    await publishOrderEvent(event);

    const key = `order-events/${event.orderId}/OrderPlaced.json`;
    const put = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put).toEqual({ Bucket: BUCKET, Key: key, Body: JSON.stringify(event), ContentType: 'application/json' });
    const input = sns.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(input.Message).toBe(`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"${BUCKET}","s3Key":"${key}"}]`);
    expect(input.MessageAttributes).toEqual({
      eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
      orderId: { DataType: 'String', StringValue: event.orderId },
      // The pointer keeps the lane: a large express order's events still take the express queues.
      lane: { DataType: 'String', StringValue: 'standard' },
      ExtendedPayloadSize: { DataType: 'Number', StringValue: String(Buffer.byteLength(JSON.stringify(event))) },
    });
  });

  it('publishes nothing when the object cannot be stored: no pointer to a missing object', async () => {
    process.env.CLAIM_CHECK_THRESHOLD_BYTES = '10';
    s3.on(PutObjectCommand).rejects(new Error('AccessDenied'));
    await expect(publishOrderEvent(orderPlaced(orderIdOf('put-fails')))).rejects.toThrow('AccessDenied');
    expect(sns.commandCalls(PublishCommand)).toHaveLength(0);
  });

  it.each(['262145', '0', '-1', '1.5', 'lots'])(
    'refuses to publish with a threshold of %s (SNS would refuse what it lets through), saying the range',
    async (value) => {
      process.env.CLAIM_CHECK_THRESHOLD_BYTES = value;
      await expect(publishOrderEvent(orderPlaced(orderIdOf('bad-threshold')))).rejects.toThrow(
        /CLAIM_CHECK_THRESHOLD_BYTES \(param claimCheckThresholdBytes\) is a whole number of bytes from 1 to 262144|CLAIM_CHECK_THRESHOLD_BYTES is not a number/,
      );
      expect(sns.commandCalls(PublishCommand)).toHaveLength(0);
      expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
    },
  );
});

describe('reading a record', () => {
  const attribute = (value: string) => ({ stringValue: value, dataType: 'Number', stringListValues: [], binaryListValues: [] });
  const pointer = (className: string) => JSON.stringify([className, { s3BucketName: BUCKET, s3Key: 'k/1.json' }]);

  it('takes a message without a size attribute as it is, even one that looks like a pointer', async () => {
    const body = pointer('software.amazon.payloadoffloading.PayloadS3Pointer');
    expect(pointerOf(sqsRecord(body))).toBeUndefined();
    expect(await payloadOf(sqsRecord(body))).toBe(body);
  });

  it.each([
    ['ExtendedPayloadSize', 'software.amazon.payloadoffloading.PayloadS3Pointer'],
    ['SQSLargePayloadSize', 'com.amazon.sqs.javamessaging.MessageS3Pointer'],
    ['SQSLargePayloadSize', 'software.amazon.payloadoffloading.PayloadS3Pointer'],
    ['ExtendedPayloadSize', 'com.amazon.sqs.javamessaging.MessageS3Pointer'],
  ])('reads the payload of a pointer with %s and class %s', async (name, className) => {
    s3.on(GetObjectCommand, { Bucket: BUCKET, Key: 'k/1.json' }).resolves(objectBody('{"the":"payload"}') as never);
    const record = sqsRecord(pointer(className), { messageAttributes: { [name]: attribute('17') } });
    expect(pointerOf(record)).toEqual({ s3BucketName: BUCKET, s3Key: 'k/1.json' });
    expect(await payloadOf(record)).toBe('{"the":"payload"}');
  });

  it.each([
    ['not JSON', 'not json'],
    ['not a pair', JSON.stringify({ s3BucketName: BUCKET, s3Key: 'k' })],
    ['an unknown class', JSON.stringify(['com.example.Pointer', { s3BucketName: BUCKET, s3Key: 'k' }])],
    ['no key', JSON.stringify(['software.amazon.payloadoffloading.PayloadS3Pointer', { s3BucketName: BUCKET }])],
  ])('refuses a message with the size attribute whose body is %s', (_what, body) => {
    expect(() => pointerOf(sqsRecord(body, { messageAttributes: { ExtendedPayloadSize: attribute('1') } }))).toThrow(MalformedPointerError);
  });

  it("refuses a pointer to any bucket but the stack's own, naming both, without reading it", async () => {
    const record = sqsRecord(
      JSON.stringify(['software.amazon.payloadoffloading.PayloadS3Pointer', { s3BucketName: 'someone-elses', s3Key: 'k/1.json' }]),
      {
        messageAttributes: { ExtendedPayloadSize: attribute('17') },
      },
    );
    expect(() => pointerOf(record)).toThrow(InvalidMessageError);
    expect(() => pointerOf(record)).toThrow(
      `names the bucket "someone-elses"; this stack reads claim-checked payloads only from its own bucket "${BUCKET}"`,
    );
    await expect(payloadOf(record)).rejects.toBeInstanceOf(InvalidMessageError);
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('a malformed pointer is an invalid message too (to the DLQ, as any other)', () => {
    expect(() => pointerOf(sqsRecord('not json', { messageAttributes: { ExtendedPayloadSize: attribute('1') } }))).toThrow(
      InvalidMessageError,
    );
  });

  it('names the bucket and key of a missing object and says it is gone', async () => {
    s3.on(GetObjectCommand).rejects(Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }));
    const record = sqsRecord(pointer('software.amazon.payloadoffloading.PayloadS3Pointer'), {
      messageAttributes: { ExtendedPayloadSize: attribute('17') },
    });
    const failure = payloadOf(record);
    await expect(failure).rejects.toBeInstanceOf(ClaimCheckObjectMissingError);
    await expect(failure).rejects.toThrow(`s3://${BUCKET}/k/1.json`);
    await expect(failure).rejects.toThrow(/is gone/);
  });

  it('lets any other S3 failure through as it is: a transient fault is retried, not taken for a deleted object', async () => {
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
    );
    const record = sqsRecord(pointer('software.amazon.payloadoffloading.PayloadS3Pointer'), {
      messageAttributes: { ExtendedPayloadSize: attribute('17') },
    });
    await expect(payloadOf(record)).rejects.toThrow('Access Denied');
    await expect(payloadOf(record)).rejects.not.toBeInstanceOf(ClaimCheckObjectMissingError);
  });
});
