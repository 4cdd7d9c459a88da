import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ITEMS, MAX_QUANTITY, orderRequestSchema } from '../../lib/order-schema.js';
import { MAX_ORDER_BODY_BYTES } from '../../lib/order-request.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// Hostile input through the local HTTP API: generated requests at POST /orders and
// GET /orders/{id} (wrong types, missing fields, huge strings, deep nesting, non-JSON, invalid
// UTF-8, negative and fractional quantities, too many items, path traversal in ids, odd content
// types and charsets, compressed bodies, repeated Idempotency-Keys, blank or control characters in
// the address, unassigned country codes, oversize bodies). Every answer is a 4xx with a JSON body
// {error, message} naming the problem, a 202 for a valid order (200 for reading one); never a 5xx.
// Where the answer is certain (a valid order, and each rule the API states), it is checked
// exactly: a 202 for a valid order and for nothing else, and a 400 that names the broken field.
// Every request carries a valid customer token (the authorizer's refusals are test/e2e/auth.test.ts);
// card numbers typed into any text field are refused and never echoed. Nothing is published for a
// rejected body: every OrderPlaced the topic saw belongs to an order that was answered 202.

const RUNS = 1200;
let handle: LocalPipeline;
let baseUrl: string;
let authorization: string;

beforeAll(async () => {
  handle = await startLocalPipeline({ apiPort: 0, sqsPort: 0, dynamodbPort: 0, quiet: true });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
  authorization = `Bearer ${await handle.tokenFor('cus_hostile')}`;
});

afterAll(async () => {
  await handle?.stop();
});

type Request = {
  kind: string;
  method: 'POST' | 'GET';
  path: string;
  contentType?: string;
  body?: string | Uint8Array;
  idempotencyKey?: string;
  headers?: Record<string, string>;
  /**
   * The answer the API must give, when it is certain: its status, what its message says, and the
   * field a 400 must name (an issue on that field or inside it).
   */
  expected?: { status: number; message?: string | RegExp; field?: string };
  /** Text the answer must not echo (a card number). */
  secret?: string;
};

