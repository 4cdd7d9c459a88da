import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSubscriptionAttributesCommand, ListSubscriptionsByTopicCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import type { SpyMessage } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig, LOCAL_ACCOUNT_ID, LOCAL_REGION, startEmulators, type Emulators } from '../../local/emulators.js';
import { packageStack } from '../../local/package-stack.js';
import { provisionStack, type ProvisionedResources } from '../../local/provision.js';
import { isRecord, readTemplate, StackResolver, type CfnTemplate } from '../../local/template.js';

// The stack provisioned from the packaged CloudFormation template (`serverless package --stage
// local`) into the emulators: the queues, subscriptions and filter policies the template declares
// are the ones that exist, and SNS fan-out delivers by event type as the template says.

let emulators: Emulators;
let sqs: SQSClient;
let sns: SNSClient;
let dynamodb: DynamoDBClient;
let s3: S3Client;
let template: CfnTemplate;
let resolver: StackResolver;
let resources: ProvisionedResources;

/** Template resources of a type, with their properties resolved. */
function declared(type: string): Array<{ id: string; properties: Record<string, unknown> }> {
  return resolver
    .resources(type)
    .map(([id, resource]) => ({ id, properties: resolver.resolve(resource.Properties ?? {}) as Record<string, unknown> }));
}

/** SQS queue subscriptions of the order events topic, as the template declares them. */
function queueSubscriptions() {
  return declared('AWS::SNS::Subscription').filter(
    ({ properties }) => properties.Protocol === 'sqs' && properties.TopicArn === resources.topicArn,
  );
}

async function receiveAll(queueUrl: string, waitSeconds: number): Promise<Message[]> {
  const { Messages } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: waitSeconds,
      MessageAttributeNames: ['All'],
    }),
  );
  return Messages ?? [];
}

beforeAll(async () => {
  const packaged = await packageStack({ stage: 'local' });
  template = await readTemplate(packaged.templatePath);
  resolver = new StackResolver(template, {
    region: LOCAL_REGION,
    accountId: LOCAL_ACCOUNT_ID,
    partition: 'aws',
    stackName: `${packaged.serviceName}-local`,
  });
  emulators = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
  sqs = new SQSClient(clientConfig(emulators.endpoints.sqs));
  sns = new SNSClient(clientConfig(emulators.endpoints.sns));
  dynamodb = new DynamoDBClient(clientConfig(emulators.endpoints.dynamodb));
  s3 = new S3Client({ ...clientConfig(emulators.endpoints.s3), forcePathStyle: true });
  resources = await provisionStack(resolver, { sqs, sns, dynamodb, s3 });
});

afterAll(async () => {
  for (const client of [sqs, sns, dynamodb, s3]) client?.destroy();
  await emulators?.stop();
});

describe('queues', () => {
  it('creates every queue of the template with the attributes and redrive policy it declares', async () => {
    const queues = declared('AWS::SQS::Queue');
    // A queue per consumer, each with a redrive policy, and as many dead-letter queues, one each.
    const redrivenQueues = queues.filter(({ properties }) => isRecord(properties.RedrivePolicy));
    const deadLetterQueues = queues.filter(({ properties }) => !isRecord(properties.RedrivePolicy));
    expect(redrivenQueues.length).toBeGreaterThan(0);
    expect(deadLetterQueues).toHaveLength(redrivenQueues.length);
    const attributesOf = async (properties: Record<string, unknown>) => {
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: String(properties.QueueName) }));
      return (await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }))).Attributes ?? {};
    };
    /** The template declares the property, and the emulator's queue has it with that value. */
    const expectDeclaredAndApplied = (properties: Record<string, unknown>, attributes: Record<string, string>, names: string[]) => {
      for (const name of names) {
        expect(properties, `${String(properties.QueueName)} in the template`).toHaveProperty(name);
        expect(attributes[name], `${String(properties.QueueName)} on the emulator`).toBe(String(properties[name]));
      }
    };

    for (const { properties } of redrivenQueues) {
      const attributes = await attributesOf(properties);
      // (Encryption, SqsManagedSseEnabled, is not emulated: fauxqs keeps no such attribute.)
      expectDeclaredAndApplied(properties, attributes, ['VisibilityTimeout', 'ReceiveMessageWaitTimeSeconds']);
      const declaredRedrive = properties.RedrivePolicy as { deadLetterTargetArn: unknown; maxReceiveCount: unknown };
      expect(declaredRedrive).toMatchObject({ deadLetterTargetArn: expect.any(String), maxReceiveCount: expect.anything() });
      const redrive = JSON.parse(attributes.RedrivePolicy ?? '{}') as { deadLetterTargetArn: string; maxReceiveCount: number | string };
      expect(redrive.deadLetterTargetArn).toBe(declaredRedrive.deadLetterTargetArn);
      expect(Number(redrive.maxReceiveCount)).toBe(Number(declaredRedrive.maxReceiveCount));
      // The dead-letter queue it names is one of the template's, and exists.
      const dlq = deadLetterQueues.find(({ id }) => resolver.arn(id) === redrive.deadLetterTargetArn);
      expect(dlq, `the DLQ of ${String(properties.QueueName)}`).toBeDefined();
      await expect(sqs.send(new GetQueueUrlCommand({ QueueName: String(dlq!.properties.QueueName) }))).resolves.toMatchObject({
        QueueUrl: expect.any(String),
      });
    }
    for (const { properties } of deadLetterQueues) {
      const attributes = await attributesOf(properties);
      expectDeclaredAndApplied(properties, attributes, ['MessageRetentionPeriod']);
      expect(attributes.RedrivePolicy).toBeUndefined();
    }
    // Every dead-letter queue serves a stage queue: none is left over.
    const named = redrivenQueues
      .map(({ properties }) => (properties.RedrivePolicy as { deadLetterTargetArn: string }).deadLetterTargetArn)
      .sort();
    expect(named).toEqual(deadLetterQueues.map(({ id }) => resolver.arn(id)).sort());
    // Every consumer queue has a DLQ: a poison message never blocks a queue forever.
    const consumerQueues = Object.values(resources.queues).filter((queue) => !queue.logicalId.includes('DeadLetter'));
    expect(consumerQueues.length).toBeGreaterThanOrEqual(3);
    for (const queue of consumerQueues) expect(queue.dlqUrl).toBeDefined();
  });
});

