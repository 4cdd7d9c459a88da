import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { errorResponse, jsonResponse, type HttpResult } from '../lib/http-api.js';
import { logger } from '../lib/observability.js';
import { ORDER_ID_PATTERN } from '../lib/order.js';
import { findOrder, toOrderView } from '../lib/orders.js';

// GET /orders/{orderId}: the order, its overall status and each stage's status and timeline.
async function getOrder(event: APIGatewayProxyEventV2): Promise<HttpResult> {
  const orderId = event.pathParameters?.orderId ?? '';
  if (!ORDER_ID_PATTERN.test(orderId)) {
    return errorResponse(400, 'ValidationError', 'orderId: must look like ord_ followed by 32 hex digits');
  }
  const order = await findOrder(orderId);
  if (!order) return errorResponse(404, 'NotFound', `No order ${orderId}`);
  return jsonResponse(200, toOrderView(order));
}

export const handler = middy(getOrder).use(injectLambdaContext(logger));
