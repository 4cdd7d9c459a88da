import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import { logger } from './observability.js';
import { publishOrderEvent } from './order-events-topic.js';
import { findOrder, PENDING_SHARD } from './orders.js';

export interface RepublishSummary {
  found: number;
  republished: number;
  failed: number;
}

/** Upper bound per run, so that one run stays well inside the function's timeout. */
const MAX_ORDERS_PER_RUN = 500;

/**
 * Publishes OrderPlaced again for every order still PENDING after `olderThanSeconds`: the order
 * API's publish may have failed after the order was stored, or an event may have been lost to a
 * purged queue. The event is the stored one (same eventId), so consumers that already handled it
 * skip it; the ones that never saw it do their work.
 */
export async function republishPendingOrders(
  now: Date = new Date(),
  olderThanSeconds: number = config.pendingRepublishAfterSeconds(),
): Promise<RepublishSummary> {
  const cutoff = new Date(now.getTime() - olderThanSeconds * 1000).toISOString();
  const summary: RepublishSummary = { found: 0, republished: 0, failed: 0 };
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await dynamoDbDocumentClient().send(
      new QueryCommand({
        TableName: config.ordersTable(),
        IndexName: 'PendingOrders',
        KeyConditionExpression: 'pendingShard = :shard AND pendingSince < :cutoff',
        ExpressionAttributeValues: { ':shard': PENDING_SHARD, ':cutoff': cutoff },
        ExclusiveStartKey: startKey,
        Limit: 100,
      }),
    );
    for (const key of page.Items ?? []) {
      summary.found += 1;
      const order = await findOrder(String(key.orderId));
      if (!order || order.status !== 'PENDING') continue;
      try {
        await publishOrderEvent(order.placedEvent);
        summary.republished += 1;
      } catch (error) {
        summary.failed += 1;
        logger.error('Republish failed; the next run tries again', { error, orderId: order.orderId });
      }
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey && summary.found < MAX_ORDERS_PER_RUN);
  return summary;
}
