import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { errorResponse, type HttpResult, jsonResponse } from '../lib/http-api.js';
import { findStockItem } from '../lib/inventory.js';
import { orderItemSchema } from '../lib/order-schema.js';

/** GET /inventory/{sku}: how many units are on sale (units reserved for an order are not). */
export const handler = async (event: APIGatewayProxyEventV2): Promise<HttpResult> => {
  const sku = event.pathParameters?.sku ?? '';
  // A string that could not be a sku in an order names no stock item: no need to ask DynamoDB.
  const item = orderItemSchema.shape.sku.safeParse(sku).success ? await findStockItem(sku) : undefined;
  if (!item) return errorResponse(404, 'NotFound', `No stock item with sku ${JSON.stringify(sku)}`);
  return jsonResponse(200, { sku: item.sku, name: item.name, available: item.available });
};
