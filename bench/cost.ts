// Per-order request counts and their price on AWS.

import type { RequestCounts } from '../local/request-counter.js';
import type { FunctionStats } from '../local/lambda-environment.js';
import { AWS_PRICES, type AwsPrices } from './aws-prices.js';
import { round } from './load.js';

export interface PerOrder {
  httpApiRequests: number;
  snsPublishes: number;
  sqsRequests: number;
  sqsByAction: Record<string, number>;
  sqsEmptyReceives: number;
  /** Messages the receives returned: each SNS delivery to a queue, retries and redeliveries included. */
  sqsMessagesReceived: number;
  dynamodbReads: number;
  dynamodbWrites: number;
  /** Reads that were strongly consistent (ConsistentRead: true), of dynamodbReads. */
  dynamodbConsistentReads: number;
  dynamodbReadUnits: number;
  dynamodbWriteUnits: number;
  dynamodbByTable: Record<string, { reads: number; writes: number; readUnits: number; writeUnits: number }>;
  /** Each step (table and operation) per order, most units first: where the next saving is. */
  dynamodbBySteps: Array<{ table: string; action: string; requests: number; readUnits: number; writeUnits: number }>;
  lambdaInvocations: number;
  lambdaInvocationsByFunction: Record<string, number>;
  /** GB-s per order from durations measured here, on shared cores: not what AWS would bill. */
  lambdaGbSeconds: number;
  lambdaMsByFunction: Record<string, number>;
  /** GB-s per order modeled from the counted calls (LAMBDA_DURATION_MODEL): what the cost total uses. */
  lambdaModeled: ModeledLambdaDuration;
  /** SNS publishes + SQS requests + DynamoDB requests: the AWS API calls (Lambda invocations apart). */
  awsRequests: number;
}

/**
 * Lambda duration per order modeled from what the functions were counted doing, instead of timed
 * on two shared cores beside the emulators. Each figure is a stated assumption, printed with the
 * cost table: a DynamoDB request inside a region takes single-digit milliseconds, an SNS publish
 * and an SQS request tens. Calls are taken one after another (no overlap, also between the records
 * of a batch, which Powertools' BatchProcessor handles concurrently): an upper bound. Which function
 * made a call is not counted, so GB-s use the functions' memory sizes weighted by invocations.
 */
export const LAMBDA_DURATION_MODEL = {
  /** The runtime's own work and the handler's CPU (parse, validate, log, serialise), per invocation. */
  perInvocationMs: 10,
  dynamodbRequestMs: 5,
  snsPublishMs: 20,
  /** SQS requests the functions make (ChangeMessageVisibility for backoff); receive and delete are the event source mapping's, outside any function. */
  sqsRequestMs: 10,
  /** The card charge each order's payment makes at an external provider (simulated locally; its DynamoDB items are counted above too). */
  providerCallMs: 300,
  providerCallsPerOrder: 1,
} as const;

export type LambdaDurationModel = typeof LAMBDA_DURATION_MODEL;

export interface ModeledLambdaDuration {
  /** Milliseconds per order, by what they are spent on. */
  msPerOrder: { invocations: number; dynamodb: number; sns: number; sqs: number; provider: number; total: number };
  /** The functions' memory sizes, weighted by their invocations per order. */
  memoryMb: number;
  gbSecondsPerOrder: number;
}

/** Lambda GB-s per order as the model gives them, from the counted calls of one order. */
export function modelLambdaDuration(
  order: Pick<
    PerOrder,
    | 'lambdaInvocations'
    | 'lambdaInvocationsByFunction'
    | 'snsPublishes'
    | 'sqsByAction'
    | 'dynamodbReads'
    | 'dynamodbWrites'
    | 'dynamodbBySteps'
  >,
  memoryMbByFunction: Record<string, number>,
  model: LambdaDurationModel = LAMBDA_DURATION_MODEL,
): ModeledLambdaDuration {
  const dynamodbRequests = order.dynamodbBySteps.reduce((sum, step) => sum + step.requests, 0);
  const sqsByFunctions = (order.sqsByAction.ChangeMessageVisibility ?? 0) + (order.sqsByAction.ChangeMessageVisibilityBatch ?? 0);
  const ms = {
    invocations: order.lambdaInvocations * model.perInvocationMs,
    dynamodb: dynamodbRequests * model.dynamodbRequestMs,
    sns: order.snsPublishes * model.snsPublishMs,
    sqs: sqsByFunctions * model.sqsRequestMs,
    provider: model.providerCallsPerOrder * model.providerCallMs,
  };
  const total = Object.values(ms).reduce((a, b) => a + b, 0);
  const weighted = Object.entries(order.lambdaInvocationsByFunction);
  const invocations = weighted.reduce((sum, [, n]) => sum + n, 0);
  const memoryMb =
    invocations > 0 ? weighted.reduce((sum, [name, n]) => sum + n * (memoryMbByFunction[name] ?? 512), 0) / invocations : 512;
  const r = (value: number) => round(value, 1);
  return {
    msPerOrder: {
      invocations: r(ms.invocations),
      dynamodb: r(ms.dynamodb),
      sns: r(ms.sns),
      sqs: r(ms.sqs),
      provider: r(ms.provider),
      total: r(total),
    },
    memoryMb: Math.round(memoryMb),
    gbSecondsPerOrder: round((total / 1000) * (memoryMb / 1024), 5),
  };
}

