import { BatchProcessor, EventType, processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import type { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import { ChangeMessageVisibilityBatchCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { queueUrlOf, sqsClient } from './aws-clients.js';
import { ClaimCheckObjectMissingError, payloadOf } from './claim-check.js';
import { config } from './config.js';
import type { EventType as OrderEventType, OrderCancelled, OrderConfirmed, OrderEvent, OrderPlaced } from './events.js';
import { chance, faultPlan, fraction, hang, InjectedFault, sleep } from './fault-injection.js';
import { appendLogKeys, logger, withLogKeys } from './observability.js';
import type { Participant } from './order-schema.js';
import { findOrder } from './order-store.js';
import { InvalidMessageError } from './invalid-message.js';
import { parseOrderEvent } from './queued-message.js';
import { invocationEndsWithItsWork } from './lambda-invocation.js';

// Where they were first defined: the consumers' tests and the sample events' test import them from here.
export { InvalidMessageError, parseOrderEvent };

/** What a consumer does for each event type it subscribes to. */
export interface OrderEventHandlers {
  OrderPlaced?: (event: OrderPlaced) => Promise<unknown>;
  OrderConfirmed?: (event: OrderConfirmed) => Promise<unknown>;
  OrderCancelled?: (event: OrderCancelled) => Promise<unknown>;
}

/** SQS allows at most 12 hours of visibility; past 15 minutes a retry is better left to the DLQ. */
const MAX_BACKOFF_SECONDS = 900;

/** Seconds a failed record stays hidden before its next receive: doubles with each receive. */
export function retryDelaySeconds(receiveCount: number, baseSeconds: number): number {
  const attempt = Math.max(1, Math.floor(receiveCount));
  return Math.min(MAX_BACKOFF_SECONDS, Math.round(baseSeconds * 2 ** (attempt - 1)));
}

/** Options of a consumer beyond its handlers. */
export interface QueueConsumerOptions {
  /**
   * Powertools idempotency configurations used by the handlers: each is given the Lambda context,
   * so that an in-progress record of an invocation that dies expires with the invocation.
   */
  idempotency?: IdempotencyConfig[];
  /**
   * The saga participant this consumer is, if it is one. An OrderPlaced whose claim-check object is
   * gone is then a late duplicate when this participant's result is on the order already (the
   * object is deleted once all three results are, lib/order-outcome.ts): it is handled as rebuilt
   * from the order, which the handler finds recorded earlier.
   */
  participant?: Participant;
}

/** SQS requires a FIFO queue's name, and so its ARN, to end in `.fifo` (queueType=fifo). */
export function isFifoQueue(queueArn: string): boolean {
  return queueArn.endsWith('.fifo');
}

/**
 * The SQS consumer every participant shares: Powertools batch processing reports each failed
 * record in `batchItemFailures` (so only it is retried), and failed records get an exponential
 * backoff through ChangeMessageVisibility. Duplicate deliveries are absorbed by the handlers
 * themselves: each of their writes is conditional and happens once (docs/dynamodb-costs.md), and
 * the one call outside DynamoDB, the payment provider's, has Powertools idempotency of its own.
 *
 * From a FIFO queue, each message group's records are handled one after another in the batch's
 * order, and a failed record stops its group: the group's later records are reported failed without
 * being handled, so that they come back after it, while the other groups of the batch go on.
 */
export function createQueueConsumer(consumer: string, handlers: OrderEventHandlers, options: QueueConsumerOptions = {}) {
  // The consumer's own metrics (records processed, failed, retried, duplicates skipped, latency),
  // with a `consumer` dimension next to `service`. Order outcome metrics keep `service` alone.
  const consumerMetrics = new Metrics({ defaultDimensions: { consumer } });
  const handleEvent = async (event: OrderEvent): Promise<unknown> => {
    const result = await dispatch(handlers, event);
    if (isDuplicate(result)) {
      consumerMetrics.addMetric('DuplicatesSkipped', MetricUnit.Count, 1);
      logger.info('Duplicate delivery: the work was recorded earlier');
    } else if (event.eventType === 'OrderPlaced') {
      // The time from the order being placed to this participant's part done, retries and queueing included.
      const elapsedMs = Date.now() - Date.parse(event.occurredAt);
      if (elapsedMs >= 0) consumerMetrics.addMetric('OrderPlacedToStageDone', MetricUnit.Milliseconds, elapsedMs);
    }
    return result;
  };

  // Records of a batch run in parallel: each runs in its own log scope, so that every line logged
  // while it is handled (here and in the domain modules) carries its keys and no other record's.
  // The order id travels as the `orderId` message attribute from the publisher: it is the
  // correlation id even of a record whose body cannot be parsed.
  const handleRecord = (record: SQSRecord): Promise<unknown> =>
    withLogKeys(recordLogKeys(consumer, record), async () => {
      try {
        const event = await eventOf(record, options.participant);
        appendLogKeys({ correlation_id: event.orderId, orderId: event.orderId, eventType: event.eventType });
        logger.info('Handling event');
        if (Number(record.attributes.ApproximateReceiveCount) > 1) consumerMetrics.addMetric('RecordsRetried', MetricUnit.Count, 1);
        const faults = faultPlan();
        if (faults && chance(faults.transientErrorRate)) throw new InjectedFault('Injected transient error');
        return await handleEvent(event);
      } catch (error) {
        logger.warn('Record failed; it is retried, and moved to the dead-letter queue after maxReceiveCount receives', { error });
        throw error;
      }
    });

  const consume = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    for (const idempotency of options.idempotency ?? []) idempotency.registerLambdaContext(context);
    const fifo = event.Records.some((record) => isFifoQueue(record.eventSourceARN));
    await injectInvocationFaults(event, context, handleRecord, fifo);
    const handled = new Set<string>();
    const handleAndNote = (record: SQSRecord) => {
      handled.add(record.messageId);
      return handleRecord(record);
    };
    // A processor holds one batch's state: one per invocation. Report a wholly failed batch item
    // by item too, so that the backoff below applies to it.
    const response = fifo
      ? await processFifoBatch(event, handleAndNote, context)
      : await processPartialResponse(event, handleAndNote, new BatchProcessor(EventType.SQS), { context, throwOnFullBatchFailure: false });
    const failedIds = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
    consumerMetrics.addMetric('RecordsProcessed', MetricUnit.Count, event.Records.length - failedIds.size);
    if (failedIds.size > 0) {
      consumerMetrics.addMetric('RecordsFailed', MetricUnit.Count, failedIds.size);
      const failed = event.Records.filter((r) => failedIds.has(r.messageId));
      const notHandled = failed.filter((r) => !handled.has(r.messageId));
      if (notHandled.length > 0) {
        logger.warn('Records not handled: an earlier record of their message group failed in this batch; they come back after it', {
          messageIds: notHandled.map((r) => r.messageId),
          orderIds: [...new Set(notHandled.map((r) => r.attributes.MessageGroupId))],
        });
      }
      await delayRetries(failed, fifo);
    }
    return response;
  };
  return middy(consume, invocationEndsWithItsWork).use(injectLambdaContext(logger)).use(logMetrics(consumerMetrics));
}

/**
 * A FIFO batch: Powertools' FIFO processor (skipGroupOnError) for each message group, the groups side
 * by side. One processor for the whole batch would run every record one after another, and a batch
 * holds mostly one record per order: ten orders' work in a row, against a function timeout sized
 * for a batch run in parallel. Order only matters within a group, so the groups run concurrently.
 * (The asynchronous processor: the synchronous SqsFifoPartialProcessor does not await an async
 * record handler, so a failure would count as a success.)
 */
async function processFifoBatch(
  event: SQSEvent,
  handleRecord: (record: SQSRecord) => Promise<unknown>,
  context: Context,
): Promise<SQSBatchResponse> {
  const groups = new Map<string, SQSRecord[]>();
  for (const record of event.Records) {
    const group = record.attributes.MessageGroupId ?? '';
    groups.set(group, [...(groups.get(group) ?? []), record]);
  }
  const responses = await Promise.all(
    [...groups.values()].map((records) =>
      processPartialResponse({ Records: records }, handleRecord, new SqsFifoPartialProcessorAsync(), {
        context,
        throwOnFullBatchFailure: false,
        skipGroupOnError: true,
      }),
    ),
  );
  const failed = new Set(responses.flatMap((response) => response.batchItemFailures.map((failure) => failure.itemIdentifier)));
  // In the batch's order, as one processor would report them.
  return {
    batchItemFailures: event.Records.filter((record) => failed.has(record.messageId)).map((record) => ({
      itemIdentifier: record.messageId,
    })),
  };
}

/**
 * A record's event: its body, or the payload of a claim-check pointer (lib/claim-check.ts; handlers
 * never see the pointer). A late duplicate whose object is gone is rebuilt from its order, and the
 * handler does what it does for any duplicate: more than nothing, when an earlier attempt of it died
 * halfway (a stock marker to settle).
 */
async function eventOf(record: SQSRecord, participant: Participant | undefined): Promise<OrderEvent> {
  try {
    return parseOrderEvent(await payloadOf(record));
  } catch (error) {
    if (!(error instanceof ClaimCheckObjectMissingError)) throw error;
    const late = await lateDuplicateOf(record, participant);
    if (!late) throw error;
    logger.info(
      "Late duplicate: this OrderPlaced's claim-check object was deleted once the order had all three results; handled as rebuilt from the order",
      { s3Key: error.pointer.s3Key },
    );
    return late;
  }
}

/**
 * The OrderPlaced of a record whose claim-check object is gone, rebuilt from its order (the same
 * event: its eventId and lines are the order's), when this participant has recorded its result on
 * the order (named by the record's `orderId` attribute, since the body is only the pointer): a late
 * duplicate. Anything else without its object (an order this participant never handled, another
 * consumer, another event) is undefined, and fails to the DLQ.
 */
async function lateDuplicateOf(record: SQSRecord, participant: Participant | undefined): Promise<OrderPlaced | undefined> {
  const orderId = record.messageAttributes?.orderId?.stringValue;
  if (!participant || !orderId || record.messageAttributes?.eventType?.stringValue !== 'OrderPlaced') return undefined;
  const order = await findOrder(orderId);
  return order?.[participant] !== undefined ? order.placedEvent : undefined;
}

/** A handler's answer for an event whose work was recorded earlier (lib/order-outcome.ts). */
function isDuplicate(result: unknown): boolean {
  return typeof result === 'object' && result !== null && (result as { recorded?: unknown }).recorded === 'earlier';
}

/** The keys on every log line of one record, known before its body is parsed. */
export function recordLogKeys(consumer: string, record: SQSRecord): Record<string, string | number> {
  const attribute = (name: string) => record.messageAttributes?.[name]?.stringValue;
  const orderId = attribute('orderId');
  const eventType = attribute('eventType');
  return {
    consumer,
    messageId: record.messageId,
    receiveCount: Number(record.attributes.ApproximateReceiveCount),
    ...(orderId ? { correlation_id: orderId, orderId } : {}),
    ...(eventType ? { eventType } : {}),
  };
}

/**
 * With faults asked for (local runtime and tests only): added latency, or an invocation that
 * handles half its batch and then crashes, or hangs with that half in flight until its timeout.
 * Either way Lambda deletes nothing, so that half comes back: a real duplicate delivery, or work
 * left halfway, for the next delivery to absorb.
 */
async function injectInvocationFaults(
  event: SQSEvent,
  context: Context,
  handleRecord: (record: SQSRecord) => Promise<unknown>,
  fifo: boolean,
): Promise<void> {
  const faults = faultPlan();
  if (!faults) return;
  if (faults.latencyMs > 0) await sleep(faults.latencyMs);
  const crash = chance(faults.crashRate);
  const timeout = !crash && chance(faults.timeoutRate);
  if (!crash && !timeout) return;
  const handled = event.Records.slice(0, Math.ceil(event.Records.length / 2));
  // From a FIFO queue in order, as the batch itself would be.
  const handleHalf = async () => {
    if (fifo) for (const record of handled) await handleRecord(record).catch(() => undefined);
    else await Promise.allSettled(handled.map(handleRecord));
  };
  if (crash) {
    await handleHalf();
    throw new InjectedFault(`Injected crash after ${handled.length} of ${event.Records.length} records`);
  }
  // A timeout: the records start, and a moment later (0-30 ms, mid-work) the invocation hangs until
  // its timeout stops it. What its records had written stays as they left it, halfway through their
  // steps: the state a later delivery of each must heal.
  logger.warn(`Injected timeout with ${handled.length} of ${event.Records.length} records in flight`);
  const work = handleHalf();
  await sleep(Math.floor(fraction() * 30));
  await hang(context.getRemainingTimeInMillis() + 1000);
  await work;
  throw new InjectedFault('Injected timeout outlived the function timeout');
}

async function dispatch(handlers: OrderEventHandlers, event: OrderEvent): Promise<unknown> {
  // A type this consumer does not handle means the filter policy and the code disagree: fail the
  // record (so it reaches the DLQ and someone looks) rather than drop it silently.
  const unhandled = (type: OrderEventType) => new InvalidMessageError(`This queue does not handle ${type} events`);
  switch (event.eventType) {
    case 'OrderPlaced':
      if (!handlers.OrderPlaced) throw unhandled(event.eventType);
      return (await handlers.OrderPlaced(event)) ?? null;
    case 'OrderConfirmed':
      if (!handlers.OrderConfirmed) throw unhandled(event.eventType);
      return (await handlers.OrderConfirmed(event)) ?? null;
    case 'OrderCancelled':
      if (!handlers.OrderCancelled) throw unhandled(event.eventType);
      return (await handlers.OrderCancelled(event)) ?? null;
  }
}

/**
 * How long each failed record stays hidden. Standard: its own backoff. FIFO: SQS returns nothing
 * of a message group while any of its messages is in flight, so a group waits for the longest
 * visibility among its failed records; all of them get the backoff of the one that failed first
 * (the most received), so that the whole group comes back then, in order, and not after the
 * queue's visibility timeout. Other groups are not held.
 */
export function retryDelays(records: SQSRecord[], baseSeconds: number, fifo: boolean): Map<string, number> {
  const receives = (record: SQSRecord) => Number(record.attributes.ApproximateReceiveCount);
  if (!fifo) return new Map(records.map((record) => [record.messageId, retryDelaySeconds(receives(record), baseSeconds)]));
  const mostReceived = new Map<string, number>();
  for (const record of records) {
    const group = record.attributes.MessageGroupId ?? '';
    mostReceived.set(group, Math.max(mostReceived.get(group) ?? 1, receives(record)));
  }
  return new Map(
    records.map((record) => [record.messageId, retryDelaySeconds(mostReceived.get(record.attributes.MessageGroupId ?? '')!, baseSeconds)]),
  );
}

/**
 * Hides each failed record for an exponentially growing time, instead of the queue's full
 * visibility timeout: transient faults clear quickly, poison messages reach the DLQ in minutes.
 * Best effort: if this call fails, the record simply comes back after the visibility timeout.
 */
async function delayRetries(records: SQSRecord[], fifo: boolean): Promise<void> {
  const delays = retryDelays(records, config.retryBackoffBaseSeconds(), fifo);
  const byQueue = new Map<string, SQSRecord[]>();
  for (const record of records) {
    byQueue.set(record.eventSourceARN, [...(byQueue.get(record.eventSourceARN) ?? []), record]);
  }
  for (const [queueArn, queueRecords] of byQueue) {
    // ChangeMessageVisibilityBatch takes at most 10 entries.
    for (let start = 0; start < queueRecords.length; start += 10) {
      const chunk = queueRecords.slice(start, start + 10);
      try {
        await sqsClient().send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: await queueUrlOf(queueArn),
            Entries: chunk.map((record, index) => ({
              Id: String(index),
              ReceiptHandle: record.receiptHandle,
              VisibilityTimeout: delays.get(record.messageId)!,
            })),
          }),
        );
      } catch (error) {
        logger.warn('Could not shorten the visibility of failed records', { error, queueArn });
      }
    }
  }
}
