import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logger } from '../lib/observability.js';
import { republishPendingOrders, type RepublishSummary } from '../lib/republish-pending.js';

// Runs on a schedule: no order may stay PENDING because one publish was lost.
async function republishPending(): Promise<RepublishSummary> {
  const summary = await republishPendingOrders();
  if (summary.found > 0) logger.info('Republished pending orders', { ...summary });
  return summary;
}

export const handler = middy(republishPending).use(injectLambdaContext(logger));
