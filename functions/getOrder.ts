import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { authenticatedCustomer, errorResponse, jsonResponse, type HttpResult, unauthorized } from '../lib/http-api.js';
import { logger } from '../lib/observability.js';
import { orderIdSchema } from '../lib/order-schema.js';
import { findOrder, toOrderView } from '../lib/order-store.js';

// GET /orders/{orderId}: the order, its overall status and each participant's status and timeline (`stages` in the response).
// Only its customer sees an order: anyone else gets the same 404 as for an id that does not exist,
// so an order id reveals nothing, not even that the order exists.
async function getOrder(event: APIGatewayProxyEventV2): Promise<HttpResult> {
  const customerId = authenticatedCustomer(event);
  if (!customerId) return unauthorized();
  const parsed = orderIdSchema.safeParse(event.pathParameters?.orderId ?? '');
  if (!parsed.success) {
    const message = parsed.error.issues[0]?.message ?? 'is not an order id';
    return errorResponse(400, 'ValidationError', `orderId: ${message}`, { issues: [{ field: 'orderId', message }] });
  }
  const orderId = parsed.data;
  const order = await findOrder(orderId);
  if (!order || order.customerId !== customerId) return errorResponse(404, 'NotFound', `No order ${orderId}`);
  return jsonResponse(200, toOrderView(order));
}

export const handler = middy(getOrder).use(injectLambdaContext(logger));
