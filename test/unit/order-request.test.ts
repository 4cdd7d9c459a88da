import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { ISO_3166_1_ALPHA_2_CODES } from '../../lib/country-codes.js';
import { MAX_ORDER_BODY_BYTES, parseOrderRequest, parseOrderRequestEvent } from '../../lib/order-request.js';
import { MAX_ITEMS, MAX_QUANTITY } from '../../lib/order-schema.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

const validOrder = {
  items: [{ sku: 'SKU-TSHIRT-M', quantity: 2 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { ...SAMPLE_ADDRESS },
};

/** `count` lines of the longest SKU allowed (64 characters) at the largest quantity. */
function largestItems(count: number) {
  return Array.from({ length: count }, (_, i) => ({ sku: `SKU-${i}-`.padEnd(64, 'X'), quantity: MAX_QUANTITY }));
}

function parse(body: unknown, contentType = 'application/json', idempotencyKey?: string) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return parseOrderRequest({ body: Buffer.from(text), contentType, idempotencyKey });
}

describe('parseOrderRequest', () => {
  it('accepts a valid order and its idempotency key', () => {
    const result = parse(validOrder, 'application/json; charset=utf-8', 'key-1');
    expect(result).toMatchObject({ ok: true, idempotencyKey: 'key-1', request: validOrder });
  });

  it.each([
    // The customer is the token's subject: a body naming one is refused, not believed.
    [{ ...validOrder, customerId: 'cus_someone_else' }, 'customerId'],
    [{ ...validOrder, items: [] }, 'items'],
    [{ ...validOrder, items: [{ sku: 'SKU-1', quantity: 0 }] }, 'items[0].quantity'],
    [{ ...validOrder, items: [{ sku: 'SKU-1', quantity: 1.5 }] }, 'items[0].quantity'],
    [{ ...validOrder, items: [{ sku: 'SKU-1', quantity: '2' }] }, 'items[0].quantity'],
    [{ ...validOrder, items: [{ sku: '../etc', quantity: 1 }] }, 'items[0].sku'],
    [{ ...validOrder, payment: { token: 'card 4111' } }, 'payment.token'],
    [{ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, country: 'Britain' } }, 'shippingAddress.country'],
    [{ ...validOrder, extra: true }, 'extra'],
  ])('answers 400 naming the bad field (%#)', (body, field) => {
    const result = parse(body);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toBe(400);
    expect(result.issues?.map((i) => i.field)).toContain(field);
    expect(result.message).toContain(field);
  });

  // lib/order-schema.ts is zod/mini, which loads no locale: without the English one it configures, every
  // message zod writes itself would read "Invalid input". (No other zod is loaded in this file.)
  it("words zod's own messages in English", () => {
    const result = parse({
      ...validOrder,
      items: [
        { sku: 'SKU-1', quantity: 0 },
        { sku: 'SKU-2', quantity: 1001 },
      ],
      payment: { token: 7 },
    });
    expect(result).toMatchObject({
      ok: false,
      issues: [
        { field: 'items[0].quantity', message: 'Too small: expected number to be >=1' },
        { field: 'items[1].quantity', message: 'Too big: expected number to be <=1000' },
        { field: 'payment.token', message: 'Invalid input: expected string, received number' },
      ],
    });
  });

  // Card numbers: Luhn-valid runs of 13-19 digits, with or without spaces or dashes.
  const PANS = ['4111111111111111', '4111 1111 1111 1111', '5555-5555-5555-4444', '378282246310005', '6011000990139424'];
  const PAN_FIELDS: Array<[string, (pan: string) => unknown]> = [
    ['shippingAddress.name', (pan) => ({ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, name: `Ada ${pan}` } })],
    ['shippingAddress.line1', (pan) => ({ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, line1: pan } })],
    ['shippingAddress.line2', (pan) => ({ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, line2: `card ${pan}.` } })],
    ['shippingAddress.city', (pan) => ({ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, city: `${pan}` } })],
    [
      'shippingAddress.postalCode',
      (pan) => ({ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, postalCode: pan.replace(/[ -]/g, '') } }),
    ],
    ['items[0].sku', (pan) => ({ ...validOrder, items: [{ sku: pan.replace(/ /g, '-'), quantity: 1 }] })],
    ['payment.token', (pan) => ({ ...validOrder, payment: { token: `tok_${pan.replace(/[ -]/g, '')}` } })],
  ];
  it.each(PAN_FIELDS.flatMap(([field, build]) => PANS.map((pan) => [field, pan, build] as const)))(
    'refuses a card number in %s (%s) with 400 naming the field, and does not echo it',
    (field, pan, build) => {
      const result = parse(build(pan));
      if (result.ok) throw new Error(`${field} accepted a card number`);
      expect(result.status).toBe(400);
      // Some numbers do not fit a field's pattern in the first place (a SKU with spaces, a long postal code).
      expect(result.issues?.map((i) => i.field)).toContain(field);
      expect(result.message).not.toContain(pan.replace(/[ -]/g, '').slice(0, 12));
    },
  );

  it('accepts digit runs that are not card numbers: a phone number, a house number, a Luhn-invalid run', () => {
    const result = parse({
      ...validOrder,
      shippingAddress: { ...validOrder.shippingAddress, line1: '221B Baker St, +44 20 7946 0958', line2: 'ref 1234567890123' },
    });
    expect(result.ok).toBe(true);
  });

  it('a body that is not JSON and holds a card number: the error does not quote it back', () => {
    const result = parse('{"items": [4111111111111111 oops');
    if (result.ok) throw new Error('accepted');
    expect(result.message).not.toContain('4111111111111111');
  });

  it('takes an optional shipping speed, express or standard, and refuses any other naming the field', () => {
    expect(parse({ ...validOrder, shippingSpeed: 'express' })).toMatchObject({ ok: true, request: { shippingSpeed: 'express' } });
    expect(parse({ ...validOrder, shippingSpeed: 'standard' })).toMatchObject({ ok: true, request: { shippingSpeed: 'standard' } });
    // Left out: standard (lib/order-store.ts stores nothing for it).
    const without = parse(validOrder);
    expect(without.ok && without.request.shippingSpeed).toBeUndefined();
    for (const wrong of ['Express', 'overnight', true, null]) {
      const result = parse({ ...validOrder, shippingSpeed: wrong });
      expect(result).toMatchObject({ ok: false, status: 400, message: 'shippingSpeed: must be "standard" or "express"' });
      expect(!result.ok && result.issues).toEqual([{ field: 'shippingSpeed', message: 'must be "standard" or "express"' }]);
    }
  });

  it('refuses repeated skus, which would reserve one line twice, naming the sku and its lines', () => {
    const result = parse({ ...validOrder, items: [validOrder.items[0], validOrder.items[0]] });
    expect(result).toMatchObject({
      ok: false,
      status: 400,
      message: 'items: must not repeat a sku (SKU-TSHIRT-M at items[0] and items[1])',
    });
    expect(!result.ok && result.issues?.map((i) => i.field)).toEqual(['items']);
  });

  it('names the repeated sku of a 5,000-line order, however far apart its lines are', () => {
    const items = largestItems(5000);
    items[4999] = { ...items[4999]!, sku: items[0]!.sku };
    const result = parse({ ...validOrder, items });
    expect(!result.ok && result.message).toBe(`items: must not repeat a sku (${items[0]!.sku} at items[0] and items[4999])`);
  });

  it('counts the lines of a sku repeated more than twice, and the other repeated skus, in one bounded message', () => {
    const line = (sku: string) => ({ sku, quantity: 1 });
    const items = [line('A'), line('B'), line('A'), line('C'), line('A'), line('B'), line('A'), line('C')];
    const result = parse({ ...validOrder, items });
    expect(!result.ok && result.message).toBe('items: must not repeat a sku (A at items[0], items[2] and 2 more; 2 other skus repeat too)');
  });

  it('does not quote a repeated sku that is itself refused: it may be huge, or a card number', () => {
    const huge = 'x'.repeat(10_000);
    const result = parse({
      ...validOrder,
      items: [
        { sku: huge, quantity: 1 },
        { sku: huge, quantity: 1 },
      ],
    });
    expect(!result.ok && result.message).toContain('items: must not repeat a sku (at items[0] and items[1])');
    expect(!result.ok && result.message).not.toContain(huge);
    const card = '4111111111111111';
    const withCard = parse({
      ...validOrder,
      items: [
        { sku: card, quantity: 1 },
        { sku: card, quantity: 1 },
      ],
    });
    expect(withCard).toMatchObject({ ok: false, status: 400 });
    expect(!withCard.ok && withCard.message).not.toContain(card);
  });

  it('answers 400 for a body that is not JSON, and says so', () => {
    expect(parse('{"items":')).toMatchObject({ ok: false, status: 400, error: 'InvalidJson' });
  });

  it('answers 415 for a body that is not declared as JSON', () => {
    expect(parse(validOrder, 'text/plain')).toMatchObject({ ok: false, status: 415 });
    const body = Buffer.from(JSON.stringify(validOrder));
    expect(parseOrderRequest({ body, contentType: undefined, idempotencyKey: undefined })).toMatchObject({
      ok: false,
      status: 415,
    });
  });

  it('answers 413 past the size limit without parsing the body', () => {
    const huge = Buffer.alloc(MAX_ORDER_BODY_BYTES + 1, '{');
    expect(parseOrderRequest({ body: huge, contentType: 'application/json', idempotencyKey: undefined })).toMatchObject({
      ok: false,
      status: 413,
    });
  });

  it('takes the largest order there is: 5,000 lines of 64-character SKUs at quantity 1000, even pretty-printed', () => {
    const items = largestItems(MAX_ITEMS);
    const body = Buffer.from(JSON.stringify({ ...validOrder, items }, null, 4));
    expect(body.length).toBeLessThanOrEqual(MAX_ORDER_BODY_BYTES);
    const result = parseOrderRequest({ body, contentType: 'application/json', idempotencyKey: undefined });
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.request.items).toHaveLength(5000);
  });

  it('refuses line 5,001 naming items and the limit', () => {
    const result = parse({ ...validOrder, items: largestItems(MAX_ITEMS + 1) });
    expect(result).toMatchObject({ ok: false, status: 400, message: 'items: must hold at most 5000 items' });
  });

  it('the 413 names the size and the limit', () => {
    const result = parseOrderRequest({
      body: Buffer.alloc(MAX_ORDER_BODY_BYTES + 1, ' '),
      contentType: 'application/json',
      idempotencyKey: undefined,
    });
    expect(result).toMatchObject({ status: 413, message: `Request body is ${MAX_ORDER_BODY_BYTES + 1} bytes; the limit is 1048576` });
  });

  it('refuses an idempotency key with control characters', () => {
    expect(parse(validOrder, 'application/json', 'bad\nkey')).toMatchObject({ ok: false, status: 400 });
  });
});

