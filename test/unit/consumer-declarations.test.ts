import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

// What resources/consumer-resources.cjs makes of a consumer's declaration (resources/consumers.cjs),
// and the declarations it refuses, before `serverless package` does anything with them. The
// template it leads to is test/infra's; here, a declaration of the test's own.

// biome-ignore lint/suspicious/noExplicitAny: a generated resource's properties are walked into by the assertions
type Json = any;

interface Generator {
  functions(
    context: unknown,
    declared: Record<string, unknown>,
  ): Record<string, { memorySize: number; environment: Record<string, unknown>; events: Array<{ sqs: Record<string, unknown> }> }>;
  resources(
    context: unknown,
    declared: Record<string, unknown>,
  ): { Resources: Record<string, { Type: string; Properties: Record<string, Json> }>; Outputs: Record<string, unknown> };
}
const generator = createRequire(import.meta.url)('../../resources/consumer-resources.cjs') as Generator;

const notify = {
  handler: 'functions/notify.handler',
  eventTypes: ['OrderConfirmed', 'OrderCancelled'],
  tables: { PaymentTokensTable: ['GetItem'], 'OrdersTable/index/UnfinishedOrders': ['Query'] },
  batchSize: 5,
};

describe('a consumer declaration', () => {
  it('gives the function a variable per table, its own overrides and the params elsewhere', () => {
    const fn = generator.functions(undefined, { notify }).notify!;
    expect(fn.environment).toEqual({
      PAYMENT_TOKENS_TABLE: { Ref: 'PaymentTokensTable' },
      // Every consumer resolves claim-check pointers (lib/claim-check.ts).
      CLAIM_CHECK_BUCKET: { Ref: 'ClaimCheckBucket' },
      CLAIM_CHECK_THRESHOLD_BYTES: '${param:claimCheckThresholdBytes}',
      RETRY_BACKOFF_BASE_SECONDS: '${param:retryBackoffBaseSeconds}',
      CONSUMER_TIMEOUT_SECONDS: '${self:custom.consumerTimeoutSeconds}',
    });
    // 256 MB unless the declaration says otherwise; a size Lambda refuses fails the packaging.
    expect(fn.memorySize).toBe(256);
    expect(generator.functions(undefined, { notify: { ...notify, memorySize: 512 } }).notify!.memorySize).toBe(512);
    expect(() => generator.functions(undefined, { notify: { ...notify, memorySize: 64 } })).toThrow(/memorySize/);
    expect(fn.events[0]!.sqs).toMatchObject({
      arn: { 'Fn::GetAtt': ['NotifyQueue', 'Arn'] },
      batchSize: 5,
      maximumBatchingWindow: '${param:batchWindowSeconds}',
      maximumConcurrency: '${param:maximumConcurrency}',
      functionResponseType: 'ReportBatchItemFailures',
    });
  });

  it('grants its role the actions on each table it names, and no publishing unless it publishes', () => {
    const { Resources, Outputs } = generator.resources(undefined, { notify });
    const statements = Resources.NotifyRole!.Properties.Policies[0].PolicyDocument.Statement as Array<Record<string, unknown>>;
    expect(statements).toEqual(
      expect.arrayContaining([
        { Effect: 'Allow', Action: ['dynamodb:GetItem'], Resource: { 'Fn::GetAtt': ['PaymentTokensTable', 'Arn'] } },
        { Effect: 'Allow', Action: ['dynamodb:Query'], Resource: { 'Fn::Sub': '${OrdersTable.Arn}/index/UnfinishedOrders' } },
      ]),
    );
    expect(JSON.stringify(statements)).not.toContain('sns:Publish');
    expect(Resources.NotifySubscription!.Properties.FilterPolicy.eventType).toEqual(['OrderConfirmed', 'OrderCancelled']);
    expect(Object.keys(Outputs)).toEqual([
      'NotifyQueueUrl',
      'NotifyDeadLetterQueueUrl',
      'NotifyExpressQueueUrl',
      'NotifyExpressDeadLetterQueueUrl',
    ]);

    const publishing = generator.resources(undefined, { notify: { ...notify, publishes: true } }).Resources.NotifyRole!.Properties
      .Policies[0].PolicyDocument.Statement;
    expect(publishing).toEqual(
      expect.arrayContaining([
        { Effect: 'Allow', Action: 'sns:Publish', Resource: { Ref: 'OrderEventsTopic' } },
        '${self:custom.topicKeyGrant}',
      ]),
    );
    expect(generator.functions(undefined, { notify: { ...notify, publishes: true } }).notify!.environment.ORDER_EVENTS_TOPIC_ARN).toEqual({
      Ref: 'OrderEventsTopic',
    });
  });

  it('lets every consumer read claim-check objects, and only a saga participant delete them', () => {
    const statementsOf = (declaration: Record<string, unknown>) =>
      generator.resources(undefined, { notify: declaration }).Resources.NotifyRole!.Properties.Policies[0].PolicyDocument
        .Statement as Array<Record<string, unknown>>;
    const objects = { 'Fn::Sub': '${ClaimCheckBucket.Arn}/order-events/*' };
    // Listing the prefix makes S3 answer 404, not 403, for a deleted object (lib/claim-check.ts).
    const list = {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: { 'Fn::GetAtt': ['ClaimCheckBucket', 'Arn'] },
      Condition: { StringLike: { 's3:prefix': 'order-events/*' } },
    };
    const s3 = (statements: Array<Record<string, unknown>>) => statements.filter((s) => (JSON.stringify(s.Action) ?? '').includes('s3:'));
    expect(s3(statementsOf(notify))).toEqual([{ Effect: 'Allow', Action: 's3:GetObject', Resource: objects }, list]);
    expect(s3(statementsOf({ ...notify, participant: true }))).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:DeleteObject'], Resource: objects },
      list,
    ]);
    expect(() => statementsOf({ ...notify, participant: 'yes' })).toThrow(/participant is true or false/);
  });

  it('gives it an express lane: its own queue, dead-letter queue, filtered subscription and mapping to the same function', () => {
    const { Resources } = generator.resources(undefined, { notify });
    // The same event types; the lane attribute splits them: express to one, everything else
    // (standard, or no lane attribute at all) to the other, so no event is lost between them.
    expect(Resources.NotifyExpressSubscription!.Properties).toMatchObject({
      Endpoint: { 'Fn::GetAtt': ['NotifyExpressQueue', 'Arn'] },
      RawMessageDelivery: true,
      FilterPolicy: { eventType: ['OrderConfirmed', 'OrderCancelled'], lane: ['express'] },
    });
    expect(Resources.NotifySubscription!.Properties.FilterPolicy.lane).toEqual([{ 'anything-but': ['express'] }, { exists: false }]);
    // Its own dead-letter queue, with the same redrive policy, encryption and TLS-only policy.
    expect(Resources.NotifyExpressQueue!.Properties).toMatchObject({
      QueueName: '${self:service}-${sls:stage}-notify-express',
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': ['NotifyExpressDeadLetterQueue', 'Arn'] },
        maxReceiveCount: '${param:maxReceiveCount}',
      },
    });
    expect(Resources.NotifyExpressDeadLetterQueue!.Properties.QueueName).toBe('${self:service}-${sls:stage}-notify-express-dlq');
    expect(JSON.stringify(Resources.NotifyExpressQueuePolicy!.Properties.PolicyDocument)).toContain('DenyInsecureTransport');
    expect(JSON.stringify(Resources.NotifyExpressDeadLetterQueuePolicy!.Properties.PolicyDocument)).toContain('DenyInsecureTransport');
    // The function reads both queues: a mapping each, the express one with its own concurrency.
    const receive = (
      Resources.NotifyRole!.Properties.Policies[0].PolicyDocument.Statement as Array<{ Action: unknown; Resource: unknown }>
    ).find((statement) => Array.isArray(statement.Action) && statement.Action.includes('sqs:ReceiveMessage'));
    expect(receive!.Resource).toEqual([{ 'Fn::GetAtt': ['NotifyQueue', 'Arn'] }, { 'Fn::GetAtt': ['NotifyExpressQueue', 'Arn'] }]);
    const events = generator.functions(undefined, { notify }).notify!.events.map((event) => event.sqs);
    expect(events.map((sqs) => [sqs.arn, sqs.maximumConcurrency])).toEqual([
      [{ 'Fn::GetAtt': ['NotifyQueue', 'Arn'] }, '${param:maximumConcurrency}'],
      [{ 'Fn::GetAtt': ['NotifyExpressQueue', 'Arn'] }, '${param:expressMaximumConcurrency}'],
    ]);
    const own = generator.functions(undefined, { notify: { ...notify, expressMaximumConcurrency: 3 } }).notify!.events[1]!.sqs;
    expect(own.maximumConcurrency).toBe(3);
  });

  it.each([
    ['an unknown key', { notify: { ...notify, batchsize: 5 } }, /consumer "notify": unknown batchsize/],
    [
      'a misspelt action',
      { notify: { ...notify, tables: { PaymentTokensTable: ['Getitem'] } } },
      /consumer "notify": tables.PaymentTokensTable: unknown action Getitem/,
    ],
    [
      'an action with its prefix',
      { notify: { ...notify, tables: { PaymentTokensTable: ['dynamodb:GetItem'] } } },
      /write them without dynamodb:/,
    ],
    ['no event type', { notify: { ...notify, eventTypes: [] } }, /consumer "notify": eventTypes/],
    ['a name that is no identifier', { 'notify-me': notify }, /consumer "notify-me": a name is lowerCamelCase/],
    ['a concurrency AWS refuses', { notify: { ...notify, maximumConcurrency: 1 } }, /maximumConcurrency is a whole number from 2 to 1000/],
    [
      'an express concurrency AWS refuses',
      { notify: { ...notify, expressMaximumConcurrency: 1 } },
      /expressMaximumConcurrency is a whole number from 2 to 1000/,
    ],
    [
      "a name that would take another's express lane",
      { notify, notifyExpress: notify },
      /consumer "notifyExpress": its resources would take the names of notify's express lane/,
    ],
    [
      'a handler without its export',
      { notify: { ...notify, handler: 'functions/notify' } },
      /handler is `<file without extension>.<export>`/,
    ],
  ])('is refused for %s, naming the consumer', (_, declared, message) => {
    expect(() => generator.functions(undefined, declared)).toThrow(message);
  });
});

