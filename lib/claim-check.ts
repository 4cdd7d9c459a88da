import type { SQSRecord } from 'aws-lambda';
import { config } from './config.js';
import { InvalidMessageError } from './invalid-message.js';

// The claim-check pattern: a message too large for SNS (262,144 bytes, attributes included) is
// stored in the stack's S3 bucket, and the message carries a pointer to it instead. The pointer is
// in the wire format of the AWS extended client libraries (Java amazon-sns-java-extended-client-lib
// and amazon-sqs-java-extended-client-lib 2.x over payloadoffloading-common; Python
// amazon-sqs-extended-client), so that a Java or Python consumer with the extended client reads our
// messages, and we read theirs (docs/decisions.md, "Claim-check in the extended clients' format"):
//
//   body       ["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"…","s3Key":"…"}]
//   attribute  ExtendedPayloadSize (Number): the original body's size in bytes
//
// Readers also take what older versions of those libraries wrote: the attribute SQSLargePayloadSize
// and the class name com.amazon.sqs.javamessaging.MessageS3Pointer. A message is a pointer when it
// carries either attribute, as those libraries decide it.

/** The class name Jackson writes before the pointer (payloadoffloading-common's PayloadS3Pointer). */
export const POINTER_CLASS = 'software.amazon.payloadoffloading.PayloadS3Pointer';
/** The class name of amazon-sqs-java-extended-client-lib 1.x, which readers still accept. */
export const LEGACY_POINTER_CLASS = 'com.amazon.sqs.javamessaging.MessageS3Pointer';
/** The message attribute holding the original body's size (DataType Number). */
export const PAYLOAD_SIZE_ATTRIBUTE = 'ExtendedPayloadSize';
/** Its name in amazon-sqs-java-extended-client-lib 1.x. */
export const LEGACY_PAYLOAD_SIZE_ATTRIBUTE = 'SQSLargePayloadSize';

/** Where an offloaded payload is: the object of the pointer. */
export interface PayloadPointer {
  s3BucketName: string;
  s3Key: string;
}

/** A message attribute as SNS and SQS take it. */
export interface MessageAttribute {
  DataType: string;
  StringValue?: string;
  BinaryValue?: Uint8Array;
}

/** A message that says it is a pointer (it carries the size attribute) but whose body is not one. */
export class MalformedPointerError extends InvalidMessageError {
  override name = 'MalformedPointerError';
}

/**
 * The object a pointer names is not in the bucket: deleted once every participant was done with
 * it, or expired by the bucket's lifecycle rule. The record cannot be handled; it fails until it
 * reaches the dead-letter queue, pointer intact, unless it is a late duplicate (lib/queue-consumer.ts).
 */
export class ClaimCheckObjectMissingError extends Error {
  override name = 'ClaimCheckObjectMissingError';
  constructor(readonly pointer: PayloadPointer) {
    super(
      `The claim-check object s3://${pointer.s3BucketName}/${pointer.s3Key} this message points to is gone (deleted once the order was decided, or expired by the bucket's lifecycle rule): its payload cannot be read`,
    );
  }
}

/**
 * A message's size as the extended clients measure it against their threshold: the body's UTF-8
 * bytes, plus each attribute's name, data type and value.
 */
export function messageBytes(body: string, attributes: Record<string, MessageAttribute>): number {
  let bytes = utf8Bytes(body);
  for (const [name, attribute] of Object.entries(attributes)) {
    bytes += utf8Bytes(name) + utf8Bytes(attribute.DataType);
    if (attribute.StringValue !== undefined) bytes += utf8Bytes(attribute.StringValue);
    if (attribute.BinaryValue !== undefined) bytes += attribute.BinaryValue.byteLength;
  }
  return bytes;
}

/** Whether a message goes through the bucket: over the threshold, as the extended clients compare. */
export function exceedsClaimCheckThreshold(body: string, attributes: Record<string, MessageAttribute>): boolean {
  return messageBytes(body, attributes) > config.claimCheckThresholdBytes();
}

/** The pointer body, byte for byte as Jackson writes it (compact, the class name first). */
export function pointerBody(pointer: PayloadPointer): string {
  return JSON.stringify([POINTER_CLASS, { s3BucketName: pointer.s3BucketName, s3Key: pointer.s3Key }]);
}

/**
 * The object key of an order event: one per event (an order has one event of each type), so a
 * republish (the sweep, a replayed request) overwrites the same object instead of leaving a copy,
 * and whoever deletes it finds its key from the order alone.
 */