/**
 * A POST /orders event as API Gateway HTTP API (payload format 2.0) delivers it: header names
 * lower-cased, repeated headers joined by commas, and the body either as text or, when API Gateway
 * does not treat it as text, base64-encoded with isBase64Encoded.
 */
function apiGatewayEvent(body: Buffer | string, headers: Record<string, string>, base64: boolean): APIGatewayProxyEventV2 {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return {
    version: '2.0',
    routeKey: 'POST /orders',
    rawPath: '/orders',
    rawQueryString: '',
    headers: { host: 'abc123.execute-api.us-east-1.amazonaws.com', 'content-length': String(bytes.length), ...headers },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method: 'POST', path: '/orders', protocol: 'HTTP/1.1', sourceIp: '203.0.113.10', userAgent: 'curl/8.5.0' },
      requestId: 'JKJaXmPLvHcESHA=',
      routeKey: 'POST /orders',
      stage: '$default',
      time: '25/Nov/2026:20:13:20 +0000',
      timeEpoch: 1795640000000,
      // What the JWT authorizer adds: the verified claims.
      authorizer: { jwt: { claims: { sub: 'cus_1' }, scopes: null } },
    } as APIGatewayProxyEventV2['requestContext'],
    body: base64 ? bytes.toString('base64') : bytes.toString('utf8'),
    isBase64Encoded: base64,
  };
}

