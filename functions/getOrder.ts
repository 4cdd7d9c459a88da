import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { errorResponse, jsonResponse, type HttpResult } from '../lib/http-api.js';
import { logger } from '../lib/observability.js';
import { orderIdSchema } from '../lib/order.js';
import { findOrder, toOrderView } from '../lib/orders.js';

// GET /orders/{orderId}: the order, its overall status and each stage's status and timeline.
async function getOrder(event: APIGatewayProxyEventV2): Promise<HttpResult> {
  const parsed = orderIdSchema.safeParse(event.pathParameters?.orderId ?? '');
  if (!parsed.success) {
    const message = parsed.error.issues[0]?.message ?? 'is not an order id';
    return errorResponse(400, 'ValidationError', `orderId: ${message}`, { issues: [{ field: 'orderId', message }] });
  }
  const orderId = parsed.data;
  const order = await findOrder(orderId);
  if (!order) return errorResponse(404, 'NotFound', `No order ${orderId}`);
  return jsonResponse(200, toOrderView(order));
}

export const handler = middy(getOrder).use(injectLambdaContext(logger));
