// Issue 11 in the packaged template: the order routes behind the JWT authorizer (a Cognito pool by
// default, an outside issuer by param), the catalogue public; the card token's table written only
// by the order API, read and deleted only by the payment function, never backed up.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  actionsOf,
  asArray,
  conditionHolds,
  functionStatements,
  lambdaFunctions,
  packageStack,
  resolveIfs,
  resource,
  resourcesOfType,
  targetId,
  type Packaged,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

/** Which actions each function's role has on a table, by function key. */
function accessTo(template: Template, stage: string, tableId: string): Record<string, string[]> {
  const access: Record<string, string[]> = {};
  for (const fn of lambdaFunctions(template, stage)) {
    const actions = functionStatements(template, fn.id)
      .filter((s) => s.Effect === 'Allow' && asArray(s.Resource).some((r) => JSON.stringify(r).includes(`"${tableId}"`)))
      .flatMap(actionsOf);
    if (actions.length > 0) access[fn.key] = [...new Set(actions)].sort();
  }
  return access;
}

describe('the order routes', () => {
  it('the order routes sit behind the JWT authorizer; GET /inventory/{sku} is public', () => {
    const routes = Object.fromEntries(
      resourcesOfType(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => [String(r.Properties?.RouteKey), r.Properties ?? {}]),
    );
    expect(Object.keys(routes).sort()).toEqual([
      'GET /inventory/{sku}',
      'GET /orders/{orderId}',
      'POST /orders',
      'POST /orders/{orderId}/cancel',
    ]);
    for (const key of ['POST /orders', 'GET /orders/{orderId}', 'POST /orders/{orderId}/cancel']) {
      expect(routes[key]!.AuthorizationType, key).toBe('JWT');
      const authorizer = resource(t, targetId(routes[key]!.AuthorizerId)!);
      expect(authorizer.Properties).toMatchObject({ AuthorizerType: 'JWT', IdentitySource: ['$request.header.Authorization'] });
    }
    expect(routes['GET /inventory/{sku}']!.AuthorizationType ?? 'NONE').toBe('NONE');
  });

  it('by default trusts the Cognito user pool the stack creates, and its app client as audience', () => {
    expect(conditionHolds(t, 'CreateUserPool')).toBe(true);
    const authorizers = resourcesOfType(t, 'AWS::ApiGatewayV2::Authorizer');
    expect(authorizers).toHaveLength(1);
    const jwt = resolveIfs(t, authorizers[0]![1].Properties?.JwtConfiguration) as { Issuer: unknown; Audience: unknown[] };
    expect(JSON.stringify(jwt.Issuer)).toContain('https://cognito-idp.${AWS::Region}.amazonaws.com/${CustomerUserPool}');
    expect(jwt.Audience).toEqual([{ Ref: 'CustomerUserPoolClient' }]);
    const pool = resource(t, 'CustomerUserPool').Properties ?? {};
    // Customers are created by the shop, not by whoever finds the pool's sign-up endpoint.
    expect(pool.AdminCreateUserConfig).toEqual({ AllowAdminCreateUserOnly: true });
    expect(resource(t, 'CustomerUserPoolClient').Properties?.GenerateSecret).toBe(false);
  });

  it('with jwtIssuerUrl and jwtAudience, trusts that issuer instead and creates no user pool', () => {
    const own = packageStack({ params: { jwtIssuerUrl: 'https://login.example.com/', jwtAudience: 'shop-api' } });
    expect(conditionHolds(own.template, 'CreateUserPool')).toBe(false);
    const [authorizer] = resourcesOfType(own.template, 'AWS::ApiGatewayV2::Authorizer');
    expect(resolveIfs(own.template, authorizer![1].Properties?.JwtConfiguration)).toEqual({
      Issuer: 'https://login.example.com/',
      Audience: ['shop-api'],
    });
  });
});

describe('the card token', () => {
  it('has a table of its own, expiring by TTL, with no point-in-time recovery (a backup would keep deleted tokens)', () => {
    const p = resource(t, 'PaymentTokensTable').Properties ?? {};
    expect(p.KeySchema).toEqual([{ AttributeName: 'orderId', KeyType: 'HASH' }]);
    expect(p.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    expect(p.SSESpecification).toEqual({ SSEEnabled: true });
    expect(p.PointInTimeRecoverySpecification?.PointInTimeRecoveryEnabled ?? false).toBe(false);
  });

  it('is put only by the order API, taken (marked and read) only by the payment function, deleted by it or a cancellation', () => {
    expect(accessTo(t, stack.stage, 'PaymentTokensTable')).toEqual({
      cancelOrder: ['dynamodb:DeleteItem'],
      createOrder: ['dynamodb:PutItem'],
      payment: ['dynamodb:DeleteItem', 'dynamodb:UpdateItem'],
    });
  });

  it('Idempotency-Keys map to orders in their own table, which only the order API touches', () => {
    const p = resource(t, 'OrderRequestsTable').Properties ?? {};
    expect(p.KeySchema).toEqual([{ AttributeName: 'requestKey', KeyType: 'HASH' }]);
    expect(p.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    expect(accessTo(t, stack.stage, 'OrderRequestsTable')).toEqual({ createOrder: ['dynamodb:GetItem', 'dynamodb:PutItem'] });
  });
});
