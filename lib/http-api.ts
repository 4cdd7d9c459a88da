import type { APIGatewayProxyEventV2, APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { core } from 'zod/mini';
import { maskCardData } from './card-data.js';
import { customerIdSchema, orderIdSchema } from './order-schema.js';

// What the HTTP handlers share: JSON answers, and reading a request body the way API Gateway
// hands it over (a string, base64-encoded when the content is not text).

export type HttpResult = APIGatewayProxyStructuredResultV2;

export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

/** An error answer; its message never carries card data, whatever of the request it quotes. */
export function errorResponse(statusCode: number, error: string, message: string, extra: object = {}): HttpResult {
  return jsonResponse(statusCode, { error, message: maskCardData(message), ...extra });
}

export function header(event: APIGatewayProxyEventV2, name: string): string | undefined {
  // API Gateway HTTP APIs lower-case header names and join a repeated header's values with commas;
  // a hand-written event may spell one header twice in two cases, and then it is joined the same way.
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted && value !== undefined) values.push(value);
  }
  return values.length > 0 ? values.join(',') : undefined;
}

/**
 * The customer the HTTP API's JWT authorizer authenticated: the token's subject. API Gateway puts
 * the verified claims in requestContext.authorizer.jwt.claims; a route without the authorizer
 * has none, and then nobody is authenticated.
 */
export function authenticatedCustomer(event: APIGatewayProxyEventV2): string | undefined {
  const { authorizer } = event.requestContext as APIGatewayProxyEventV2WithJWTAuthorizer['requestContext'];
  const subject = authorizer?.jwt?.claims?.sub;
  return typeof subject === 'string' && customerIdSchema.safeParse(subject).success ? subject : undefined;
}

/** What API Gateway answers a request its authorizer refused; the functions answer the same way. */
/**
 * The `{orderId}` of an order route, checked with the schema every order event's id passes too; a
 * malformed one is a 400 naming the field.
 */
export function orderIdFromPath(event: APIGatewayProxyEventV2): { orderId: string } | { refusal: HttpResult } {
  const parsed = orderIdSchema.safeParse(event.pathParameters?.orderId ?? '');
  if (parsed.success) return { orderId: parsed.data };
  const message = parsed.error.issues[0]?.message ?? 'is not an order id';
  return { refusal: errorResponse(400, 'ValidationError', `orderId: ${message}`, { issues: [{ field: 'orderId', message }] }) };
}

export function unauthorized(): HttpResult {
  return jsonResponse(401, { message: 'Unauthorized' }, { 'www-authenticate': 'Bearer' });
}

export function bodyBytes(event: APIGatewayProxyEventV2): Buffer {
  if (!event.body) return Buffer.alloc(0);
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(event.body, 'utf8');
}

export interface ValidationIssue {
  field: string;
  message: string;
}

/** Zod issues as `field: message` pairs, the field written as a path such as items[0].quantity. */
export function validationIssues(error: core.$ZodError): ValidationIssue[] {
  return error.issues.map((issue) => {
    let field = '';
    for (const part of issue.path) {
      field += typeof part === 'number' ? `[${part}]` : field ? `.${String(part)}` : String(part);
    }
    const keys = 'keys' in issue && Array.isArray(issue.keys) ? issue.keys.join(', ') : '';
    return {
      field: field || (keys ? keys : '(body)'),
      message: issue.code === 'unrecognized_keys' ? `unknown field(s): ${keys}` : issue.message,
    };
  });
}