export function claimCheckKeyOf(event: { orderId: string; eventType: string }): string {
  return `order-events/${event.orderId}/${event.eventType}.json`;
}

/** Whether a message carries a size attribute (either name): that makes it a pointer, as the extended clients decide. */
export function carriesPayloadSize(attributeNames: Iterable<string>): boolean {
  for (const name of attributeNames) if (name === PAYLOAD_SIZE_ATTRIBUTE || name === LEGACY_PAYLOAD_SIZE_ATTRIBUTE) return true;
  return false;
}

/**
 * The pointer in the body of a message that carries a size attribute; a MalformedPointerError when
 * the body is not one. Reads the body only: which bucket is acceptable is the consumer's to say
 * (pointerOf), so that a tool can recognise a pointer without the stack's settings.
 */
export function parsePointerBody(body: string): PayloadPointer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MalformedPointerError('The message carries an extended payload size but its body is not JSON');
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) {
    throw new MalformedPointerError('The message carries an extended payload size but its body is not a [class, pointer] pair');
  }
  const [className, pointer] = parsed as [unknown, unknown];
  if (className !== POINTER_CLASS && className !== LEGACY_POINTER_CLASS) {
    throw new MalformedPointerError(`Unknown payload pointer class ${JSON.stringify(className)}`);
  }
  const { s3BucketName, s3Key } = (pointer ?? {}) as Record<string, unknown>;
  if (typeof s3BucketName !== 'string' || s3BucketName === '' || typeof s3Key !== 'string' || s3Key === '') {
    throw new MalformedPointerError('The payload pointer names no s3BucketName and s3Key');
  }
  return { s3BucketName, s3Key };
}

/**
 * The pointer a record carries, or undefined for an ordinary message. A message is a pointer when
 * it carries ExtendedPayloadSize or SQSLargePayloadSize, as the extended clients decide. A pointer
 * is followed only into the stack's own claim-check bucket: one naming any other bucket is an
 * InvalidMessageError (to the DLQ), since whoever can publish to the topic would otherwise have the
 * consumers read, with their role, any object that role can reach.
 */
export function pointerOf(record: Pick<SQSRecord, 'body' | 'messageAttributes'>): PayloadPointer | undefined {
  if (!carriesPayloadSize(Object.keys(record.messageAttributes ?? {}))) return undefined;
  const pointer = parsePointerBody(record.body);
  const accepted = config.claimCheckBucket();
  if (pointer.s3BucketName !== accepted) {
    throw new InvalidMessageError(
      `The payload pointer names the bucket ${JSON.stringify(pointer.s3BucketName)}; this stack reads claim-checked payloads only from its own bucket ${JSON.stringify(accepted)}`,
    );
  }
  return pointer;
}

/**
 * The bucket's side (lib/claim-check-bucket.ts: the S3 client and its calls), loaded on first use:
 * a function that never meets a large event never evaluates the S3 client (docs/decisions.md,
 * "Claim-check in the extended clients' format", for what that saves).
 */
const bucket = () => import('./claim-check-bucket.js');

/**
 * Stores the body in the bucket and returns the message that replaces it: the pointer, with the
 * size attribute added to the message's own (the `eventType` and `orderId` attributes stay, for
 * filter policies and log correlation).
 */
export async function checkIn(
  key: string,
  body: string,
  attributes: Record<string, MessageAttribute>,
): Promise<{ body: string; attributes: Record<string, MessageAttribute> }> {
  const bucketName = config.claimCheckBucket();
  await (await bucket()).putPayload(bucketName, key, body);
  return {
    body: pointerBody({ s3BucketName: bucketName, s3Key: key }),
    attributes: { ...attributes, [PAYLOAD_SIZE_ATTRIBUTE]: { DataType: 'Number', StringValue: String(utf8Bytes(body)) } },
  };
}

/** A record's body: the payload its pointer names, or the body itself when it carries no pointer. */
export async function payloadOf(record: Pick<SQSRecord, 'body' | 'messageAttributes'>): Promise<string> {
  const pointer = pointerOf(record);
  if (!pointer) return record.body;
  const payload = await (await bucket()).getPayload(pointer);
  if (payload === undefined) throw new ClaimCheckObjectMissingError(pointer);
  return payload;
}

/** Deletes an event's object from the bucket (no error when it is already gone). */
export async function discard(key: string): Promise<void> {
  await (await bucket()).deletePayload(config.claimCheckBucket(), key);
}

const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');
