// AWS list prices the benchmark turns request counts into dollars with. us-east-1, on-demand,
// no free tier, no Savings Plans or volume tiers beyond the first. These are LIST PRICES AS READ
// ON `PRICES_AS_OF` (recorded with issue 7; this machine has no network, so they were not re-read
// from the pricing pages when the benchmark was written). Prices change: check
// https://aws.amazon.com/<service>/pricing/ and update the date with the numbers.

export const PRICES_AS_OF = '2026-11-25';
export const PRICES_REGION = 'us-east-1';

export const AWS_PRICES = {
  /** HTTP API (API Gateway v2): per million requests, first 300 million a month. */
  httpApiPerMillionRequests: 1.0,
  /** Lambda: per million requests, and per GB-second of duration on arm64 (Graviton). */
  lambdaPerMillionRequests: 0.2,
  lambdaArm64PerGbSecond: 0.0000133334,
  /** SNS standard topic: per million publishes, each 64 KB chunk of a payload billed as one. Delivery to SQS is free. */
  snsPerMillionPublishes: 0.5,
  snsChunkBytes: 64 * 1024,
  /** SQS standard queue: per million requests, each 64 KB chunk billed as a request (empty receives included). */
  sqsPerMillionRequests: 0.4,
  sqsChunkBytes: 64 * 1024,
  /**
   * The FIFO variant (queueType=fifo), recalled rather than re-read like the rest: an SQS FIFO
   * queue's requests; an SNS FIFO topic's publishes and its subscription messages (each delivery to
   * a queue), both also billed per GB of payload ($0.017 and $0.001), which for these 1 KB events
   * is under a cent per million orders and left out.
   */
  sqsFifoPerMillionRequests: 0.5,
  snsFifoPerMillionPublishes: 0.3,
  snsFifoPerMillionDeliveries: 0.01,
  /**
   * DynamoDB on-demand: per million write request units (1 WRU per 1 KB written) and read request
   * units (1 RRU per 4 KB read strongly consistently, half that for an eventually consistent read).
   */
  dynamodbPerMillionWriteUnits: 0.625,
  dynamodbPerMillionReadUnits: 0.125,
} as const;

export type AwsPrices = typeof AWS_PRICES;
