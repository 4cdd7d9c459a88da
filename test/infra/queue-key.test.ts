// Customer-managed key for the queues (`--param="queueKey=cmk"`): every queue and dead-letter queue
// encrypted with the stack's key, rotated; SNS may use it for this stack's topics only; each
// consumer may decrypt only the queues it reads. The flow of a message is followed permission by
// permission, since a missing one fails silently in AWS: SNS drops what it cannot encrypt for a
// queue, and a mapping that cannot decrypt retries until the message reaches its DLQ.
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRegulated } from './regulated-variants.js';
import {
  actionsOf,
  asArray,
  deadLetterQueueOf,
  eventSourceMappings,
  functionStatements,
  lambdaFunctions,
  packageStack,
  resource,
  resourcesOfType,
  type Json,
  type Packaged,
  type Statement,
  type Template,
  targetId,
} from './template.js';

let standard: Packaged;
let queueKey: Packaged;
let all: Packaged;
beforeAll(() => {
  standard = packageStack();
  queueKey = packageRegulated('queueKey');
  all = packageRegulated('all');
}, 240_000);

const KEY_ARN = { 'Fn::GetAtt': ['QueueKey', 'Arn'] };
const queueArn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const keyStatements = (t: Template): Statement[] => resource(t, 'QueueKey').Properties!.KeyPolicy.Statement;
const allows = (statement: Statement, action: string) =>
  statement.Effect === 'Allow' && actionsOf(statement).some((a) => a === action || (a.endsWith('*') && action.startsWith(a.slice(0, -1))));

describe('the default stack', () => {
  it('keeps SQS-managed encryption (SSE-SQS) on every queue, and no queue key', () => {
    for (const [id, queue] of resourcesOfType(standard.template, 'AWS::SQS::Queue')) {
      expect(queue.Properties!.SqsManagedSseEnabled, id).toBe(true);
      expect(queue.Properties!.KmsMasterKeyId, id).toBeUndefined();
    }
    expect(standard.template.Resources.QueueKey).toBeUndefined();
  });
});

