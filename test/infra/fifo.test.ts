// The FIFO variant of the stack (`--param="queueType=fifo"`): an SNS FIFO topic, SQS FIFO queues
// and dead-letter queues, explicit deduplication ids, high throughput per message group, mappings
// as AWS allows them on FIFO queues, and everything else the same as the standard template.
import { beforeAll, describe, expect, it } from 'vitest';
import { queueConsumers } from '../../local/queue-consumers.js';
import { bundleCode } from './bundles.js';
import {
  CUSTOMER_TOPIC_KEY_ARN,
  deadLetterQueueOf,
  eventSourceMappings,
  orderEventsTopic,
  packageStack,
  resource,
  resourcesOfType,
  sourceQueues,
  type Json,
  type Packaged,
  type Template,
} from './template.js';

let standard: Packaged;
let fifo: Packaged;
let t: Template;
beforeAll(() => {
  standard = packageStack();
  fifo = packageStack({ params: { queueType: 'fifo' } });
  t = fifo.template;
}, 180_000);

describe('the FIFO variant (queueType=fifo)', () => {
  it('has an SNS FIFO topic: .fifo name, no content-based deduplication, throughput and deduplication per message group', () => {
    const topic = resource(t, orderEventsTopic(t));
    expect(topic.Properties).toEqual({
      TopicName: `order-pipeline-${fifo.stage}-order-events.fifo`,
      KmsMasterKeyId: 'alias/aws/sns',
      FifoTopic: true,
      ContentBasedDeduplication: false,
      FifoThroughputScope: 'MessageGroup',
    });
    // The standard topic has none of that.
    expect(resource(standard.template, orderEventsTopic(standard.template)).Properties).toEqual({
      TopicName: `order-pipeline-${standard.stage}-order-events`,
      KmsMasterKeyId: 'alias/aws/sns',
    });
  });

  it('gives every consumer a FIFO queue in high throughput mode and a FIFO dead-letter queue, .fifo names both', () => {
    const consumers = queueConsumers(t, `order-pipeline-${fifo.stage}`);
    // Each consumer's express lane is FIFO too.
    expect(consumers.map((c) => `${c.name} ${c.lane}`)).toEqual([
      'inventory standard',
      'inventory express',
      'payment standard',
      'payment express',
      'shipping standard',
      'shipping express',
    ]);
    for (const c of consumers) {
      const queue = `order-pipeline-${fifo.stage}-${c.name}${c.lane === 'express' ? '-express' : ''}`;
      expect([c.queueName, c.deadLetterQueueName], c.name).toEqual([`${queue}.fifo`, `${queue}-dlq.fifo`]);
      expect(resource(t, c.queueId).Properties, c.name).toMatchObject({
        FifoQueue: true,
        ContentBasedDeduplication: false,
        DeduplicationScope: 'messageGroup',
        FifoThroughputLimit: 'perMessageGroupId',
      });
      const dlq = resource(t, deadLetterQueueOf(t, c.queueId)!).Properties!;
      expect(dlq.FifoQueue, `${c.name} DLQ`).toBe(true);
      // Only its own FIFO queue may redrive into it.
      expect(JSON.stringify(dlq.RedriveAllowPolicy.sourceQueueArns), `${c.name} DLQ`).toContain(`:${c.queueName}"`);
    }
  });

  it("keeps each subscription's filter policy and raw delivery", () => {
    const subscriptions = (template: Template) =>
      Object.fromEntries(
        resourcesOfType(template, 'AWS::SNS::Subscription')
          .filter(([, r]) => r.Properties?.TopicArn?.Ref === 'OrderEventsTopic')
          .map(([id, r]) => [id, r.Properties]),
      );
    expect(Object.keys(subscriptions(t))).toHaveLength(6);
    expect(subscriptions(t)).toEqual(subscriptions(standard.template));
    for (const [, properties] of Object.entries<Json>(subscriptions(t)))
      expect(properties).toMatchObject({ RawMessageDelivery: true, FilterPolicyScope: 'MessageAttributes' });
  });

  it('maps each queue as AWS allows on FIFO: at most 10 records, no batching window, a maximum concurrency, partial batch responses', () => {
    const mappings = eventSourceMappings(t);
    expect(mappings.map((m) => m.queueId).sort()).toEqual(sourceQueues(t).sort());
    for (const { id, properties } of mappings) {
      expect(properties.BatchSize, id).toBeLessThanOrEqual(10);
      expect(properties, id).not.toHaveProperty('MaximumBatchingWindowInSeconds');
      expect(properties.ScalingConfig, id).toEqual({ MaximumConcurrency: id.includes('Express') ? 2 : 5 });
      expect(properties.FunctionResponseTypes, id).toEqual(['ReportBatchItemFailures']);
    }
  });

  it("publishes with an explicit group and deduplication id: every publisher's bundle sets both (the topic has no content-based deduplication)", () => {
    // The bundles are the same for both variants: the code tells a FIFO topic by its ARN.
    for (const key of ['createOrder', 'cancelOrder', 'sweepOrders', 'inventory', 'payment', 'shipping']) {
      const code = bundleCode(fifo, key);
      expect(code, key).toContain('MessageGroupId');
      expect(code, key).toContain('MessageDeduplicationId');
    }
  });

  it('is the standard template in everything else: roles, policies, alarms, dashboard, outputs, functions', () => {
    const differing = new Set([
      orderEventsTopic(t),
      ...sourceQueues(t),
      ...sourceQueues(t).map((q) => deadLetterQueueOf(t, q)!),
      ...eventSourceMappings(t).map((m) => m.id),
    ]);
    const comparable = (template: Template) => {
      const resources: Record<string, Json> = {};
      for (const [id, r] of Object.entries(template.Resources)) {
        if (differing.has(id)) continue;
        // Same bundles; their S3 keys name the packaging.
        resources[id] = r.Type === 'AWS::Lambda::Function' ? { ...r, Properties: { ...r.Properties, Code: undefined } } : r;
      }
      return resources;
    };
    expect(Object.keys(t.Resources).sort()).toEqual(Object.keys(standard.template.Resources).sort());
    expect(comparable(t)).toEqual(comparable(standard.template));
    expect(t.Outputs).toEqual(standard.template.Outputs);
    expect(t.Conditions).toEqual(standard.template.Conditions);
  });

  it('packages with the other params too (stage prod, own topic key, tracing)', () => {
    const prod = packageStack({ stage: 'prod', params: { queueType: 'fifo', topicKmsKeyId: CUSTOMER_TOPIC_KEY_ARN, tracing: 'true' } });
    expect(resource(prod.template, orderEventsTopic(prod.template)).Properties).toMatchObject({
      TopicName: 'order-pipeline-prod-order-events.fifo',
      KmsMasterKeyId: CUSTOMER_TOPIC_KEY_ARN,
      FifoTopic: true,
    });
  }, 180_000);

  it.each([
    ['a queue type that is neither standard nor fifo', { queueType: 'FIFO' }, /param queueType is standard or fifo, not "FIFO"/],
    ['a batch over 10 on FIFO queues', { queueType: 'fifo', batchSize: 20 }, /param batchSize is at most 10 on FIFO queues/],
  ])(
    'refuses to package %s',
    (_, params, message) => {
      expect(() => packageStack({ params })).toThrow(message);
    },
    180_000,
  );
});