const validOrder = () => ({
  items: [{ sku: 'SKU-MUG', quantity: 1 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { ...SAMPLE_ADDRESS },
});

const anyJson = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);
const fields = ['items', 'payment', 'shippingAddress'] as const;
const FIELD_PATHS: Record<string, string> = {
  sku: 'items[0].sku',
  token: 'payment.token',
  country: 'shippingAddress.country',
  city: 'shippingAddress.city',
  name: 'shippingAddress.name',
};

/** A 400 naming `field` unless the schema itself would take the order (a generated value that happens to be valid). */
function expectedFor(order: unknown, field: string): Request['expected'] {
  return orderRequestSchema.safeParse(order).success ? { status: 202 } : { status: 400, field };
}

/** A valid order with one thing broken (or, rarely, nothing: then it is a 202). */
const mutatedOrder: fc.Arbitrary<Request> = fc
  .oneof(
    fc.record({ what: fc.constant('valid') }),
    fc.record({ what: fc.constant('wrong type'), field: fc.constantFrom(...fields), value: anyJson }),
    fc.record({ what: fc.constant('missing'), field: fc.constantFrom(...fields) }),
    // `__proto__` would set the object's prototype, not a key JSON.stringify writes.
    fc.record({
      what: fc.constant('unknown field'),
      name: fc.string({ minLength: 1, maxLength: 20 }).filter((n) => !(fields as readonly string[]).includes(n) && n !== '__proto__'),
      value: anyJson,
    }),
    // The customer comes from the token: a body that names one is refused, not believed.
    fc.record({ what: fc.constant('customerId in the body'), value: fc.constantFrom('cus_someone_else', 'cus_hostile', '') }),
    fc.record({
      what: fc.constant('quantity'),
      quantity: fc.oneof(
        fc.integer({ max: 0 }),
        fc.double({ noNaN: false }).filter((q) => !Number.isInteger(q)),
        fc.integer({ min: MAX_QUANTITY + 1 }),
        fc.string(),
      ),
    }),
    fc.record({ what: fc.constant('too many items'), count: fc.integer({ min: MAX_ITEMS + 1, max: MAX_ITEMS + 50 }) }),
    fc.record({
      what: fc.constant('huge string'),
      field: fc.constantFrom('name', 'sku', 'token', 'country'),
      length: fc.integer({ min: 201, max: 60_000 }),
    }),
    fc.record({
      what: fc.constant('bad string'),
      field: fc.constantFrom('sku', 'token', 'country', 'city'),
      value: fc.string({ unit: 'binary', maxLength: 40 }),
    }),
    fc.record({ what: fc.constant('duplicate sku') }),
  )
  .map((m): Request => {
    const order: Record<string, unknown> = validOrder();
    const items = order.items as Array<Record<string, unknown>>;
    const address = order.shippingAddress as Record<string, unknown>;
    let expected: Request['expected'];
    switch (m.what) {
      case 'valid':
        expected = { status: 202 };
        break;
      case 'wrong type': {
        const { field } = m as { field: string };
        order[field] = (m as { value: unknown }).value;
        expected = expectedFor(order, field);
        break;
      }
      case 'missing': {
        const { field } = m as { field: string };
        delete order[field];
        expected = { status: 400, field };
        break;
      }
      case 'unknown field': {
        const { name } = m as { name: string };
        order[name] = (m as { value: unknown }).value;
        expected = { status: 400, field: name };
        break;
      }
      case 'customerId in the body':
        order.customerId = (m as { value: string }).value;
        expected = { status: 400, field: 'customerId', message: 'customerId: unknown field' };
        break;
      case 'quantity':
        items[0]!.quantity = (m as { quantity: unknown }).quantity;
        expected = { status: 400, field: 'items[0].quantity' };
        break;
      case 'too many items':
        order.items = Array.from({ length: (m as { count: number }).count }, (_, i) => ({ sku: `SKU-${i}`, quantity: 1 }));
        expected = { status: 400, field: 'items', message: `items: must hold at most ${MAX_ITEMS} items` };
        break;
      case 'huge string':
      case 'bad string': {
        const field = (m as { field: string }).field;
        const value = m.what === 'huge string' ? 'X'.repeat((m as { length: number }).length) : (m as { value: string }).value;
        if (field === 'sku') items[0]!.sku = value;
        else if (field === 'token') order.payment = { token: m.what === 'huge string' ? `tok_${value}` : value };
        else if (field === 'name') address.name = value;
        else address[field] = value;
        expected = expectedFor(order, FIELD_PATHS[field]!);
        break;
      }
      case 'duplicate sku':
        items.push({ ...items[0]! });
        expected = { status: 400, field: 'items', message: 'items: must not repeat a sku' };
        break;
    }
    return {
      kind: `order: ${m.what}`,
      method: 'POST',
      path: '/orders',
      contentType: 'application/json',
      body: JSON.stringify(order),
      ...(expected ? { expected } : {}),
    };
  });

// Card numbers (test PANs of four networks, written as people write them) in every text field.
const cardNumberInText: fc.Arbitrary<Request> = fc
  .record({
    pan: fc.constantFrom('4111111111111111', '5555555555554444', '378282246310005', '6011000990139424', '4000056655665556'),
    // As people write them, and as someone hiding one would: see test/unit/card-data.test.ts.
    separator: fc.constantFrom('', ' ', '-', '  ', ' - ', '\u00a0', '\u200b', '.', '/'),
    field: fc.constantFrom('name', 'line1', 'line2', 'city', 'postalCode', 'sku', 'token'),
  })
  .map(({ pan, separator, field }) => {
    const written = pan.replace(/(\d{4})(?=\d)/g, `$1${separator}`);
    const order = validOrder() as Record<string, unknown> & {
      shippingAddress: Record<string, string>;
      items: Array<Record<string, unknown>>;
    };
    let path: string;
    if (field === 'sku') {
      order.items[0]!.sku = written.replaceAll(' ', '-');
      path = 'items[0].sku';
    } else if (field === 'token') {
      order.payment = { token: `tok_${pan}` };
      path = 'payment.token';
    } else {
      order.shippingAddress[field] = field === 'postalCode' ? pan : field === 'name' ? `Ada${written}` : `Ada ${written}`;
      path = `shippingAddress.${field}`;
    }
    return {
      kind: 'card number in a text field',
      method: 'POST',
      path: '/orders',
      contentType: 'application/json',
      body: JSON.stringify(order),
      expected: { status: 400, field: path },
      secret: pan,
    };
  });

const deepNesting: fc.Arbitrary<Request> = fc
  .record({ depth: fc.integer({ min: 50, max: 30_000 }), array: fc.boolean() })
  .map(({ depth, array }) => ({
    kind: 'deep nesting',
    method: 'POST',
    path: '/orders',
    contentType: 'application/json',
    body: array ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
  }));

const notJson: fc.Arbitrary<Request> = fc
  .string({ unit: 'binary', maxLength: 300 })
  .map((body) => ({ kind: 'not JSON', method: 'POST', path: '/orders', contentType: 'application/json', body }));

const invalidUtf8: fc.Arbitrary<Request> = fc
  .record({
    bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }),
    contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/octet-stream'),
  })
  .map(({ bytes, contentType }) => {
    // Splice a lone continuation byte and a truncated sequence into an otherwise valid order.
    const text = Buffer.from(JSON.stringify(validOrder()));
    const body = Buffer.concat([text.subarray(0, 20), Buffer.from([0x80, 0xe2, 0x82]), Buffer.from(bytes), text.subarray(20)]);
    // The bad bytes must reach the function as sent (not as U+FFFD), so it can say where they are.
    const expected = contentType.startsWith('application/json')
      ? { status: 400, message: 'Request body is not valid UTF-8 at byte 20' }
      : { status: 415 };
    return { kind: 'invalid UTF-8', method: 'POST', path: '/orders', contentType, body, expected };
  });

