// The claim-check bucket (resources/claim-check.yml) and who may do what in it: events too large for
// SNS are stored there (lib/claim-check.ts), so it holds order data and must be as closed as the
// tables and queues.
import { beforeAll, describe, expect, it } from 'vitest';
import { PARTICIPANTS } from '../../lib/order-schema.js';
import {
  actionsOf,
  asArray,
  eventSourceMappings,
  functionStatements,
  type Json,
  lambdaFunctions,
  type Packaged,
  packageStack,
  referencedIds,
  resource,
  resourcesOfType,
  type Statement,
  statementsOf,
  type Template,
} from './template.js';

const BUCKET = 'ClaimCheckBucket';
let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

const bucket = () => resource(t, BUCKET).Properties ?? {};
const fns = () => lambdaFunctions(t, stack.stage);
/** Statements of a function's role that name the bucket or its objects. */
const bucketStatements = (functionId: string): Statement[] =>
  functionStatements(t, functionId).filter((s) => s.Effect === 'Allow' && referencedIds(s.Resource).has(BUCKET));
/** The keys of the functions whose role may do `action` in the bucket. */
const allowed = (action: string) =>
  fns()
    .filter((fn) => bucketStatements(fn.id).some((s) => actionsOf(s).includes(action)))
    .map((fn) => fn.key)
    .sort();
const consumerKeys = () => {
  const consumers = new Set(eventSourceMappings(t).map((m) => m.functionId));
  return fns()
    .filter((fn) => consumers.has(fn.id))
    .map((fn) => fn.key)
    .sort();
};

