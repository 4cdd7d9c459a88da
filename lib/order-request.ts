import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { type OrderRequest, orderRequestSchema } from './order-schema.js';
import { bodyBytes, header, type ValidationIssue, validationIssues } from './http-api.js';
import { firstInvalidUtf8Byte } from './utf8.js';
import { maskCardData } from './card-data.js';

/**
 * An order body past this size is refused before it is parsed. The largest valid order, 5,000
 * lines of 64-character SKUs with quantity 1000 (91 bytes a line as compact JSON), is 455 KB plus
 * under 5 KB for the rest; 1 MiB leaves room for pretty-printed JSON (685 KB indented by four
 * spaces). Far under API Gateway's 10 MB and Lambda's 6 MB (1.4 MB once base64-encoded).
 */
export const MAX_ORDER_BODY_BYTES = 1024 * 1024;
// Visible ASCII but the comma: API Gateway joins repeated headers with commas, so a comma in the
// value means the header was sent more than once, and a key cannot hold one.
const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x2b\x2d-\x7e]{1,128}$/;

/** Labels the WHATWG Encoding Standard maps to UTF-8: a client naming any of them sends UTF-8. */
const UTF8_LABELS = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'x-unicode20utf8']);

export type OrderRequestParse =
  | { ok: true; request: OrderRequest; idempotencyKey: string | undefined }
  | {
      ok: false;
      status: 400 | 413 | 415;
      error: string;
      message: string;
      issues?: ValidationIssue[];
      /** Response headers that go with the refusal. */
      headers?: Record<string, string>;
    };

/**
 * Reads a POST /orders event as API Gateway (payload format 2.0) or the local HTTP API hands it
 * over: the body as text or base64-encoded, headers lower-cased, repeated ones joined by commas.
 */
export function parseOrderRequestEvent(event: APIGatewayProxyEventV2): OrderRequestParse {
  return parseOrderRequest({
    body: bodyBytes(event),
    contentType: header(event, 'content-type'),
    contentEncoding: header(event, 'content-encoding'),
    idempotencyKey: header(event, 'idempotency-key'),
  });
}

/**
 * Reads a POST /orders request: size first (without parsing), then media type, charset and
 * content coding, then UTF-8, then JSON, then the schema. Each refusal names what is wrong, so a
 * client can fix its request.
 */
export function parseOrderRequest(input: {
  body: Buffer;
  contentType: string | undefined;
  contentEncoding?: string | undefined;
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
  for (const charset of contentTypeParameters(input.contentType ?? '', 'charset')) {
    // The body is decoded as UTF-8 whatever is declared: a body in another charset would be read
    // wrong, or refused for a reason the client would not understand.
    if (!UTF8_LABELS.has(charset.toLowerCase())) {
      return {
        ok: false,
        status: 415,
        error: 'UnsupportedMediaType',
        message: `Content-Type charset must be utf-8, not ${charset || '(empty)'}`,
      };
    }
  }
  const codings = (input.contentEncoding ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding && coding !== 'identity');
  if (codings.length > 0) {
    // The body is read as sent, never decompressed: a compressed one would only fail later as
    // "not valid UTF-8". RFC 9110 15.5.16 and 12.5.3: 415, with Accept-Encoding saying what would do.
    return {
      ok: false,
      status: 415,
      error: 'UnsupportedMediaType',
      message: `Content-Encoding ${codings.join(', ')} is not supported; send the body uncompressed (identity)`,
      headers: { 'accept-encoding': 'identity' },
    };
  }
  if (input.idempotencyKey?.includes(',')) {
    // Two keys for one request: which one would a retry repeat? Refuse rather than pick one.
    const values = input.idempotencyKey.split(',').length;
    const message = `must be sent once; got ${values} values separated by commas (repeated headers arrive joined by commas, so a key cannot contain one)`;
    return {
      ok: false,
      status: 400,
      error: 'ValidationError',
      message: `Idempotency-Key: ${message}`,
      issues: [{ field: 'Idempotency-Key', message }],
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
  const invalidAt = firstInvalidUtf8Byte(input.body);
  if (invalidAt >= 0) {
    return { ok: false, status: 400, error: 'InvalidJson', message: `Request body is not valid UTF-8 at byte ${invalidAt}` };
  }
  const text = new TextDecoder('utf-8').decode(input.body);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      status: 400,
      error: 'InvalidJson',
      // JSON.parse quotes a piece of the body in its message: never echo card data back.
      message: `Request body is not valid JSON: ${maskCardData((error as Error).message)}`,
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

/** The values of one parameter of a media type (`type/subtype; name=value; name="value"`), unquoted. */
function contentTypeParameters(contentType: string, name: string): string[] {
  const values: string[] = [];
  const parameter = /;\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const match of contentType.matchAll(parameter)) {
    if (match[1]!.toLowerCase() !== name) continue;
    const value = match[2]!.trim();
    const quoted = /^"(.*)"$/s.exec(value);
    values.push(quoted ? quoted[1]!.replace(/\\(.)/gs, '$1') : value);
  }
  return values;
}