const oddContentType: fc.Arbitrary<Request> = fc
  .constantFrom(
    'text/plain',
    'application/xml',
    'multipart/form-data; boundary=x',
    'application/x-www-form-urlencoded',
    'application/jsonp',
    'json',
    '',
    'application/problem+json',
    '*/*',
    undefined,
  )
  .map((contentType) => ({ kind: 'odd content type', method: 'POST', path: '/orders', contentType, body: JSON.stringify(validOrder()) }));

const oversize: fc.Arbitrary<Request> = fc
  .record({ extra: fc.integer({ min: 1, max: 200_000 }), json: fc.boolean() })
  .map(({ extra, json }) => ({
    kind: 'oversize body',
    method: 'POST',
    path: '/orders',
    contentType: 'application/json',
    body: json
      ? JSON.stringify({ ...validOrder(), padding: 'x'.repeat(MAX_ORDER_BODY_BYTES + extra) })
      : '{'.repeat(MAX_ORDER_BODY_BYTES + extra),
  }));

const badIdempotencyKey: fc.Arbitrary<Request> = fc
  .oneof(
    fc.string({ minLength: 129, maxLength: 2000 }).map((key) => key.replace(/[^\x21-\x7e]/g, 'k')),
    fc.constantFrom(' ', 'key with spaces', '\t'),
  )
  .map((idempotencyKey) => ({
    kind: 'bad Idempotency-Key',
    method: 'POST',
    path: '/orders',
    contentType: 'application/json',
    body: JSON.stringify(validOrder()),
    idempotencyKey,
  }));

const post = (kind: string, order: unknown, extra: Partial<Request>): Request => ({
  kind,
  method: 'POST',
  path: '/orders',
  contentType: 'application/json',
  body: JSON.stringify(order),
  ...extra,
});

const otherCharset: fc.Arbitrary<Request> = fc.constantFrom('latin1', 'ISO-8859-1', '"windows-1252"', 'utf-16', 'us-ascii').map((charset) =>
  post('charset other than UTF-8', validOrder(), {
    contentType: `application/json; charset=${charset}`,
    expected: { status: 415, message: `Content-Type charset must be utf-8, not ${charset.replaceAll('"', '')}` },
  }),
);