export interface CostPerMillion {
  httpApi: number;
  lambdaRequests: number;
  /** Modeled duration (LAMBDA_DURATION_MODEL): the one in the total. */
  lambdaDuration: number;
  /** Measured duration here, printed apart: not in the total. */
  lambdaDurationMeasured: number;
  sns: number;
  sqs: number;
  dynamodb: number;
  total: number;
  dominant: string;
  why: string;
}

export type FunctionStatsDelta = Record<string, Pick<FunctionStats, 'invocations' | 'totalDurationMs' | 'coldStarts'>>;

export function statsDelta(before: Record<string, FunctionStats>, after: Record<string, FunctionStats>): FunctionStatsDelta {
  return Object.fromEntries(
    Object.entries(after).map(([name, stats]) => [
      name,
      {
        invocations: stats.invocations - (before[name]?.invocations ?? 0),
        totalDurationMs: stats.totalDurationMs - (before[name]?.totalDurationMs ?? 0),
        coldStarts: stats.coldStarts - (before[name]?.coldStarts ?? 0),
      },
    ]),
  );
}

/** Short table names: `order-pipeline-local-orders` → `orders`. */
function shortTable(name: string): string {
  return name.replace(/^order-pipeline-[a-z0-9]+-/, '');
}

export function perOrder(
  counts: RequestCounts,
  lambda: FunctionStatsDelta,
  memoryMbByFunction: Record<string, number>,
  orders: number,
): PerOrder {
  const per = (value: number) => round(value / orders, 3);
  const sqsTotal = Object.values(counts.sqs.actions).reduce((a, b) => a + b, 0);
  const tables = Object.entries(counts.dynamodb.tables);
  const sum = (pick: (t: (typeof tables)[number][1]) => number) => tables.reduce((acc, [, t]) => acc + pick(t), 0);
  const invocations = Object.values(lambda).reduce((a, f) => a + f.invocations, 0);
  const gbSeconds = Object.entries(lambda).reduce(
    (acc, [name, f]) => acc + (f.totalDurationMs / 1000) * ((memoryMbByFunction[name] ?? 512) / 1024),
    0,
  );
  const snsPublishes = (counts.sns.actions.Publish ?? 0) + (counts.sns.actions.PublishBatch ?? 0);
  const dynamoRequests = sum((t) => Object.values(t.actions).reduce((a, b) => a + b, 0));
  const counted = {
    httpApiRequests: per(lambda.createOrder?.invocations ?? 0),
    snsPublishes: per(snsPublishes),
    sqsRequests: per(sqsTotal),
    sqsByAction: Object.fromEntries(Object.entries(counts.sqs.actions).map(([action, n]) => [action, per(n)])),
    sqsEmptyReceives: per(counts.sqs.emptyReceives),
    sqsMessagesReceived: per(counts.sqs.receivedMessages),
    dynamodbReads: per(sum((t) => t.reads)),
    dynamodbWrites: per(sum((t) => t.writes)),
    dynamodbConsistentReads: per(sum((t) => t.consistentReads)),
    dynamodbReadUnits: per(sum((t) => t.readCapacityUnits)),
    dynamodbWriteUnits: per(sum((t) => t.writeCapacityUnits)),
    dynamodbByTable: Object.fromEntries(
      tables.map(([name, t]) => [
        shortTable(name),
        { reads: per(t.reads), writes: per(t.writes), readUnits: per(t.readCapacityUnits), writeUnits: per(t.writeCapacityUnits) },
      ]),
    ),
    dynamodbBySteps: tables
      .flatMap(([name, t]) =>
        Object.entries(t.unitsByAction ?? {}).map(([action, u]) => ({
          table: shortTable(name),
          action,
          requests: per(u.requests),
          readUnits: per(u.readUnits),
          writeUnits: per(u.writeUnits),
        })),
      )
      .sort((a, b) => b.writeUnits + b.readUnits - (a.writeUnits + a.readUnits)),
    lambdaInvocations: per(invocations),
    lambdaInvocationsByFunction: Object.fromEntries(
      Object.entries(lambda)
        .filter(([, f]) => f.invocations > 0)
        .map(([name, f]) => [name, per(f.invocations)]),
    ),
    lambdaGbSeconds: round(gbSeconds / orders, 5),
    lambdaMsByFunction: Object.fromEntries(
      Object.entries(lambda)
        .filter(([, f]) => f.invocations > 0)
        .map(([name, f]) => [name, round(f.totalDurationMs / orders, 1)]),
    ),
    awsRequests: per(snsPublishes + sqsTotal + dynamoRequests),
  };
  return { ...counted, lambdaModeled: modelLambdaDuration(counted, memoryMbByFunction) };
}