describe('a consumer declaration on FIFO queues (queueType=fifo)', () => {
  const fifo = { queueType: 'fifo' };

  it('makes its queue and dead-letter queue FIFO, deduplicated by explicit id, in high throughput mode', () => {
    const { Resources } = generator.resources(fifo, { notify });
    expect(Resources.NotifyQueue!.Properties).toMatchObject({
      QueueName: '${self:service}-${sls:stage}-notify.fifo',
      FifoQueue: true,
      ContentBasedDeduplication: false,
      DeduplicationScope: 'messageGroup',
      FifoThroughputLimit: 'perMessageGroupId',
    });
    expect(Resources.NotifyDeadLetterQueue!.Properties).toMatchObject({
      QueueName: '${self:service}-${sls:stage}-notify-dlq.fifo',
      FifoQueue: true,
    });
    // The dead-letter queue admits redrives from the FIFO queue's own ARN.
    expect(JSON.stringify(Resources.NotifyDeadLetterQueue!.Properties.RedriveAllowPolicy)).toContain(
      ':${self:service}-${sls:stage}-notify.fifo',
    );
    // The subscription keeps its filter and raw delivery.
    expect(Resources.NotifySubscription!.Properties).toMatchObject({
      RawMessageDelivery: true,
      FilterPolicy: { eventType: ['OrderConfirmed', 'OrderCancelled'] },
    });
    // The express lane is FIFO too: an order's events all take its lane, so they stay in order.
    expect(Resources.NotifyExpressQueue!.Properties).toMatchObject({
      QueueName: '${self:service}-${sls:stage}-notify-express.fifo',
      FifoQueue: true,
      DeduplicationScope: 'messageGroup',
    });
    expect(Resources.NotifyExpressDeadLetterQueue!.Properties).toMatchObject({
      QueueName: '${self:service}-${sls:stage}-notify-express-dlq.fifo',
      FifoQueue: true,
    });
  });

  it('gives its event source mapping no batching window, which AWS refuses on FIFO queues', () => {
    const sqs = generator.functions(fifo, { notify }).notify!.events[0]!.sqs;
    expect(sqs).not.toHaveProperty('maximumBatchingWindow');
    expect(sqs).toMatchObject({
      batchSize: 5,
      maximumConcurrency: '${param:maximumConcurrency}',
      functionResponseType: 'ReportBatchItemFailures',
    });
  });

  it.each([
    ['a batch over 10', { notify: { ...notify, batchSize: 11 } }, /consumer "notify": batchSize is at most 10 on a FIFO queue/],
    [
      'a batching window',
      { notify: { ...notify, batchWindowSeconds: 1 } },
      /consumer "notify": batchWindowSeconds: Lambda supports no batching window on a FIFO queue/,
    ],
  ])('is refused for %s, naming the consumer', (_, declared, message) => {
    expect(() => generator.functions(fifo, declared)).toThrow(message);
    // The same declaration is fine on standard queues.
    expect(() => generator.functions({ queueType: 'standard' }, declared)).not.toThrow();
  });

  it('refuses a queue type that is neither standard nor fifo', () => {
    expect(() => generator.functions({ queueType: 'FIFO' }, { notify })).toThrow(/param queueType is standard or fifo, not "FIFO"/);
  });
});
