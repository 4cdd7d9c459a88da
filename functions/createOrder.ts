import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { authenticatedCustomer, errorResponse, jsonResponse, type HttpResult, unauthorized } from '../lib/http-api.js';
import { logger, metrics } from '../lib/observability.js';
import { parseOrderRequestEvent } from '../lib/order-request.js';
import { placeOrder } from '../lib/place-order.js';
import { invocationEndsWithItsWork } from '../lib/lambda-invocation.js';

// POST /orders: validate, store as PENDING, publish OrderPlaced, answer 202 with where to look.
async function createOrder(event: APIGatewayProxyEventV2): Promise<HttpResult> {
  // The customer is whoever the token says, never a body field.
  const customerId = authenticatedCustomer(event);
  if (!customerId) return unauthorized();
  const parsed = parseOrderRequestEvent(event);
  if (!parsed.ok) {
    const refusal = errorResponse(parsed.status, parsed.error, parsed.message, parsed.issues ? { issues: parsed.issues } : {});
    return parsed.headers ? { ...refusal, headers: { ...refusal.headers, ...parsed.headers } } : refusal;
  }
  const result = await placeOrder(customerId, parsed.request, parsed.idempotencyKey);
  if (result.outcome === 'key-reused') {
    // The caller's own earlier order: keys are scoped to the caller, so this reveals nothing of anyone else's.
    return errorResponse(422, 'IdempotencyKeyReused', 'This Idempotency-Key was already used for a different order', {
      orderId: result.orderId,
    });
  }
  const { orderId, status } = result.order;
  logger.setCorrelationId(orderId);
  const location = { location: `/orders/${orderId}` };
  // Counted once, when the order is stored, whether or not its first publish succeeded: the
  // cancelled-rate alarm divides by it.
  if (result.created) metrics.addMetric('OrdersPlaced', MetricUnit.Count, 1);
  switch (result.outcome) {
    case 'accepted':
      logger.info('Order accepted', { orderId, replayed: result.replayed });
      return jsonResponse(202, { orderId, status }, location);
    case 'not-published':
      return errorResponse(
        503,
        'ServiceUnavailable',
        'The order was saved but could not be submitted yet; retry with the same Idempotency-Key, or it is submitted automatically within minutes',
        { orderId, status, ...location },
      );
  }
}

export const handler = middy(createOrder, invocationEndsWithItsWork)
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics));
