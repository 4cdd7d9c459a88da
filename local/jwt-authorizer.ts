// API Gateway's JWT authorizer, locally. HTTP API checks a route's `Authorization: Bearer` token
// against the authorizer's issuer and audience before the function runs: signature (from the
// issuer's JWKS), `iss`, `aud` or (Cognito access tokens) `client_id`, `exp` and `nbf`, and it
// answers 401 itself when one fails. Here the issuer is local: a key pair made when the runtime
// starts, its public half served as a JWKS at /_local/jwks.json, and tokens signed with it carry
// the very issuer and audience the packaged template names, so the authorizer configuration that
// deploys is the one enforced. jose does the cryptography.

import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, type JWTPayload, jwtVerify, SignJWT, errors } from 'jose';

/**
 * Tokens verified, kept until their `exp`, at most this many (the oldest go first). The key pair is
 * made once per runtime and never rotates, so a token that verified once verifies again until it
 * expires; an RS256 check was 1.8% of the main thread's time under the bench's flood, one customer's
 * token on every request, as a client keeps its token until it expires.
 */
const VERIFIED_TOKENS_KEPT = 1_000;

/** A route's authorizer as the template declares it (AWS::ApiGatewayV2::Authorizer, type JWT). */
export interface JwtAuthorizerConfig {
  name: string;
  issuer: string;
  audience: string[];
  /** `$request.header.Authorization`: the only identity source emulated. */
  identitySource: string;
}

/** What API Gateway puts in requestContext.authorizer for a JWT authorizer: claims as strings. */
export interface JwtAuthorization {
  jwt: { claims: Record<string, string>; scopes: string[] | null };
}

export type AuthorizerDecision = { ok: true; authorization: JwtAuthorization } | { ok: false; description: string };

export interface TokenOptions {
  /** Seconds until `exp`; negative for a token that has already expired. 3600 by default. */
  expiresInSeconds?: number;
  /** Defaults to the authorizer's first audience. */
  audience?: string;
  scopes?: string[];
}

export interface LocalIssuer {
  jwks: JSONWebKeySet;
  /** A Cognito-style access token for the subject, as the authorizer's issuer would sign it. */
  issueToken(authorizer: JwtAuthorizerConfig, subject: string, options?: TokenOptions): Promise<string>;
  authorize(authorizer: JwtAuthorizerConfig, authorizationHeader: string | undefined): Promise<AuthorizerDecision>;
}

export async function createLocalIssuer(): Promise<LocalIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] };
  const keySet = createLocalJWKSet(jwks);
  const verified = new Map<string, JWTPayload & { exp: number }>();
  /** The token's payload if its signature, issuer and times hold now; throws jose's error otherwise. */
  const verifiedPayload = async (authorizer: JwtAuthorizerConfig, token: string): Promise<JWTPayload> => {
    const key = `${authorizer.issuer}\n${token}`;
    const known = verified.get(key);
    // Past its `exp` (jose's own rule: valid while exp > now, in whole seconds), it is checked anew and refused.
    if (known && known.exp > Math.floor(Date.now() / 1000)) return known;
    verified.delete(key);
    const { payload } = await jwtVerify(token, keySet, { issuer: authorizer.issuer, algorithms: ['RS256'], requiredClaims: ['exp'] });
    if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!);
    verified.set(key, payload as JWTPayload & { exp: number });
    return payload;
  };
  return {
    jwks,
    async issueToken(authorizer, subject, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const expiresIn = options.expiresInSeconds ?? 3600;
      // Cognito's access token: `client_id` names the app client (no `aud`), `token_use` says what it is.
      return new SignJWT({
        client_id: options.audience ?? authorizer.audience[0] ?? '',
        token_use: 'access',
        scope: (options.scopes ?? []).join(' '),
        username: subject,
      })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(authorizer.issuer)
        .setSubject(subject)
        .setIssuedAt(Math.min(now, now + expiresIn - 1))
        .setExpirationTime(now + expiresIn)
        .setJti(randomUUID())
        .sign(privateKey);
    },
    async authorize(authorizer, authorizationHeader) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader ?? '');
      if (!match)
        return {
          ok: false,
          description: authorizationHeader ? 'the Authorization header is not "Bearer <token>"' : 'no Authorization header',
        };
      try {
        const payload = await verifiedPayload(authorizer, match[1]!);
        // API Gateway: `aud` must name one of the audiences; without `aud`, `client_id` must.
        const audiences = payload.aud === undefined ? [payload.client_id] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
        if (!audiences.some((audience) => typeof audience === 'string' && authorizer.audience.includes(audience))) {
          return { ok: false, description: 'the token is not for this audience' };
        }
        const claims = Object.fromEntries(
          Object.entries(payload).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]),
        );
        const scopes = typeof payload.scope === 'string' && payload.scope ? payload.scope.split(' ') : null;
        return { ok: true, authorization: { jwt: { claims, scopes } } };
      } catch (error) {
        if (error instanceof errors.JWTExpired) return { ok: false, description: 'the token has expired' };
        if (error instanceof errors.JWTClaimValidationFailed) return { ok: false, description: `the token's ${error.claim} is not valid` };
        if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
          return { ok: false, description: 'the token is not signed by the issuer' };
        }
        return { ok: false, description: 'the token is malformed' };
      }
    },
  };
}