const compressed: fc.Arbitrary<Request> = fc.constantFrom('gzip', 'br', 'deflate', 'zstd', 'identity, gzip').map((encoding) =>
  post('Content-Encoding', validOrder(), {
    headers: { 'content-encoding': encoding },
    expected: { status: 415, message: `Content-Encoding ${encoding.replace('identity, ', '')} is not supported` },
  }),
);

// Two keys as API Gateway hands them to the function: one header value, joined by a comma.
const repeatedIdempotencyKey: fc.Arbitrary<Request> = fc
  .tuple(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/))
  .map(([first, second]) =>
    post('repeated Idempotency-Key', validOrder(), {
      idempotencyKey: `${first}, ${second}`,
      expected: { status: 400, message: /^Idempotency-Key: must be sent once/ },
    }),
  );

const invisible = fc.constantFrom(' ', '\u00a0', '\u200b', '\ufeff', '\u2060', '\u3000', '\u00ad', '\u200d');
const control = fc.constantFrom('\t', '\n', '\r', '\u0000', '\u001b', '\u007f', '\u0085', '\u2028', '\u2029');
const blankOrControlText: fc.Arbitrary<Request> = fc
  .record({
    field: fc.constantFrom('name', 'line1', 'line2', 'city', 'postalCode'),
    blank: fc.boolean(),
    invisible: fc.array(invisible, { minLength: 0, maxLength: 6 }),
    control,
    text: fc.constantFrom('Ada', '1 Main St', 'N1 9GU'),
  })
  .map(({ field, blank, invisible, control, text }) => {
    const order = validOrder();
    const value = blank ? invisible.join('') : `${invisible.join('')}${text}${control}`;
    (order.shippingAddress as Record<string, string>)[field] = value;
    const message = `shippingAddress.${field}: must not ${blank ? 'be blank' : 'contain control characters'}`;
    return post(blank ? 'blank text' : 'control character in text', order, { expected: { status: 400, message } });
  });

const unassignedCountry: fc.Arbitrary<Request> = fc
  .oneof(fc.constantFrom('XX', 'ZZ', 'AA', 'UK', 'EU', 'XK', 'QZ'), fc.stringMatching(/^[X][A-Z]$/))
  .map((country) => {
    const order = validOrder();
    order.shippingAddress.country = country;
    return post('unassigned country', order, {
      expected: { status: 400, message: 'shippingAddress.country: must be an assigned ISO 3166-1 alpha-2 code' },
    });
  });

const orderIds: fc.Arbitrary<Request> = fc
  .oneof(
    fc.constantFrom(
      '../../etc/passwd',
      '..%2F..%2Fetc%2Fpasswd',
      '....//....//',
      '%00',
      'ord_',
      `ord_${'0'.repeat(32)}/..`,
      `ORD_${'A'.repeat(32)}`,
      '%E0%A4%A',
      '\u0000',
      ' ',
    ),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }),
    fc.stringMatching(/^ord_[0-9a-f]{32}$/),
    fc.string({ minLength: 5000, maxLength: 6000 }),
  )
  .map((id) => ({ kind: 'GET order id', method: 'GET', path: `/orders/${encodeURIComponent(id)}` }));

const hostile = fc.oneof(
  { arbitrary: mutatedOrder, weight: 6 },
  { arbitrary: deepNesting, weight: 1 },
  { arbitrary: notJson, weight: 1 },
  { arbitrary: invalidUtf8, weight: 1 },
  { arbitrary: oddContentType, weight: 1 },
  { arbitrary: oversize, weight: 1 },
  { arbitrary: badIdempotencyKey, weight: 1 },
  { arbitrary: orderIds, weight: 3 },
  { arbitrary: otherCharset, weight: 1 },
  { arbitrary: compressed, weight: 1 },
  { arbitrary: repeatedIdempotencyKey, weight: 1 },
  { arbitrary: blankOrControlText, weight: 1 },
  { arbitrary: unassignedCountry, weight: 1 },
  { arbitrary: cardNumberInText, weight: 1 },
);

