import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// The order API's JWT authorizer, as the packaged template declares it and the local HTTP API
// enforces it: no token, an expired one, a forged signature, another issuer or audience → 401
// before any function runs; a customer sees only their own orders (404 otherwise, like an order
// that does not exist); Idempotency-Keys are per customer; the catalogue stays public.

let handle: LocalPipeline;
let baseUrl: string;

beforeAll(async () => {
  handle = await startLocalPipeline({ apiPort: 0, sqsPort: 0, dynamodbPort: 0, quiet: true });
  baseUrl = handle.apiUrl.replace(/\/$/, '');
}, 120_000);

afterAll(async () => {
  await handle?.stop();
});

const order = {
  items: [{ sku: 'SKU-MUG', quantity: 1 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { ...SAMPLE_ADDRESS },
};

async function post(authorization: string | undefined, key?: string) {
  const response = await fetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(authorization ? { authorization } : {}),
      ...(key ? { 'idempotency-key': key } : {}),
    },
    body: JSON.stringify(order),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as { orderId?: string; customerId?: string; message?: string },
  };
}

async function get(orderId: string, authorization: string | undefined) {
  const response = await fetch(`${baseUrl}/orders/${orderId}`, { headers: authorization ? { authorization } : {} });
  return { status: response.status, body: (await response.json()) as { orderId?: string; customerId?: string } };
}

const bearer = async (customer: string, options?: Parameters<LocalPipeline['tokenFor']>[1]) =>
  `Bearer ${await handle.tokenFor(customer, options)}`;

/** A token with the right claims, signed by a key the issuer never had. */
async function forged(customer: string): Promise<string> {
  const [authorizer] = handle.authorizers;
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = (await exportJWK(publicKey)).n!.slice(0, 8);
  const token = await new SignJWT({ client_id: authorizer!.audience[0], token_use: 'access' })
    .setProtectedHeader({ alg: 'RS256', kid })
    .setIssuer(authorizer!.issuer)
    .setSubject(customer)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(privateKey);
  return `Bearer ${token}`;
}

describe('the order API authorizer', () => {
  it('reads its issuer and audience from the template: the Cognito user pool and app client the stack creates', () => {
    expect(handle.authorizers).toHaveLength(1);
    const [authorizer] = handle.authorizers;
    expect(authorizer!.issuer).toMatch(/^https:\/\/cognito-idp\.us-east-1\.amazonaws\.com\/.+/);
    expect(authorizer!.audience).toHaveLength(1);
  });

  it.each([
    ['no Authorization header', async () => undefined, 'no Authorization header'],
    ['a header that is not Bearer', async () => `Basic ${Buffer.from('cus_1:pw').toString('base64')}`, 'not "Bearer <token>"'],
    ['garbage for a token', async () => 'Bearer not.a.jwt', 'malformed'],
    ['an expired token', () => bearer('cus_1', { expiresInSeconds: -60 }), 'expired'],
    ['a forged signature', () => forged('cus_1'), 'not signed by the issuer'],
    ['another audience', () => bearer('cus_1', { audience: 'some-other-app-client' }), 'audience'],
  ])('refuses %s with 401 before any function runs', async (_what, authorization, reason) => {
    const before = handle.invocationStats().functions.createOrder?.invocations ?? 0;
    const header = await authorization();
    const posted = await post(header);
    expect(posted.status).toBe(401);
    expect(posted.body).toEqual({ message: 'Unauthorized' });
    expect(posted.headers.get('www-authenticate')).toContain(reason);
    expect((await get('ord_00000000000000000000000000000000', header)).status).toBe(401);
    expect(handle.invocationStats().functions.createOrder?.invocations ?? 0).toBe(before);
  });

  it('refuses a token from another issuer', async () => {
    const [authorizer] = handle.authorizers;
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT({ client_id: authorizer!.audience[0] })
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer('https://issuer.example.com')
      .setSubject('cus_1')
      .setExpirationTime('1h')
      .sign(privateKey);
    expect((await post(`Bearer ${token}`)).status).toBe(401);
  });

  it("the customer is the token's subject, and only they see the order: anyone else gets 404", async () => {
    const alice = await bearer('cus_alice');
    const bob = await bearer('cus_bob');
    const placed = await post(alice);
    expect(placed.status).toBe(202);
    const orderId = placed.body.orderId!;
    expect(await get(orderId, alice)).toMatchObject({ status: 200, body: { orderId, customerId: 'cus_alice' } });
    const asBob = await get(orderId, bob);
    expect(asBob.status).toBe(404);
    // The same answer as for an order that does not exist: the id reveals nothing.
    const missing = 'ord_00000000000000000000000000000000';
    expect(asBob.body).toEqual({ error: 'NotFound', message: `No order ${orderId}` });
    expect((await get(missing, bob)).body).toEqual({ error: 'NotFound', message: `No order ${missing}` });
    expect(JSON.stringify(asBob.body)).not.toContain('cus_alice');
  });

  it("one Idempotency-Key from two customers makes two orders, each its own customer's", async () => {
    const alice = await bearer('cus_key_alice');
    const mallory = await bearer('cus_key_mallory');
    // Mallory posts first with the key Alice will use: before, Alice would then get a 422 pointing at Mallory's order.
    const first = await post(mallory, 'shared-key-1');
    const second = await post(alice, 'shared-key-1');
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.orderId).not.toBe(first.body.orderId);
    // A retry is still a retry, per customer.
    expect((await post(alice, 'shared-key-1')).body.orderId).toBe(second.body.orderId);
    expect((await get(second.body.orderId!, alice)).body.customerId).toBe('cus_key_alice');
    expect((await get(second.body.orderId!, mallory)).status).toBe(404);
  });

  it('leaves the catalogue public: GET /inventory/{sku} needs no token', async () => {
    const response = await fetch(`${baseUrl}/inventory/SKU-MUG`);
    expect(response.status).toBe(200);
  });

  it("serves the local issuer's public key as a JWKS", async () => {
    const jwks = (await (await fetch(`${baseUrl}/_local/jwks.json`)).json()) as {
      keys: Array<{ kty: string; alg: string; kid: string; d?: string }>;
    };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', kid: expect.any(String) });
    // Never the private part.
    expect(jwks.keys[0]!.d).toBeUndefined();
  });
});
