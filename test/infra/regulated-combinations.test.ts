// The three regulated-account options together and in every combination: off, they change nothing;
// on, each adds its own resources whatever the others do, and the packaging hook gives exactly what
// the options give applied to the default template, FIFO variant included.
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalTemplate, packageRegulated, REGULATED_VARIANTS, regulatedDeployment, withOptions } from './regulated-variants.js';
import { packageStack, type Packaged, resourcesOfType, type Template } from './template.js';

let standard: Packaged;
let fifo: Packaged;
beforeAll(() => {
  standard = packageStack();
  fifo = packageStack({ params: { queueType: 'fifo' } });
  for (const variant of Object.keys(REGULATED_VARIANTS) as (keyof typeof REGULATED_VARIANTS)[]) packageRegulated(variant);
}, 400_000);

const COMBINATIONS = [false, true].flatMap((vpc) =>
  [false, true].flatMap((queueKey) => [false, true].map((auditTrail) => ({ vpc, queueKey, auditTrail }))),
);
const settingsOf = (c: { vpc: boolean; queueKey: boolean; auditTrail: boolean }) => ({
  vpc: String(c.vpc),
  queueKey: c.queueKey ? 'cmk' : 'sqs',
  auditTrail: String(c.auditTrail),
});
const count = (t: Template, type: string) => resourcesOfType(t, type).length;

describe('regulated-account options', () => {
  it('change nothing when off: the hook leaves the default template as it is', () => {
    expect(canonicalTemplate(withOptions(standard.template, {}))).toBe(canonicalTemplate(standard.template));
    expect(count(standard.template, 'AWS::EC2::VPC') + count(standard.template, 'AWS::CloudTrail::Trail')).toBe(0);
    expect(standard.template.Resources.QueueKey).toBeUndefined();
  });

  it.each(Object.keys(REGULATED_VARIANTS) as (keyof typeof REGULATED_VARIANTS)[])(
    'packages %s as the hook applies it to the default template',
    (variant) => {
      expect(canonicalTemplate(packageRegulated(variant).template)).toBe(
        canonicalTemplate(withOptions(standard.template, REGULATED_VARIANTS[variant])),
      );
    },
  );

  it.each(COMBINATIONS.map((c) => [JSON.stringify(settingsOf(c)), c] as const))(
    '%s: each option on has its resources, each off has none',
    (_name, c) => {
      for (const base of [standard.template, fifo.template]) {
        const t = withOptions(base, settingsOf(c));
        expect(count(t, 'AWS::EC2::VPC')).toBe(c.vpc ? 1 : 0);
        const services = resourcesOfType(t, 'AWS::EC2::VPCEndpoint').map(([, e]) =>
          String(e.Properties!.ServiceName['Fn::Sub']).split('.').pop(),
        );
        expect(services).toEqual(c.vpc ? expect.arrayContaining(['sqs', 'sns', 'dynamodb']) : []);
        expect(resourcesOfType(t, 'AWS::Lambda::Function').every(([, fn]) => (fn.Properties!.VpcConfig !== undefined) === c.vpc)).toBe(
          true,
        );
        expect(t.Resources.QueueKey !== undefined).toBe(c.queueKey);
        expect(resourcesOfType(t, 'AWS::SQS::Queue').every(([, q]) => (q.Properties!.KmsMasterKeyId !== undefined) === c.queueKey)).toBe(
          true,
        );
        expect(count(t, 'AWS::CloudTrail::Trail')).toBe(c.auditTrail ? 1 : 0);
        // The rest of the stack is there, unchanged in number.
        for (const type of [
          'AWS::Lambda::Function',
          'AWS::SQS::Queue',
          'AWS::SNS::Subscription',
          'AWS::IAM::Role',
          'AWS::CloudWatch::Alarm',
        ])
          expect(count(t, type), type).toBe(count(base, type));
      }
    },
  );

  it('refuses a value it does not know, naming the param', () => {
    expect(() => regulatedDeployment.regulatedOptions({ vpc: 'yes' })).toThrow(/param vpc is false or true, not "yes"/);
    expect(() => regulatedDeployment.regulatedOptions({ queueKey: 'kms' })).toThrow(/param queueKey is sqs or cmk/);
    expect(() => regulatedDeployment.regulatedOptions({ auditTrail: 'on' })).toThrow(/param auditTrail/);
    expect(() => regulatedDeployment.regulatedOptions({ auditLogRetentionDays: 'forever' })).toThrow(/auditLogRetentionDays/);
  });
});