const json = { 'content-type': 'application/json' };
const validBody = () => Buffer.from(JSON.stringify(validOrder));
/** The valid order with `bad` spliced in at byte `at`. */
const spliced = (at: number, bad: number[]) => Buffer.concat([validBody().subarray(0, at), Buffer.from(bad), validBody().subarray(at)]);

describe('parseOrderRequestEvent (API Gateway payload format 2.0)', () => {
  it.each([true, false])('accepts a valid order, base64-encoded %s', (base64) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(validBody(), { ...json, 'idempotency-key': 'k-1' }, base64));
    expect(result).toMatchObject({ ok: true, idempotencyKey: 'k-1', request: validOrder });
  });

  it.each([
    ['a lone continuation byte', [0x80], 17],
    ['a truncated three-byte sequence', [0xe2, 0x82], 17],
    ['an overlong encoding of "/"', [0xc0, 0xaf], 17],
    ['an encoded surrogate (U+D800)', [0xed, 0xa0, 0x80], 17],
    ['a byte that never occurs in UTF-8', [0xff], 17],
    ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80], 17],
  ])('answers 400 naming the offset of %s', (_, bad, at) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(spliced(at, bad), json, true));
    expect(result).toMatchObject({
      ok: false,
      status: 400,
      error: 'InvalidJson',
      message: `Request body is not valid UTF-8 at byte ${at}`,
    });
  });

  it('names the first bad byte after valid multi-byte characters, counting bytes, not characters', () => {
    const body = Buffer.concat([Buffer.from('{"name":"Zoë 東京 🚚'), Buffer.from([0xe2, 0x28, 0xa1]), Buffer.from('"}')]);
    const at = Buffer.byteLength('{"name":"Zoë 東京 🚚');
    const result = parseOrderRequestEvent(apiGatewayEvent(body, json, true));
    expect(result).toMatchObject({ ok: false, status: 400, message: `Request body is not valid UTF-8 at byte ${at}` });
  });

  it('a truncated sequence at the very end is named at its first byte', () => {
    const body = Buffer.concat([validBody(), Buffer.from([0xf0, 0x9f, 0x9a])]);
    const result = parseOrderRequestEvent(apiGatewayEvent(body, json, true));
    expect(result).toMatchObject({ ok: false, status: 400, message: `Request body is not valid UTF-8 at byte ${validBody().length}` });
  });

  it.each([
    'application/json; charset=latin1',
    'application/json;charset="ISO-8859-1"',
    'application/json; charset=utf-16',
    'application/json; charset=utf-8; charset=latin1',
  ])('answers 415 naming a charset other than UTF-8: %s', (contentType) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(validBody(), { 'content-type': contentType }, false));
    const named = /charset="?([^";]+)"?$/i.exec(contentType)![1]!;
    expect(result).toMatchObject({ ok: false, status: 415, error: 'UnsupportedMediaType' });
    if (!result.ok) expect(result.message).toBe(`Content-Type charset must be utf-8, not ${named}`);
  });

  it.each([
    'application/json; charset=utf-8',
    'application/json; charset=UTF-8',
    'application/json;charset="utf-8"',
    'Application/JSON ; Charset = "Utf-8"',
    'application/json; charset=utf8',
  ])('accepts charset utf-8 in any case, quoted or not: %s', (contentType) => {
    expect(parseOrderRequestEvent(apiGatewayEvent(validBody(), { 'content-type': contentType }, false))).toMatchObject({ ok: true });
  });

  it.each([
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['GZIP', 'gzip'],
    ['identity, gzip', 'gzip'],
    ['gzip, br', 'gzip, br'],
  ])('answers 415 naming a Content-Encoding other than identity: %s', (contentEncoding, named) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(validBody(), { ...json, 'content-encoding': contentEncoding }, true));
    expect(result).toMatchObject({
      ok: false,
      status: 415,
      error: 'UnsupportedMediaType',
      message: `Content-Encoding ${named} is not supported; send the body uncompressed (identity)`,
      headers: { 'accept-encoding': 'identity' },
    });
  });

  it('accepts Content-Encoding identity', () => {
    expect(parseOrderRequestEvent(apiGatewayEvent(validBody(), { ...json, 'content-encoding': 'Identity' }, false))).toMatchObject({
      ok: true,
    });
  });

  it('the createOrder handler answers a compressed body 415 with Accept-Encoding: identity', async () => {
    const { handler } = await import('../../functions/createOrder.js');
    const event = apiGatewayEvent(validBody(), { ...json, 'content-encoding': 'gzip' }, true);
    const context = { functionName: 'createOrder', awsRequestId: 'r1', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
    const result = (await handler(event, context)) as { statusCode: number; headers: Record<string, string>; body: string };
    expect(result.statusCode).toBe(415);
    expect(result.headers).toMatchObject({ 'content-type': 'application/json', 'accept-encoding': 'identity' });
    expect(JSON.parse(result.body)).toMatchObject({ error: 'UnsupportedMediaType', message: expect.stringContaining('gzip') });
  });

  it('the createOrder handler answers 401 when no authorizer vouched for a customer (a route left without one)', async () => {
    const { handler } = await import('../../functions/createOrder.js');
    const event = apiGatewayEvent(validBody(), json, false);
    delete (event.requestContext as { authorizer?: unknown }).authorizer;
    const context = { functionName: 'createOrder', awsRequestId: 'r1', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
    const result = (await handler(event, context)) as { statusCode: number; body: string };
    expect(result.statusCode).toBe(401);
    expect(JSON.parse(result.body)).toEqual({ message: 'Unauthorized' });
  });
});