describe('hostile input at the HTTP API', () => {
  it(`answers ${RUNS} generated requests with a 4xx naming the problem, or 202/200, never a 5xx`, { timeout: 240_000 }, async () => {
    const accepted = new Set<string>();
    const published = new Map<string, string>();
    const collectPublishes = () => {
      for (const message of handle.fauxqs.spy.getAllMessages()) {
        if (message.service === 'sns' && message.body.includes('"eventType":"OrderPlaced"')) published.set(message.messageId, message.body);
      }
    };
    const byKind = new Map<string, number>();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(hostile, async (request) => {
        runs++;
        byKind.set(request.kind, (byKind.get(request.kind) ?? 0) + 1);
        const headers: Record<string, string> = { authorization };
        if (request.contentType !== undefined) headers['content-type'] = request.contentType;
        if (request.idempotencyKey !== undefined) headers['idempotency-key'] = request.idempotencyKey;
        Object.assign(headers, request.headers);
        const response = await fetch(`${baseUrl}${request.path}`, {
          method: request.method,
          headers,
          ...(request.body === undefined
            ? {}
            : { body: typeof request.body === 'string' ? request.body : (new Uint8Array(request.body) as unknown as BodyInit) }),
        });
        const text = await response.text();
        collectPublishes();
        const where = `${request.kind}: ${request.method} ${request.path.slice(0, 80)} → ${response.status} ${text.slice(0, 200)}`;
        expect(response.status, where).toBeLessThan(500);
        expect(response.headers.get('content-type'), where).toMatch(/^application\/json/);
        const body = JSON.parse(text) as { error?: unknown; message?: unknown; orderId?: string };
        if (request.expected) {
          expect(response.status, where).toBe(request.expected.status);
          const { message, field } = request.expected;
          if (typeof message === 'string') expect(body.message, where).toContain(message);
          else if (message) expect(body.message, where).toMatch(message);
          if (field !== undefined) {
            const issues = (body as { issues?: Array<{ field: string }> }).issues ?? [];
            const named = issues.some(
              (issue) => issue.field === field || issue.field.startsWith(`${field}.`) || issue.field.startsWith(`${field}[`),
            );
            expect(named, `${where}: no issue names ${field}`).toBe(true);
          }
        }
        if (request.secret) expect(text, `${where}: the answer echoes the card number`).not.toContain(request.secret);
        // 202 for a valid order only: every POST the test cannot vouch for must not be accepted.
        if (response.status === 202) expect(request.expected?.status, `${where}: accepted, but not a valid order`).toBe(202);
        if (response.status === 202) {
          expect(request.method).toBe('POST');
          accepted.add(String(body.orderId));
          return;
        }
        if (response.status === 200) {
          expect(request.method, where).toBe('GET');
          return;
        }
        expect(response.status, where).toBeGreaterThanOrEqual(400);
        if (response.status === 413 && body.error === undefined) {
          // Refused by the API gateway itself (past its 10 MB limit) before the function ran.
          expect(typeof body.message, where).toBe('string');
          return;
        }
        expect(typeof body.error, where).toBe('string');
        expect(typeof body.message, where).toBe('string');
        expect((body.message as string).length, where).toBeGreaterThan(0);
      }),
      { numRuns: RUNS, seed: Number(process.env.HOSTILE_SEED ?? 20_260_601), endOnFailure: true },
    );
    // Wait a moment for any publish in flight, then: every OrderPlaced on the topic is an accepted order.
    await new Promise((resolve) => setTimeout(resolve, 500));
    collectPublishes();
    const publishedOrders = new Set([...published.values()].map((body) => (JSON.parse(body) as { orderId: string }).orderId));
    for (const orderId of publishedOrders) expect(accepted.has(orderId), `published ${orderId} was never accepted`).toBe(true);
    expect(publishedOrders.size).toBe(accepted.size);
    console.log(
      `hostile input: ${runs} generated requests (${[...byKind].map(([kind, n]) => `${kind} ${n}`).join(', ')}); ${accepted.size} valid orders accepted and published, nothing published for the rest`,
    );
    expect(runs).toBeGreaterThanOrEqual(1000);
  });
});