describe('subscriptions', () => {
  it('subscribes each consumer queue with raw delivery and the filter policy of the template', async () => {
    const expected = queueSubscriptions();
    // A standard and an express queue per consumer.
    expect(expected).toHaveLength(6);
    const { Subscriptions = [] } = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: resources.topicArn }));
    expect(Subscriptions.map((subscription) => subscription.Endpoint).sort()).toEqual(
      expected.map(({ properties }) => properties.Endpoint).sort(),
    );
    for (const { properties } of expected) {
      const subscription = Subscriptions.find((candidate) => candidate.Endpoint === properties.Endpoint)!;
      const { Attributes = {} } = await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: subscription.SubscriptionArn }));
      expect(Attributes.RawMessageDelivery).toBe('true');
      expect(properties).toHaveProperty('FilterPolicyScope', 'MessageAttributes');
      expect(Attributes.FilterPolicyScope).toBe(properties.FilterPolicyScope);
      expect(JSON.parse(Attributes.FilterPolicy ?? 'null')).toEqual(properties.FilterPolicy);
    }
  });

  it('fans an OrderPlaced event out to the three consumer queues, and an event no filter names to none', async () => {
    const queueOf = (endpointArn: unknown) => Object.values(resources.queues).find((queue) => queue.arn === endpointArn)!;
    const consumerUrls = queueSubscriptions().map(({ properties }) => queueOf(properties.Endpoint).url);
    // Published without a lane attribute: the standard queues take it, the express ones do not
    // (test/integration/express-lane.test.ts has the lanes).
    const [expressUrls, standardUrls] = [true, false].map((express) =>
      queueSubscriptions()
        .map(({ properties }) => queueOf(properties.Endpoint))
        .filter((queue) => queue.logicalId.endsWith('ExpressQueue') === express)
        .map((queue) => queue.url),
    );
    expect(standardUrls).toHaveLength(3);
    const dlqUrls = Object.values(resources.queues).flatMap((queue) => (queue.dlqUrl ? [queue.dlqUrl] : []));

    const body = JSON.stringify({ eventType: 'OrderPlaced', orderId: 'ord_provision_test' });
    await sns.send(
      new PublishCommand({
        TopicArn: resources.topicArn,
        Message: body,
        MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderPlaced' } },
      }),
    );
    for (const url of expressUrls!) expect(emulators.fauxqs.inspectQueue(url.split('/').pop()!)!.messages.ready).toHaveLength(0);
    for (const url of standardUrls!) {
      const messages = await receiveAll(url, 2);
      expect(messages).toHaveLength(1);
      // Raw delivery: the queue holds the published body itself, not an SNS envelope.
      expect(messages[0]!.Body).toBe(body);
      expect(messages[0]!.MessageAttributes?.eventType?.StringValue).toBe('OrderPlaced');
    }

    await sns.send(
      new PublishCommand({
        TopicArn: resources.topicArn,
        Message: JSON.stringify({ eventType: 'OrderShredded' }),
        MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderShredded' } },
      }),
    );
    // Published messages are delivered synchronously by fauxqs: nothing now means nothing ever.
    for (const url of [...consumerUrls, ...dlqUrls]) {
      const name = url.split('/').pop()!;
      const state = emulators.fauxqs.inspectQueue(name)!;
      expect(state.messages.ready).toHaveLength(0);
      expect(state.messages.delayed).toHaveLength(0);
    }
  });
});