describe('text fields of the shipping address', () => {
  const withAddress = (field: string, value: string) => ({
    ...validOrder,
    shippingAddress: { ...validOrder.shippingAddress, [field]: value },
  });
  const textFields = ['name', 'line1', 'line2', 'city', 'postalCode'];

  it.each(
    textFields.flatMap((field) =>
      ['', '   ', '\u200b', '\ufeff', ' \u2060 ', '\u00a0\u3000', '\u00ad\u180e\u200d'].map((value) => [field, value] as const),
    ),
  )('answers 400 naming %s when it is blank once white space and format characters are set aside (%j)', (field, value) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(JSON.stringify(withAddress(field, value)), json, false));
    expect(result).toMatchObject({ ok: false, status: 400, error: 'ValidationError' });
    if (result.ok) return;
    expect(result.issues).toEqual([{ field: `shippingAddress.${field}`, message: expect.stringContaining('must not be blank') }]);
    expect(result.message).toContain(`shippingAddress.${field}: must not be blank`);
  });

  it.each(
    textFields.flatMap((field) =>
      ['Ada\tLovelace', 'Ada\n', '\rAda', 'A\u0000da', 'Ada\u007f', 'Ada\u0085', '1 Main St\u2028Flat 2', 'Ada\u2029'].map(
        (value) => [field, value] as const,
      ),
    ),
  )('answers 400 naming %s when it holds a control character or separator (%j)', (field, value) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(JSON.stringify(withAddress(field, value)), json, true));
    expect(result).toMatchObject({ ok: false, status: 400, error: 'ValidationError' });
    if (result.ok) return;
    expect(result.issues).toEqual([{ field: `shippingAddress.${field}`, message: expect.stringContaining('control characters') }]);
  });

  it.each([
    ['name', 'Zoë Ñúñez-Łukasiewicz'],
    ['name', '東京 太郎'],
    ['line1', 'Straße 5'],
    ['line2', 'Flat 2\u200d'],
    ['city', '  Saint-Étienne  '],
    ['postalCode', '75001'],
  ])('accepts %s %j, trimmed', (field, value) => {
    const result = parseOrderRequestEvent(apiGatewayEvent(JSON.stringify(withAddress(field, value)), json, false));
    expect(result).toMatchObject({ ok: true, request: { shippingAddress: { [field]: value.trim() } } });
  });

  it('accepts an order without line2', () => {
    expect(validOrder.shippingAddress).not.toHaveProperty('line2');
    expect(parseOrderRequestEvent(apiGatewayEvent(JSON.stringify(validOrder), json, false))).toMatchObject({ ok: true });
  });
});

