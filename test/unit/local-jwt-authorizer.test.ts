import { afterEach, describe, expect, it, vi } from 'vitest';

// The local JWT authorizer keeps the tokens it verified until they expire (local/jwt-authorizer.ts):
// a client sends its one token with every request, and an RS256 check of each was a share of the
// main thread under load. What it answers must not change: expiry, issuer and audience still hold.

const verifications = vi.hoisted(() => ({ count: 0 }));
vi.mock('jose', async (importOriginal) => {
  const jose = await importOriginal<typeof import('jose')>();
  return {
    ...jose,
    jwtVerify: (...args: Parameters<typeof jose.jwtVerify>) => {
      verifications.count++;
      return jose.jwtVerify(...args);
    },
  };
});

const { createLocalIssuer } = await import('../../local/jwt-authorizer.js');

const authorizer = {
  name: 'orders',
  issuer: 'https://issuer.example/pool',
  audience: ['app-client'],
  identitySource: '$request.header.Authorization',
};

afterEach(() => {
  vi.useRealTimers();
  verifications.count = 0;
});

describe('the local JWT authorizer', () => {
  it("checks a token's signature once while it is valid, and answers the same each time", async () => {
    const issuer = await createLocalIssuer();
    const token = await issuer.issueToken(authorizer, 'cus_1');
    const decisions = await Promise.all(Array.from({ length: 50 }, () => issuer.authorize(authorizer, `Bearer ${token}`)));
    expect(decisions.every((decision) => decision.ok && decision.authorization.jwt.claims.sub === 'cus_1')).toBe(true);
    // Concurrent first requests may each verify; after that, none does.
    const afterFirst = verifications.count;
    for (let i = 0; i < 50; i++) expect((await issuer.authorize(authorizer, `Bearer ${token}`)).ok).toBe(true);
    expect(verifications.count).toBe(afterFirst);
  });

  it('refuses a token it verified once it has expired', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const issuer = await createLocalIssuer();
    const token = await issuer.issueToken(authorizer, 'cus_1', { expiresInSeconds: 60 });
    expect((await issuer.authorize(authorizer, `Bearer ${token}`)).ok).toBe(true);
    vi.setSystemTime(Date.now() + 61_000);
    expect(await issuer.authorize(authorizer, `Bearer ${token}`)).toEqual({ ok: false, description: 'the token has expired' });
  });

  it('refuses a token it verified for another audience or issuer', async () => {
    const issuer = await createLocalIssuer();
    const token = await issuer.issueToken(authorizer, 'cus_1');
    expect((await issuer.authorize(authorizer, `Bearer ${token}`)).ok).toBe(true);
    expect(await issuer.authorize({ ...authorizer, audience: ['other-client'] }, `Bearer ${token}`)).toEqual({
      ok: false,
      description: 'the token is not for this audience',
    });
    expect(await issuer.authorize({ ...authorizer, issuer: 'https://issuer.example/other' }, `Bearer ${token}`)).toEqual({
      ok: false,
      description: "the token's iss is not valid",
    });
  });
});
