// Audit trail (`--param="auditTrail=true"`): a CloudTrail trail of the data events of this stack's
// queues and topics (a default trail records none), limited to their ARNs, with log file
// validation, to a bucket that is encrypted, versioned, private, TLS-only, expires its logs, and
// takes writes from this trail alone.
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRegulated, withOptions } from './regulated-variants.js';
import {
  asArray,
  eventSourceMappings,
  type Json,
  packageStack,
  type Packaged,
  resource,
  resourcesOfType,
  type Statement,
  type Template,
  targetId,
} from './template.js';

let standard: Packaged;
let audit: Packaged;
let all: Packaged;
beforeAll(() => {
  standard = packageStack();
  audit = packageRegulated('auditTrail');
  all = packageRegulated('all');
}, 240_000);

const TRAIL_ARN = { 'Fn::Sub': 'arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/order-pipeline-dev-audit' };

describe('the default stack', () => {
  it('has no trail of its own', () => {
    expect(resourcesOfType(standard.template, 'AWS::CloudTrail::Trail')).toEqual([]);
  });
});

describe.each([
  ['auditTrail=true', () => audit],
  ['all three options', () => all],
])('audit trail (%s)', (_name, packaged) => {
  let t: Template;
  let trail: Json;
  beforeAll(() => {
    t = packaged().template;
    trail = resource(t, 'AuditTrail');
  });

  it("records the data events of every queue and topic of the stack, by their ARNs, and nothing else's", () => {
    expect(trail.Properties).toMatchObject({ IsLogging: true, TrailName: 'order-pipeline-dev-audit' });
    const selectors = trail.Properties.AdvancedEventSelectors as Json[];
    expect(selectors).toHaveLength(2);
    const byType = Object.fromEntries(
      selectors.map((selector) => {
        const fields = Object.fromEntries((selector.FieldSelectors as Json[]).map((f) => [f.Field, f]));
        // Equals only: no pattern, no negation that would widen a selector.
        for (const field of Object.values<Json>(fields)) expect(Object.keys(field).sort(), selector.Name).toEqual(['Equals', 'Field']);
        expect(fields.eventCategory.Equals).toEqual(['Data']);
        expect(fields['resources.type'].Equals).toHaveLength(1);
        return [fields['resources.type'].Equals[0], (fields['resources.ARN'].Equals as Json[]).map(targetId).sort()];
      }),
    );
    const ids = (type: string) =>
      resourcesOfType(t, type)
        .map(([id]) => id)
        .sort();
    expect(byType).toEqual({ 'AWS::SQS::Queue': ids('AWS::SQS::Queue'), 'AWS::SNS::Topic': ids('AWS::SNS::Topic') });
    // A queue and a dead-letter queue for each event source mapping.
    expect(byType['AWS::SQS::Queue']).toHaveLength(2 * eventSourceMappings(t).length);
    // The ARNs: a queue's GetAtt Arn (its Ref is a URL), a topic's Ref.
    const arns = (selectors[0].FieldSelectors as Json[]).find((f) => f.Field === 'resources.ARN').Equals as Json[];
    for (const arn of arns) expect(arn['Fn::GetAtt']?.[1]).toBe('Arn');
  });

  it('validates its log files, in one region, without the management events the account trail has', () => {
    expect(trail.Properties).toMatchObject({ EnableLogFileValidation: true, IsMultiRegionTrail: false, IncludeGlobalServiceEvents: false });
    expect(trail.Properties.EventSelectors).toBeUndefined();
    expect(JSON.stringify(trail.Properties.AdvancedEventSelectors)).not.toContain('Management');
    // CloudTrail checks the bucket policy when the trail is created.
    expect(trail.DependsOn).toContain('AuditTrailBucketPolicy');
    expect(targetId(trail.Properties.S3BucketName)).toBe('AuditTrailBucket');
  });

  it('writes to a bucket that is encrypted, versioned, private, owner-enforced, kept after the stack, and expires its logs', () => {
    const bucket = resource(t, 'AuditTrailBucket');
    expect(bucket).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    const p = bucket.Properties!;
    expect(p.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(p.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(p.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(p.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    const [rule] = p.LifecycleConfiguration.Rules;
    expect(rule).toMatchObject({ Status: 'Enabled', ExpirationInDays: 365, NoncurrentVersionExpiration: { NoncurrentDays: 30 } });
  });

  it('lets CloudTrail write to the bucket for this trail only, and refuses requests without TLS', () => {
    const statements = resource(t, 'AuditTrailBucketPolicy').Properties!.PolicyDocument.Statement as Statement[];
    const byCloudTrail = statements.filter((s) => s.Principal?.Service === 'cloudtrail.amazonaws.com');
    expect(byCloudTrail.map((s) => s.Action).sort()).toEqual(['s3:GetBucketAcl', 's3:PutObject']);
    for (const s of byCloudTrail) {
      expect(s.Effect).toBe('Allow');
      expect(s.Condition!.StringEquals!['aws:SourceArn'], String(s.Action)).toEqual(TRAIL_ARN);
    }
    const write = byCloudTrail.find((s) => s.Action === 's3:PutObject')!;
    expect(write.Resource).toEqual({ 'Fn::Sub': '${AuditTrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*' });
    expect(write.Condition!.StringEquals!['s3:x-amz-acl']).toBe('bucket-owner-full-control');
    const tls = statements.find((s) => s.Effect === 'Deny')!;
    expect(tls).toMatchObject({ Principal: '*', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } });
    expect(asArray<Json>(tls.Resource)).toHaveLength(2);
    // Only these three statements: no other principal may write or read.
    expect(statements).toHaveLength(3);
  });
});

describe('audit trail options', () => {
  it('keeps the log files auditLogRetentionDays', () => {
    const kept = withOptions(standard.template, { auditTrail: 'true', auditLogRetentionDays: 2555 });
    expect(resource(kept, 'AuditTrailBucket').Properties!.LifecycleConfiguration.Rules[0].ExpirationInDays).toBe(2555);
  });
});