describe('shippingAddress.country', () => {
  const withCountry = (country: unknown) => ({ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, country } });
  const parseCountry = (country: unknown) => parseOrderRequestEvent(apiGatewayEvent(JSON.stringify(withCountry(country)), json, false));

  it('the embedded list holds the 249 assigned ISO 3166-1 alpha-2 codes, each once', () => {
    expect(ISO_3166_1_ALPHA_2_CODES).toHaveLength(249);
    expect(new Set(ISO_3166_1_ALPHA_2_CODES).size).toBe(249);
    for (const code of ISO_3166_1_ALPHA_2_CODES) expect(code).toMatch(/^[A-Z]{2}$/);
  });

  it.each(['GB', 'US', 'DE', 'FR', 'JP', 'SS', 'AX', 'CW'])('accepts %s', (country) => {
    expect(parseCountry(country)).toMatchObject({ ok: true, request: { shippingAddress: { country } } });
  });

  it.each(['XX', 'ZZ', 'AA', 'UK', 'EU', 'XK', 'QM', 'AN', 'YU', 'gb', 'GBR', 'G', ''])(
    'answers 400 naming shippingAddress.country for %j',
    (country) => {
      const result = parseCountry(country);
      expect(result).toMatchObject({ ok: false, status: 400, error: 'ValidationError' });
      if (result.ok) return;
      expect(result.issues).toEqual([
        { field: 'shippingAddress.country', message: expect.stringContaining('assigned ISO 3166-1 alpha-2 code') },
      ]);
      expect(result.message).toContain('shippingAddress.country: must be an assigned ISO 3166-1 alpha-2 code');
    },
  );

  it('tells a client sending UK that the United Kingdom is GB', () => {
    const result = parseCountry('UK');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toContain('the United Kingdom is GB');
  });
});

