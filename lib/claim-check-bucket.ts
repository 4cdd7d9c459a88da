import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { PayloadPointer } from './claim-check.js';
import { config } from './config.js';
import { traced } from './tracing.js';

// The claim-check bucket's S3 calls (lib/claim-check.ts), in a module of their own that
// lib/claim-check.ts imports on first use: the S3 client is large, and most invocations never
// meet a large event. Its client is made here rather than in lib/aws-clients.ts, which every
// function loads at start, for the same reason.

let s3: S3Client | undefined;

export function s3Client(): S3Client {
  const endpoint = config.endpoints().s3;
  // An emulator serves every bucket on one host and port (fauxqs, beside SNS and SQS): path-style
  // URLs, since <bucket>.127.0.0.1 resolves nowhere. On AWS, the SDK's default virtual-hosted style.
  s3 ??= traced(new S3Client({ region: config.region(), endpoint, ...(endpoint ? { forcePathStyle: true } : {}) }));
  return s3;
}

export async function putPayload(bucket: string, key: string, body: string): Promise<void> {
  await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
}

/**
 * The payload a pointer names; undefined when the object is not there (404 NoSuchKey: the
 * consumers may list the prefix, since without s3:ListBucket S3 answers 403 for a missing key,
 * which would look like a permission fault). Any other failure is thrown as it is.
 */
export async function getPayload(pointer: PayloadPointer): Promise<string | undefined> {
  try {
    const { Body } = await s3Client().send(new GetObjectCommand({ Bucket: pointer.s3BucketName, Key: pointer.s3Key }));
    return Body ? await Body.transformToString('utf-8') : undefined;
  } catch (error) {
    if (isMissingObject(error)) return undefined;
    throw error;
  }
}

/** Deletes an object (S3 answers a missing key with success too). */
export async function deletePayload(bucket: string, key: string): Promise<void> {
  await s3Client().send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

function isMissingObject(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NoSuchKey' || name === 'NotFound' || $metadata?.httpStatusCode === 404;
}