describe('filter policies, exercised', () => {
  it('delivers OrderConfirmed to shipping alone, never to inventory or payment', async () => {
    const queueName = (logicalId: string) => Object.entries(resources.queues).find(([, queue]) => queue.logicalId === logicalId)![0];
    const [inventory, payment, shipping] = ['InventoryQueue', 'PaymentQueue', 'ShippingQueue'].map(queueName) as [string, string, string];
    const orderId = 'ord_provision_confirmed';
    const publish = (eventType: string) =>
      sns.send(
        new PublishCommand({
          TopicArn: resources.topicArn,
          Message: JSON.stringify({ eventType, orderId }),
          MessageAttributes: { eventType: { DataType: 'String', StringValue: eventType } },
        }),
      );
    await publish('OrderConfirmed');
    // A fence: OrderCancelled goes to all three queues, after OrderConfirmed. Once it has reached
    // a queue, an OrderConfirmed bound for that queue would have reached it first.
    await publish('OrderCancelled');
    const arrived = (queue: string, eventType: string) => (message: SpyMessage) =>
      message.service === 'sqs' && message.queueName === queue && message.body === JSON.stringify({ eventType, orderId });
    const spy = emulators.fauxqs.spy;
    await spy.waitForMessage(arrived(shipping, 'OrderConfirmed'), 'published', 5000);
    for (const fenced of [inventory, payment]) {
      await spy.waitForMessage(arrived(fenced, 'OrderCancelled'), 'published', 5000);
      expect(spy.checkForMessage(arrived(fenced, 'OrderConfirmed')), fenced).toBeUndefined();
      // And what the queue holds for this order is the fence alone.
      const held = emulators.fauxqs.inspectQueue(fenced)!.messages.ready.filter((message) => message.body.includes(orderId));
      expect(held.map((message) => JSON.parse(message.body) as unknown)).toEqual([{ eventType: 'OrderCancelled', orderId }]);
    }
  });
});

describe('tables', () => {
  it('creates every table of the template, and says once that TTL is not emulated', () => {
    const tables = declared('AWS::DynamoDB::Table');
    expect(Object.values(resources.tables).sort()).toEqual(tables.map(({ properties }) => String(properties.TableName)).sort());
    const withTtl = tables.filter(
      ({ properties }) => isRecord(properties.TimeToLiveSpecification) && properties.TimeToLiveSpecification.Enabled === true,
    );
    // The idempotency records expire through TTL (test/integration/idempotency.test.ts checks the attribute).
    expect(withTtl.map(({ id }) => id)).toContain('IdempotencyTable');
    const notes = resources.notes.filter((note) => note.includes('TTL'));
    expect(notes).toHaveLength(1);
    for (const { id, properties } of withTtl) {
      expect(notes[0]).toContain(`${id}.${String((properties.TimeToLiveSpecification as { AttributeName: unknown }).AttributeName)}`);
    }
  });
});

describe('buckets', () => {
  it('creates the claim-check bucket the template names, path-style on fauxqs, and says its settings are not emulated', async () => {
    // The framework's deployment bucket holds the zips on AWS; locally the functions run from the package.
    const buckets = declared('AWS::S3::Bucket').filter(({ id }) => id !== 'ServerlessDeploymentBucket');
    expect(buckets.map(({ id }) => id)).toEqual(['ClaimCheckBucket']);
    expect(resources.buckets).toEqual({ ClaimCheckBucket: String(buckets[0]!.properties.BucketName) });
    const Bucket = resources.buckets.ClaimCheckBucket!;
    await s3.send(new PutObjectCommand({ Bucket, Key: 'order-events/provision-test.json', Body: '{}' }));
    const { Body } = await s3.send(new GetObjectCommand({ Bucket, Key: 'order-events/provision-test.json' }));
    expect(await Body!.transformToString()).toBe('{}');
    expect(resources.notes.filter((note) => note.includes('ClaimCheckBucket'))).toHaveLength(1);
  });
});
