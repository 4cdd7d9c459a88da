// Queues, dead-letter queues, event source mappings, subscriptions and queue policies.
import { beforeAll, describe, expect, it } from 'vitest';
import { queueConsumers } from '../../local/queue-consumers.js';
import {
  actionsOf,
  asArray,
  deadLetterQueueOf,
  eventSourceMappings,
  mustTarget,
  orderEventsTopic,
  packageProdWithOverrides,
  packageStack,
  resource,
  resourcesOfType,
  sourceQueues,
  statementsOf,
  targetId,
  type Packaged,
  type Statement,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

const FOURTEEN_DAYS = 1_209_600;

describe('dead-letter queues', () => {
  it('every queue consumer reads a queue of its own, named after it, with its dead-letter queue beside it', () => {
    const consumers = queueConsumers(t, `order-pipeline-${stack.stage}`);
    expect(consumers.length).toBeGreaterThan(0);
    expect(consumers.map((c) => c.queueId).sort()).toEqual(sourceQueues(t).sort());
    for (const c of consumers) {
      // Each consumer twice: its standard queue, and its express lane's (`-express`).
      const queue = `order-pipeline-${stack.stage}-${c.name}${c.lane === 'express' ? '-express' : ''}`;
      expect([c.queueName, c.deadLetterQueueName], c.name).toEqual([queue, `${queue}-dlq`]);
    }
    expect(consumers.map((c) => `${c.name} ${c.lane}`)).toEqual(
      [...new Set(consumers.map((c) => c.name))].flatMap((name) => [`${name} standard`, `${name} express`]),
    );
  });

  it('every source queue redrives to a dead-letter queue of its own after maxReceiveCount receives', () => {
    expect(stack.params.maxReceiveCount).toBe(5);
    const dlqs = new Map<string, string>();
    for (const queue of sourceQueues(t)) {
      const redrive = resource(t, queue).Properties?.RedrivePolicy;
      expect(redrive, `${queue} has no RedrivePolicy`).toBeDefined();
      expect(Number(redrive.maxReceiveCount), `${queue} maxReceiveCount`).toBe(stack.params.maxReceiveCount);
      const dlq = deadLetterQueueOf(t, queue)!;
      expect(resource(t, dlq).Type).toBe('AWS::SQS::Queue');
      expect(dlq, `${queue} is its own DLQ`).not.toBe(queue);
      expect(dlqs.get(dlq), `${dlq} is the DLQ of ${dlqs.get(dlq)} and ${queue}`).toBeUndefined();
      dlqs.set(dlq, queue);
    }
    // Nothing else (another queue, a subscription, a function) uses those queues as its DLQ.
    for (const [id, r] of Object.entries(t.Resources)) {
      // Queue and subscription redrive, Lambda DeadLetterConfig, event source mapping OnFailure.
      const users: unknown[] = [
        r.Properties?.RedrivePolicy?.deadLetterTargetArn,
        r.Properties?.DeadLetterConfig?.TargetArn,
        r.Properties?.DestinationConfig?.OnFailure?.Destination,
      ];
      for (const target of users.map(targetId).filter((x): x is string => x !== undefined)) {
        if (!dlqs.has(target)) continue;
        expect(id, `${id} uses ${target} as a DLQ`).toBe(dlqs.get(target));
      }
    }
    // And a DLQ is a dead end: no redrive of its own, no consumer draining it.
    for (const dlq of dlqs.keys()) {
      expect(resource(t, dlq).Properties?.RedrivePolicy, `${dlq} redrives further`).toBeUndefined();
      expect(sourceQueues(t), `${dlq} is drained by a function`).not.toContain(dlq);
    }
  });

  it('maxReceiveCount follows the maxReceiveCount param', () => {
    const overridden = packageProdWithOverrides().template;
    for (const queue of sourceQueues(overridden)) {
      expect(Number(resource(overridden, queue).Properties?.RedrivePolicy?.maxReceiveCount), queue).toBe(7);
    }
  });

  it('every dead-letter queue keeps its messages 14 days', () => {
    for (const queue of sourceQueues(t)) {
      const dlq = deadLetterQueueOf(t, queue)!;
      expect(Number(resource(t, dlq).Properties?.MessageRetentionPeriod), `${dlq} retention`).toBe(FOURTEEN_DAYS);
    }
  });
});

describe('event source mappings', () => {
  it('reads each queue with exactly one mapping', () => {
    const queues = eventSourceMappings(t).map((m) => m.queueId);
    expect(queues.length).toBe(new Set(queues).size);
  });

  // Stage `local` (npm start, integration tests) runs shorter clocks: the rule must hold there too.
  it.each(['dev', 'local'])('queue VisibilityTimeout >= 6 x function Timeout + MaximumBatchingWindowInSeconds (%s)', (stage) => {
    const t = packageStack({ stage }).template;
    for (const m of eventSourceMappings(t)) {
      // CloudFormation defaults: queue visibility timeout 30 s, function timeout 3 s, window 0 s.
      const visibility = Number(resource(t, m.queueId).Properties?.VisibilityTimeout ?? 30);
      const timeout = Number(resource(t, m.functionId).Properties?.Timeout ?? 3);
      const window = Number(m.properties.MaximumBatchingWindowInSeconds ?? 0);
      expect(
        visibility,
        `${m.queueId} VisibilityTimeout ${visibility} < 6 x ${m.functionId} Timeout ${timeout} + window ${window}`,
      ).toBeGreaterThanOrEqual(6 * timeout + window);
    }
  });

  it('reports batch item failures and sets batch size, batching window and maximum concurrency', () => {
    const mappings = eventSourceMappings(t);
    expect(mappings.length).toBeGreaterThan(0);
    for (const m of mappings) {
      const p = m.properties;
      expect(p.FunctionResponseTypes, m.id).toEqual(['ReportBatchItemFailures']);
      expect(p.BatchSize, `${m.id} BatchSize`).toEqual(expect.any(Number));
      expect(p.BatchSize).toBeGreaterThanOrEqual(1);
      expect(p.MaximumBatchingWindowInSeconds, `${m.id} MaximumBatchingWindowInSeconds`).toEqual(expect.any(Number));
      expect(p.ScalingConfig?.MaximumConcurrency, `${m.id} MaximumConcurrency`).toEqual(expect.any(Number));
      // AWS rejects a MaximumConcurrency below 2.
      expect(p.ScalingConfig.MaximumConcurrency).toBeGreaterThanOrEqual(2);
      expect(p.Enabled ?? true, `${m.id} disabled`).toBe(true);
      // A batch of more than 10 records needs a batching window of at least 1 s.
      if (p.BatchSize > 10) expect(p.MaximumBatchingWindowInSeconds).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('subscriptions', () => {
  const expectedEventTypes: Record<string, string[]> = {
    InventoryQueue: ['OrderCancelled', 'OrderPlaced'],
    PaymentQueue: ['OrderCancelled', 'OrderPlaced'],
    ShippingQueue: ['OrderCancelled', 'OrderConfirmed', 'OrderPlaced'],
    InventoryExpressQueue: ['OrderCancelled', 'OrderPlaced'],
    PaymentExpressQueue: ['OrderCancelled', 'OrderPlaced'],
    ShippingExpressQueue: ['OrderCancelled', 'OrderConfirmed', 'OrderPlaced'],
  };

  function queueSubscriptions() {
    return resourcesOfType(t, 'AWS::SNS::Subscription')
      .filter(([, r]) => r.Properties?.Protocol === 'sqs')
      .map(([id, r]) => ({
        id,
        queue: mustTarget(t, r.Properties?.Endpoint, `Endpoint of ${id}`),
        topic: mustTarget(t, r.Properties?.TopicArn, `TopicArn of ${id}`),
        properties: r.Properties!,
      }));
  }

  it('subscribes each source queue once, to the order events topic', () => {
    const subscriptions = queueSubscriptions();
    expect(subscriptions.map((s) => s.queue).sort()).toEqual(sourceQueues(t).sort());
    for (const s of subscriptions) expect(s.topic, s.id).toBe(orderEventsTopic(t));
  });

  it('delivers raw messages, filtered on the eventType and lane message attributes', () => {
    for (const s of queueSubscriptions()) {
      expect(s.properties.RawMessageDelivery, `${s.id} RawMessageDelivery`).toBe(true);
      expect(s.properties.FilterPolicyScope ?? 'MessageAttributes', `${s.id} FilterPolicyScope`).toBe('MessageAttributes');
      expect(Object.keys(s.properties.FilterPolicy ?? {}), `${s.id} FilterPolicy keys`).toEqual(['eventType', 'lane']);
    }
  });

  it("splits each consumer's events between its two queues on `lane`: express to one, everything else to the other", () => {
    const laneFilter = (queue: string) => queueSubscriptions().find((s) => s.queue === queue)!.properties.FilterPolicy.lane;
    for (const consumer of ['Inventory', 'Payment', 'Shipping']) {
      expect(laneFilter(`${consumer}ExpressQueue`), consumer).toEqual(['express']);
      // `anything-but` alone would drop a message with no lane attribute (SNS matches it only on
      // an attribute that is there): `exists: false` takes those, so none matches neither queue.
      expect(laneFilter(`${consumer}Queue`), consumer).toEqual([{ 'anything-but': ['express'] }, { exists: false }]);
    }
  });

  it("gives each consumer's express queue its own mapping to the same function, with its own concurrency", () => {
    const mappings = eventSourceMappings(t);
    for (const consumer of ['Inventory', 'Payment', 'Shipping']) {
      const [standard, express] = [`${consumer}Queue`, `${consumer}ExpressQueue`].map(
        (queue) => mappings.find((m) => m.queueId === queue)!,
      );
      expect(express!.functionId).toBe(standard!.functionId);
      expect(express!.properties.ScalingConfig).toEqual({ MaximumConcurrency: Number(stack.params.expressMaximumConcurrency) });
      expect(standard!.properties.ScalingConfig).toEqual({ MaximumConcurrency: Number(stack.params.maximumConcurrency) });
      expect(express!.properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    }
  });

  it.each(Object.entries(expectedEventTypes))('%s receives exactly %j', (queue, eventTypes) => {
    const subscription = queueSubscriptions().find((s) => s.queue === queue);
    expect(subscription, `no subscription for ${queue}`).toBeDefined();
    const filter = asArray<unknown>(subscription!.properties.FilterPolicy.eventType);
    for (const value of filter) expect(typeof value, `${queue} filters on a non-exact match ${JSON.stringify(value)}`).toBe('string');
    expect([...filter].sort()).toEqual(eventTypes);
  });
});

describe('queue policies', () => {
  function policiesOf(queue: string): { id: string; statements: Statement[] }[] {
    return resourcesOfType(t, 'AWS::SQS::QueuePolicy')
      .filter(([, r]) => asArray(r.Properties?.Queues).some((q) => targetId(q) === queue))
      .map(([id, r]) => ({ id, statements: statementsOf(t, r.Properties?.PolicyDocument) }));
  }

  function allQueues(): string[] {
    return resourcesOfType(t, 'AWS::SQS::Queue').map(([id]) => id);
  }

  it('every queue has exactly one queue policy (a second one would replace the first)', () => {
    for (const queue of allQueues())
      expect(
        policiesOf(queue).map((p) => p.id),
        queue,
      ).toHaveLength(1);
  });

  it('a source queue allows only the order events topic to send, and nothing else', () => {
    const topic = orderEventsTopic(t);
    for (const queue of sourceQueues(t)) {
      const [policy] = policiesOf(queue);
      const allows = policy!.statements.filter((s) => s.Effect === 'Allow');
      expect(allows, `${queue} Allow statements`).toHaveLength(1);
      const allow = allows[0]!;
      expect(allow.Principal, `${queue} principal`).toEqual({ Service: 'sns.amazonaws.com' });
      expect(actionsOf(allow), `${queue} actions`).toEqual(['sqs:SendMessage']);
      expect(allow.NotAction).toBeUndefined();
      expect(asArray(allow.Resource).map(targetId), `${queue} resource`).toEqual([queue]);
      const conditions = Object.entries(allow.Condition ?? {});
      expect(conditions, `${queue} conditions`).toHaveLength(1);
      const [operator, keys] = conditions[0]!;
      expect(['ArnEquals', 'ArnLike', 'StringEquals']).toContain(operator);
      expect(Object.keys(keys)).toEqual(['aws:SourceArn']);
      expect(asArray(keys['aws:SourceArn']).map((v) => mustTarget(t, v, `${queue} aws:SourceArn`))).toEqual([topic]);
    }
  });

  it('a dead-letter queue allows nobody through its policy', () => {
    for (const queue of sourceQueues(t)) {
      const dlq = deadLetterQueueOf(t, queue)!;
      const allows = policiesOf(dlq)
        .flatMap((p) => p.statements)
        .filter((s) => s.Effect === 'Allow');
      expect(allows, `${dlq} Allow statements`).toEqual([]);
    }
  });

  it('every queue, dead-letter queues included, denies requests not sent over TLS', () => {
    for (const queue of allQueues()) {
      const denies = policiesOf(queue)
        .flatMap((p) => p.statements)
        .filter(
          (s) =>
            s.Effect === 'Deny' &&
            (s.Principal === '*' || JSON.stringify(s.Principal) === JSON.stringify({ AWS: '*' })) &&
            actionsOf(s).some((a) => a === 'sqs:*' || a === '*') &&
            asArray(s.Resource).some((r) => targetId(r) === queue) &&
            String(s.Condition?.Bool?.['aws:SecureTransport']) === 'false',
        );
      expect(denies, `${queue} has no Deny on aws:SecureTransport false`).toHaveLength(1);
    }
  });
});
