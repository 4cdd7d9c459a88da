// The one place that reads the infrastructure's settings from the environment: tables, topic,
// endpoints, timings. serverless.yml sets these variables on AWS; the local runtime sets the same
// ones (plus AWS_ENDPOINT_URL_* pointing at the emulators) for each function. Two switches read
// their own variables where they act: fault injection (lib/fault-injection.ts, FAULT_*, never set
// by serverless.yml) and the tracing switch (lib/tracing.ts, replaced at bundle time).

export interface AwsEndpoints {
  /** Overrides for local emulators; undefined on AWS, where the SDK finds the regional endpoint. */
  sqs?: string;
  sns?: string;
  dynamodb?: string;
  s3?: string;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`Environment variable ${name} is not set`);
  return value;
}

function optional(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

function numberOr(name: string, fallback: number): number {
  const raw = optional(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`Environment variable ${name} is not a number: ${raw}`);
  return value;
}

/** SNS's limit for one message, body and attributes (resources/claim-check-threshold.cjs checks the param against it too). */
export const SNS_MAX_MESSAGE_BYTES = 262_144;

/**
 * The claim-check threshold: an event at or under it is published as it is, so over SNS's limit
 * it would be refused by SNS, and at 0 or less every event would go through the bucket.
 */
function claimCheckThresholdBytes(): number {
  const name = 'CLAIM_CHECK_THRESHOLD_BYTES';
  const bytes = numberOr(name, 200 * 1024);
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > SNS_MAX_MESSAGE_BYTES) {
    throw new Error(
      `Environment variable ${name} (param claimCheckThresholdBytes) is a whole number of bytes from 1 to ${SNS_MAX_MESSAGE_BYTES} (SNS's message limit), not ${process.env[name]}`,
    );
  }
  return bytes;
}

export const config = {
  region: () => optional('AWS_REGION') ?? 'us-east-1',
  endpoints: (): AwsEndpoints => ({
    // The AWS SDK reads these standard variables too; naming them here keeps the override visible.
    sqs: optional('AWS_ENDPOINT_URL_SQS') ?? optional('AWS_ENDPOINT_URL'),
    sns: optional('AWS_ENDPOINT_URL_SNS') ?? optional('AWS_ENDPOINT_URL'),
    dynamodb: optional('AWS_ENDPOINT_URL_DYNAMODB') ?? optional('AWS_ENDPOINT_URL'),
    s3: optional('AWS_ENDPOINT_URL_S3') ?? optional('AWS_ENDPOINT_URL'),
  }),
  ordersTable: () => required('ORDERS_TABLE'),
  inventoryTable: () => required('INVENTORY_TABLE'),
  paymentsTable: () => required('PAYMENTS_TABLE'),
  paymentTokensTable: () => required('PAYMENT_TOKENS_TABLE'),
  orderRequestsTable: () => required('ORDER_REQUESTS_TABLE'),
  idempotencyTable: () => required('IDEMPOTENCY_TABLE'),
  /**
   * The queue consumers' function timeout: an attempt still running after it is dead, so its stock
   * marker may be taken over (lib/inventory.ts). The longest Lambda allows when not set.
   */
  consumerTimeoutSeconds: () => numberOr('CONSUMER_TIMEOUT_SECONDS', 900),
  orderEventsTopicArn: () => required('ORDER_EVENTS_TOPIC_ARN'),
  /**
   * The claim-check bucket (lib/claim-check.ts): where an event too large for SNS is stored. Read
   * only when one is, so a function that never handles a large event needs no bucket.
   */
  claimCheckBucket: () => required('CLAIM_CHECK_BUCKET'),
  /**
   * An event whose message (body plus attributes) is over this many bytes goes through the bucket.
   * SNS takes 262,144 bytes, attributes included; 200 KiB leaves room for what SNS adds.
   */
  claimCheckThresholdBytes,
  /** First retry delay of a failed record; doubles with each receive, capped at 15 minutes. */
  retryBackoffBaseSeconds: () => numberOr('RETRY_BACKOFF_BASE_SECONDS', 2),
  /** An order not finished this long after it was placed or decided is the sweep's to finish. */
  orderSweepAfterSeconds: () => numberOr('ORDER_SWEEP_AFTER_SECONDS', 120),
  /** The sweep's wait before it acts again on the same order: doubles with each attempt. */
  orderSweepBackoffBaseSeconds: () => numberOr('ORDER_SWEEP_BACKOFF_BASE_SECONDS', 60),
  /** Attempts after which an order counts as stuck (metric OrdersStuck, and its alarm). */
  orderSweepStuckAttempts: () => numberOr('ORDER_SWEEP_STUCK_ATTEMPTS', 5),
};
