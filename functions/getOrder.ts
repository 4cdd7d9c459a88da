import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { authenticatedCustomer, errorResponse, type HttpResult, jsonResponse, orderIdFromPath, unauthorized } from '../lib/http-api.js';
import { logger } from '../lib/observability.js';
import { findOrder, toOrderView } from '../lib/order-store.js';
import { invocationEndsWithItsWork } from '../lib/lambda-invocation.js';

// GET /orders/{orderId}: the order, its overall status and each participant's status and timeline (`stages` in the response).
// Only its customer sees an order: anyone else gets the same 404 as for an id that does not exist,
// so an order id reveals nothing, not even that the order exists.
async function getOrder(event: APIGatewayProxyEventV2): Promise<HttpResult> {
  const customerId = authenticatedCustomer(event);
  if (!customerId) return unauthorized();
  const path = orderIdFromPath(event);
  if ('refusal' in path) return path.refusal;
  const { orderId } = path;
  const order = await findOrder(orderId);
  if (!order || order.customerId !== customerId) return errorResponse(404, 'NotFound', `No order ${orderId}`);
  return jsonResponse(200, toOrderView(order));
}

export const handler = middy(getOrder, invocationEndsWithItsWork).use(injectLambdaContext(logger));