describe('the claim-check bucket', () => {
  it('is the one bucket of the stack besides the deployment bucket, and its name is an output', () => {
    expect(
      resourcesOfType(t, 'AWS::S3::Bucket')
        .map(([id]) => id)
        .sort(),
    ).toEqual([BUCKET, 'ServerlessDeploymentBucket']);
    expect(t.Outputs?.ClaimCheckBucketName?.Value).toEqual({ Ref: BUCKET });
  });

  it('encrypts every object at rest (SSE-S3)', () => {
    expect(bucket().BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
    });
  });

  it('blocks every kind of public access, and owns every object (ACLs off)', () => {
    expect(bucket().PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket().OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
  });

  it('refuses every request not sent over TLS, on the bucket and on its objects', () => {
    const policies = resourcesOfType(t, 'AWS::S3::BucketPolicy').filter(([, r]) => referencedIds(r.Properties?.Bucket).has(BUCKET));
    expect(policies).toHaveLength(1);
    const statements = statementsOf(t, policies[0]![1].Properties?.PolicyDocument);
    const deny = statements.find((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
    expect(deny).toBeDefined();
    expect(deny!.Principal).toBe('*');
    expect(actionsOf(deny!)).toEqual(['s3:*']);
    const resources = asArray<Json>(deny!.Resource);
    expect(resources).toContainEqual({ 'Fn::GetAtt': [BUCKET, 'Arn'] });
    expect(resources).toContainEqual({ 'Fn::Sub': `\${${BUCKET}.Arn}/*` });
    // The policy allows nothing.
    expect(statements.filter((s) => s.Effect === 'Allow')).toEqual([]);
  });

  it('expires an object a day after the longest any queue keeps a message (so no pointer outlives its object), and abandoned uploads', () => {
    const retentions = resourcesOfType(t, 'AWS::SQS::Queue').map(([, r]) => Number(r.Properties?.MessageRetentionPeriod ?? 345_600));
    const longestRetentionDays = Math.max(...retentions) / 86_400;
    expect(longestRetentionDays).toBe(14);
    const rules = asArray<Json>(bucket().LifecycleConfiguration?.Rules).filter((rule) => rule.Status === 'Enabled');
    expect(rules).toHaveLength(1);
    const [rule] = rules;
    // The whole bucket: no prefix or filter narrows it.
    expect(rule.Prefix ?? rule.Filter).toBeUndefined();
    expect(rule.ExpirationInDays).toBeGreaterThan(longestRetentionDays);
    expect(rule.ExpirationInDays).toBeLessThanOrEqual(longestRetentionDays + 1);
    expect(rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation).toBeGreaterThanOrEqual(1);
  });
});

describe('who may do what in the claim-check bucket', () => {
  it('only the publishers of OrderPlaced write objects: the order API and the sweep', () => {
    expect(allowed('s3:PutObject')).toEqual(['createOrder', 'sweepOrders']);
  });

  it('every queue consumer reads them, nobody else', () => {
    expect(allowed('s3:GetObject')).toEqual(consumerKeys());
    expect(consumerKeys().length).toBeGreaterThanOrEqual(3);
  });

  it('only the saga participants delete them (the one whose result completes an order deletes its OrderPlaced)', () => {
    expect(allowed('s3:DeleteObject')).toEqual([...PARTICIPANTS].sort());
  });

  it('no role holds any other S3 action in it, nor a wildcard, and objects are granted under order-events/ alone', () => {
    const granted = new Set<string>();
    for (const fn of fns()) {
      for (const s of bucketStatements(fn.id)) {
        for (const action of actionsOf(s)) {
          granted.add(action);
          if (action === 's3:ListBucket') {
            // Listing, so that a missing object is a 404, not a 403; on the prefix alone.
            expect(s.Resource, `${fn.key} ${action}`).toEqual({ 'Fn::GetAtt': [BUCKET, 'Arn'] });
            expect(s.Condition, `${fn.key} ${action}`).toEqual({ StringLike: { 's3:prefix': 'order-events/*' } });
          } else {
            expect(s.Resource, `${fn.key} ${action}`).toEqual({ 'Fn::Sub': `\${${BUCKET}.Arn}/order-events/*` });
          }
        }
      }
    }
    expect([...granted].sort()).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
    // No role anywhere holds s3:* or any other wildcard on S3.
    for (const fn of fns()) {
      for (const s of functionStatements(t, fn.id)) {
        for (const action of actionsOf(s)) expect(action.startsWith('s3:') && action.includes('*'), `${fn.key}: ${action}`).toBe(false);
      }
    }
  });
});

describe('the claim-check settings of each function', () => {
  const environment = (key: string) => fns().find((fn) => fn.key === key)!.resource.Properties?.Environment?.Variables ?? {};

  it('the bucket and threshold reach every function that writes or reads objects, and no other', () => {
    const withBucket = fns()
      .filter((fn) => environment(fn.key).CLAIM_CHECK_BUCKET !== undefined)
      .map((fn) => fn.key)
      .sort();
    expect(withBucket).toEqual(['createOrder', 'sweepOrders', ...consumerKeys()].sort());
    for (const key of withBucket) {
      expect(environment(key).CLAIM_CHECK_BUCKET, key).toEqual({ Ref: BUCKET });
      // The param, 200 KiB by default: under SNS's 262,144 bytes.
      expect(environment(key).CLAIM_CHECK_THRESHOLD_BYTES, key).toBe('204800');
    }
  });

  it('the threshold follows the claimCheckThresholdBytes param', () => {
    const low = packageStack({ params: { claimCheckThresholdBytes: '1000' } });
    for (const fn of lambdaFunctions(low.template, low.stage)) {
      const value = fn.resource.Properties?.Environment?.Variables?.CLAIM_CHECK_THRESHOLD_BYTES;
      if (value !== undefined) expect(value, fn.key).toBe('1000');
    }
  }, 180_000);

  // Over SNS's limit the publishers would send what SNS refuses; 0 or less, every event through the bucket.
  it.each([
    ["over SNS's 262,144 bytes", '262145'],
    ['zero', '0'],
    ['not a number', 'lots'],
  ])(
    'refuses to package a threshold %s, naming the param and its range, without a stack trace',
    (_what, value) => {
      let failure: unknown;
      try {
        packageStack({ params: { claimCheckThresholdBytes: value } });
      } catch (error) {
        failure = error;
      }
      const message = String((failure as Error | undefined)?.message);
      expect(message).toContain(`param claimCheckThresholdBytes is a whole number of bytes from 1 to 262144`);
      expect(message).toContain(`not "${value}"`);
      expect(message).not.toMatch(/\n\s+at /);
    },
    180_000,
  );
});
