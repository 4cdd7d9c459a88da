import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logger } from '../lib/observability.js';
import { sweepUnfinishedOrders, type SweepSummary } from '../lib/order-sweep.js';
import { invocationEndsWithItsWork } from '../lib/lambda-invocation.js';

// Runs on a schedule: no order stays unfinished because a publish was lost or a message ran out
// of receives into a DLQ. See lib/order-sweep.ts.
async function sweepOrders(): Promise<SweepSummary> {
  const summary = await sweepUnfinishedOrders();
  if (summary.due > 0) logger.info('Swept unfinished orders', { ...summary, stuckOrderIds: summary.stuckOrderIds.slice(0, 20) });
  return summary;
}

// No logMetrics middleware: the one metric, OrdersStuck, is written at once (singleMetric) when there
// is something to count; flushing an empty set every minute only logged a warning.
export const handler = middy(sweepOrders, invocationEndsWithItsWork).use(injectLambdaContext(logger));