/**
 * Dollars per million orders. SNS and SQS messages here are far below 64 KB, so each publish and
 * each request is one billed unit; DynamoDB units come from the consumed capacity dynalite reported.
 * FIFO: SQS FIFO requests cost more, SNS FIFO publishes less, and SNS FIFO bills each delivery to
 * a queue (taken as the messages received: an upper bound, retries included).
 */
export function costPerMillion(
  order: PerOrder,
  prices: AwsPrices = AWS_PRICES,
  queueType: 'standard' | 'fifo' = 'standard',
): CostPerMillion {
  const fifo = queueType === 'fifo';
  const parts = {
    httpApi: order.httpApiRequests * prices.httpApiPerMillionRequests,
    lambdaRequests: order.lambdaInvocations * prices.lambdaPerMillionRequests,
    lambdaDuration: order.lambdaModeled.gbSecondsPerOrder * 1e6 * prices.lambdaArm64PerGbSecond,
    sns: fifo
      ? order.snsPublishes * prices.snsFifoPerMillionPublishes + order.sqsMessagesReceived * prices.snsFifoPerMillionDeliveries
      : order.snsPublishes * prices.snsPerMillionPublishes,
    sqs: order.sqsRequests * (fifo ? prices.sqsFifoPerMillionRequests : prices.sqsPerMillionRequests),
    dynamodb: order.dynamodbWriteUnits * prices.dynamodbPerMillionWriteUnits + order.dynamodbReadUnits * prices.dynamodbPerMillionReadUnits,
  };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  const lambdaDurationMeasured = order.lambdaGbSeconds * 1e6 * prices.lambdaArm64PerGbSecond;
  const services: Record<string, number> = {
    'API Gateway': parts.httpApi,
    Lambda: parts.lambdaRequests + parts.lambdaDuration,
    SNS: parts.sns,
    SQS: parts.sqs,
    DynamoDB: parts.dynamodb,
  };
  const [dominant, amount] = Object.entries(services).sort((a, b) => b[1] - a[1])[0]!;
  const share = `${Math.round((amount / total) * 100)}% of the total`;
  let why: string;
  if (dominant === 'Lambda') {
    why = `${share}: ${order.lambdaInvocations} invocations and ${order.lambdaModeled.gbSecondsPerOrder} GB-s per order (modeled); duration is ${Math.round((parts.lambdaDuration / (parts.lambdaDuration + parts.lambdaRequests)) * 100)}% of it`;
  } else if (dominant === 'DynamoDB') {
    const top = Object.entries(order.dynamodbByTable)
      .sort((a, b) => b[1].writeUnits - a[1].writeUnits)
      .slice(0, 2);
    why = `${share}: ${order.dynamodbWriteUnits} WRU per order (writes cost 5x reads per unit), mostly ${top.map(([name, t]) => `${name} ${t.writeUnits}`).join(', ')}`;
  } else if (dominant === 'SQS') {
    why = `${share}: ${order.sqsRequests} requests per order, ${order.sqsEmptyReceives} of them empty receives`;
  } else if (dominant === 'SNS') {
    why = `${share}: ${order.snsPublishes} publishes per order`;
  } else {
    why = `${share}: one request per order at $${prices.httpApiPerMillionRequests} per million, the highest unit price here`;
  }
  const r = (value: number) => round(value, 3);
  return {
    httpApi: r(parts.httpApi),
    lambdaRequests: r(parts.lambdaRequests),
    lambdaDuration: r(parts.lambdaDuration),
    lambdaDurationMeasured: r(lambdaDurationMeasured),
    sns: r(parts.sns),
    sqs: r(parts.sqs),
    dynamodb: r(parts.dynamodb),
    total: r(total),
    dominant,
    why,
  };
}
