import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { cancelOrder } from '../lib/cancel-order.js';
import { authenticatedCustomer, errorResponse, type HttpResult, jsonResponse, orderIdFromPath, unauthorized } from '../lib/http-api.js';
import { logger, metrics } from '../lib/observability.js';
import { invocationEndsWithItsWork } from '../lib/lambda-invocation.js';

// POST /orders/{orderId}/cancel: the order's owner cancels it, until its parcel is dispatched.
// 202 (cancelled, now or by an earlier request), 409 naming why it is too late, 404 for an order
// that is not the caller's (as GET answers).
async function cancel(event: APIGatewayProxyEventV2): Promise<HttpResult> {
  const customerId = authenticatedCustomer(event);
  if (!customerId) return unauthorized();
  const path = orderIdFromPath(event);
  if ('refusal' in path) return path.refusal;
  const { orderId } = path;
  logger.setCorrelationId(orderId);
  const result = await cancelOrder(customerId, orderId);
  switch (result.outcome) {
    case 'not-found':
      return errorResponse(404, 'NotFound', `No order ${orderId}`);
    case 'refused':
      return errorResponse(409, 'Conflict', `Order ${orderId} can no longer be cancelled: ${result.why}`, {
        orderId,
        status: result.order.status,
      });
    case 'cancelled':
    case 'already-cancelled':
      return jsonResponse(202, { orderId, status: result.order.status, reason: result.order.reason }, { location: `/orders/${orderId}` });
  }
}

export const handler = middy(cancel, invocationEndsWithItsWork)
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics));
