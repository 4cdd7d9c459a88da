import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_ORDER_BODY_BYTES, parseOrderRequest } from '../../lib/order-request.js';

// The order API refuses a body over its size limit before reading it: no UTF-8 decoding, no
// JSON.parse. A body that is both oversize and invalid JSON therefore gets 413, not 400.

afterEach(() => vi.restoreAllMocks());

const oversizeInvalidJson = () => Buffer.from(`{"customerId": ${'['.repeat(MAX_ORDER_BODY_BYTES)}`);

describe('the body size limit comes before parsing', () => {
  it('parseOrderRequest answers 413 without decoding or parsing the body', () => {
    const parse = vi.spyOn(JSON, 'parse');
    const decode = vi.spyOn(TextDecoder.prototype, 'decode');
    const result = parseOrderRequest({ body: oversizeInvalidJson(), contentType: 'application/json', idempotencyKey: undefined });
    expect(result).toMatchObject({ ok: false, status: 413, error: 'PayloadTooLarge' });
    expect(parse).not.toHaveBeenCalled();
    expect(decode).not.toHaveBeenCalled();
  });

  it('the limit comes before the media type too', () => {
    const result = parseOrderRequest({ body: oversizeInvalidJson(), contentType: 'text/plain', idempotencyKey: undefined });
    expect(result).toMatchObject({ ok: false, status: 413 });
  });

  it('the createOrder handler answers 413 {error, message} and parses nothing', async () => {
    const { handler } = await import('../../functions/createOrder.js');
    const parse = vi.spyOn(JSON, 'parse');
    const event = {
      version: '2.0',
      routeKey: 'POST /orders',
      rawPath: '/orders',
      rawQueryString: '',
      headers: { 'content-type': 'application/json' },
      body: oversizeInvalidJson().toString('utf8'),
      isBase64Encoded: false,
      requestContext: {
        http: { method: 'POST', path: '/orders' },
        requestId: 'r1',
        authorizer: { jwt: { claims: { sub: 'cus_1' }, scopes: null } },
      },
    } as unknown as APIGatewayProxyEventV2;
    const context = { functionName: 'createOrder', awsRequestId: 'r1', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
    const result = (await handler(event, context)) as { statusCode: number; body: string };
    const calls = parse.mock.calls.length;
    parse.mockRestore();
    expect(calls).toBe(0);
    expect(result.statusCode).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ error: 'PayloadTooLarge', message: expect.stringContaining('limit') });
  });
});
