import { type OrderRequest, orderRequestSchema } from './order.js';
import { type ValidationIssue, validationIssues } from './http-api.js';

/** An order body past this size is refused before it is parsed; a valid order is far smaller. */
export const MAX_ORDER_BODY_BYTES = 64 * 1024;
const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;

export type OrderRequestParse =
  | { ok: true; request: OrderRequest; idempotencyKey: string | undefined }
  | { ok: false; status: 400 | 413 | 415; error: string; message: string; issues?: ValidationIssue[] };

/**
 * Reads a POST /orders request: size first (without parsing), then media type, then JSON, then
 * the schema. Each refusal names what is wrong, so a client can fix its request.
 */
export function parseOrderRequest(input: {
  body: Buffer;
  contentType: string | undefined;
  idempotencyKey: string | undefined;
}): OrderRequestParse {
  if (input.body.length > MAX_ORDER_BODY_BYTES) {
    return {
      ok: false,
      status: 413,
      error: 'PayloadTooLarge',
      message: `Request body is ${input.body.length} bytes; the limit is ${MAX_ORDER_BODY_BYTES}`,
    };
  }
  const mediaType = input.contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    return {
      ok: false,
      status: 415,
      error: 'UnsupportedMediaType',
      message: `Content-Type must be application/json${mediaType ? `, not ${mediaType}` : ''}`,
    };
  }
  if (input.idempotencyKey !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(input.idempotencyKey)) {
    return {
      ok: false,
      status: 400,
      error: 'ValidationError',
      message: 'Idempotency-Key: must be 1-128 visible ASCII characters',
      issues: [{ field: 'Idempotency-Key', message: 'must be 1-128 visible ASCII characters' }],
    };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(input.body);
  } catch {
    return { ok: false, status: 400, error: 'InvalidJson', message: 'Request body is not valid UTF-8' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      status: 400,
      error: 'InvalidJson',
      message: `Request body is not valid JSON: ${(error as Error).message}`,
    };
  }
  const parsed = orderRequestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = validationIssues(parsed.error);
    return {
      ok: false,
      status: 400,
      error: 'ValidationError',
      message: issues.map((i) => `${i.field}: ${i.message}`).join('; '),
      issues,
    };
  }
  return { ok: true, request: parsed.data, idempotencyKey: input.idempotencyKey };
}