describe.each([
  ['queueKey=cmk', () => queueKey],
  ['all three options', () => all],
])('customer-managed queue key (%s)', (_name, packaged) => {
  let t: Template;
  beforeAll(() => {
    t = packaged().template;
  });

  it('encrypts every queue and dead-letter queue with the one stack key, and none with SQS-managed keys', () => {
    const queues = resourcesOfType(t, 'AWS::SQS::Queue');
    expect(queues).toHaveLength(resourcesOfType(standard.template, 'AWS::SQS::Queue').length);
    for (const [id, queue] of queues) {
      expect(queue.Properties!.KmsMasterKeyId, id).toEqual(KEY_ARN);
      expect(queue.Properties!.SqsManagedSseEnabled, id).toBeUndefined();
    }
    for (const mapping of eventSourceMappings(t)) {
      const dlq = deadLetterQueueOf(t, mapping.queueId)!;
      expect(resource(t, dlq).Properties!.KmsMasterKeyId, dlq).toEqual(KEY_ARN);
    }
  });

  it('rotates the key, names it by an alias, and lets the account administer it through IAM', () => {
    expect(resource(t, 'QueueKey').Properties).toMatchObject({ EnableKeyRotation: true });
    expect(resource(t, 'QueueKeyAlias').Properties).toEqual({
      AliasName: 'alias/order-pipeline-dev-queues',
      TargetKeyId: { Ref: 'QueueKey' },
    });
    const root = keyStatements(t).find((s) => s.Sid === 'AccountAdministersKey')!;
    expect(root.Principal).toEqual({ AWS: { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' } });
  });

  it('grants sns.amazonaws.com only what delivery needs, for the topics subscribing a queue of this stack only', () => {
    const services = keyStatements(t).filter((s) => s.Principal?.Service);
    expect(services).toHaveLength(1);
    const [sns] = services;
    expect(sns!.Principal).toEqual({ Service: 'sns.amazonaws.com' });
    expect([...actionsOf(sns!)].sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    const subscribing = [
      ...new Set(
        resourcesOfType(t, 'AWS::SNS::Subscription')
          .filter(([, s]) => s.Properties!.Protocol === 'sqs')
          .map(([, s]) => targetId(s.Properties!.TopicArn)),
      ),
    ].sort();
    expect(subscribing).toContain('OrderEventsTopic');
    expect(asArray<Json>(sns!.Condition!.ArnEquals!['aws:SourceArn']).map(targetId).sort()).toEqual(subscribing);
    expect(sns!.Condition!.StringEquals).toEqual({ 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
    // Nothing else: no other principal, no other service.
    expect(
      keyStatements(t)
        .map((s) => s.Sid)
        .sort(),
    ).toEqual(['AccountAdministersKey', 'StackTopicsDeliverToEncryptedQueues']);
  });

  it('lets a message flow from the topic through each encrypted queue to its consumer, permission by permission', () => {
    const mappings = eventSourceMappings(t);
    expect(mappings.length).toBeGreaterThanOrEqual(3);
    for (const { queueId, functionId } of mappings) {
      const what = `${queueId} → ${functionId}`;
      // 1. The topic is subscribed to the queue.
      const subscription = resourcesOfType(t, 'AWS::SNS::Subscription').find(([, s]) => targetId(s.Properties!.Endpoint) === queueId);
      expect(subscription, what).toBeDefined();
      const topicId = targetId(subscription![1].Properties!.TopicArn)!;
      // 2. The queue's policy lets SNS send to it, for that topic.
      const queuePolicy = resourcesOfType(t, 'AWS::SQS::QueuePolicy').find(([, p]) =>
        asArray<Json>(p.Properties!.Queues).some((q) => targetId(q) === queueId),
      );
      const sendByTopic = (queuePolicy![1].Properties!.PolicyDocument.Statement as Statement[]).find(
        (s) => s.Principal?.Service === 'sns.amazonaws.com' && allows(s, 'sqs:SendMessage'),
      );
      expect(targetId(sendByTopic?.Condition?.ArnEquals?.['aws:SourceArn']), what).toBe(topicId);
      // 3. The queue is encrypted with the key, 4. whose policy lets SNS make and use data keys for that topic.
      expect(resource(t, queueId).Properties!.KmsMasterKeyId, what).toEqual(KEY_ARN);
      const snsKeyUse = keyStatements(t).find((s) => s.Principal?.Service === 'sns.amazonaws.com')!;
      expect(allows(snsKeyUse, 'kms:GenerateDataKey') && allows(snsKeyUse, 'kms:Decrypt'), what).toBe(true);
      expect(asArray<Json>(snsKeyUse.Condition!.ArnEquals!['aws:SourceArn']).map(targetId), what).toContain(topicId);
      // 5. The mapping receives with the consumer's role, which may receive and delete on the queue,
      const statements = functionStatements(t, functionId);
      for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) {
        expect(
          statements.some((s) => allows(s, action) && asArray<Json>(s.Resource).some((r) => targetId(r) === queueId)),
          `${what}: ${action}`,
        ).toBe(true);
      }
      // 6. and decrypt with the key through SQS, for this queue (the encryption context SQS sends),
      const decrypt = statements.find((s) => allows(s, 'kms:Decrypt') && JSON.stringify(s.Resource) === JSON.stringify(KEY_ARN));
      expect(decrypt, what).toBeDefined();
      expect(decrypt!.Condition!.StringEquals!['kms:ViaService']).toEqual({ 'Fn::Sub': 'sqs.${AWS::Region}.amazonaws.com' });
      expect(asArray<Json>(decrypt!.Condition!.StringEquals!['kms:EncryptionContext:aws:sqs:arn']), what).toContainEqual(queueArn(queueId));
      // 7. a grant the key policy honours: it lets the account's IAM policies grant its use.
      expect(
        keyStatements(t).some((s) => s.Principal?.AWS && allows(s, 'kms:Decrypt')),
        what,
      ).toBe(true);
    }
  });

  it('grants kms:Decrypt to the consumers alone, each for the queues it reads and no other', () => {
    const reads = new Map<string, string[]>();
    for (const { queueId, functionId } of eventSourceMappings(t)) reads.set(functionId, [...(reads.get(functionId) ?? []), queueId]);
    for (const fn of lambdaFunctions(t, 'dev')) {
      const kms = functionStatements(t, fn.id).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      // The publishers' grant on the topic's key is custom.topicKeyGrant: none for the default AWS-managed key.
      const queueKeyGrants = kms.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(KEY_ARN));
      expect(kms, fn.key).toEqual(queueKeyGrants);
      const queues = reads.get(fn.id);
      if (!queues) {
        expect(queueKeyGrants, `${fn.key} reads no queue`).toEqual([]);
        continue;
      }
      expect(queueKeyGrants, fn.key).toHaveLength(1);
      expect(actionsOf(queueKeyGrants[0]!)).toEqual(['kms:Decrypt']);
      expect(queueKeyGrants[0]!.Condition!.StringEquals!['kms:EncryptionContext:aws:sqs:arn']).toEqual(queues.sort().map(queueArn));
    }
  });
});