describe('Idempotency-Key', () => {
  const withKey = (headers: Record<string, string>) => parseOrderRequestEvent(apiGatewayEvent(validBody(), { ...json, ...headers }, false));

  it.each([
    // Two headers, as API Gateway HTTP API (and the local HTTP API) hand them over: one value, joined by a comma.
    [{ 'idempotency-key': 'key-1,key-2' }, 2],
    [{ 'idempotency-key': 'key-1, key-2' }, 2],
    [{ 'idempotency-key': 'same,same' }, 2],
    [{ 'idempotency-key': 'a,b,c' }, 3],
    // A hand-written event spelling the header twice.
    [{ 'Idempotency-Key': 'key-1', 'idempotency-key': 'key-2' }, 2],
    // One key holding a comma cannot be told from two keys.
    [{ 'idempotency-key': 'order,42' }, 2],
  ])('answers 400 naming the header when it holds more than one key: %j', (headers, count) => {
    const result = withKey(headers);
    expect(result).toMatchObject({ ok: false, status: 400, error: 'ValidationError' });
    if (result.ok) return;
    expect(result.issues).toEqual([{ field: 'Idempotency-Key', message: expect.stringContaining('must be sent once') }]);
    expect(result.message).toBe(
      `Idempotency-Key: must be sent once; got ${count} values separated by commas (repeated headers arrive joined by commas, so a key cannot contain one)`,
    );
  });

  it('accepts one key of visible ASCII, and no key at all', () => {
    expect(withKey({ 'idempotency-key': '9b2f6c1e-4a7d:retry#1' })).toMatchObject({ ok: true, idempotencyKey: '9b2f6c1e-4a7d:retry#1' });
    expect(withKey({})).toMatchObject({ ok: true, idempotencyKey: undefined });
  });
});
