import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetSubscriptionAttributesCommand, ListSubscriptionsByTopicCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
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
let template: CfnTemplate;
let resolver: StackResolver;
let resources: ProvisionedResources;

/** Template resources of a type, with their properties resolved. */
function declared(type: string): Array<{ id: string; properties: Record<string, unknown> }> {
  return resolver.resources(type).map(([id, resource]) => ({ id, properties: resolver.resolve(resource.Properties ?? {}) as Record<string, unknown> }));
}

/** SQS queue subscriptions of the order events topic, as the template declares them. */
function queueSubscriptions() {
  return declared('AWS::SNS::Subscription').filter(
    ({ properties }) => properties.Protocol === 'sqs' && properties.TopicArn === resources.topicArn,
  );
}

async function receiveAll(queueUrl: string, waitSeconds: number): Promise<Message[]> {
  const { Messages } = await sqs.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds, MessageAttributeNames: ['All'] }),
  );
  return Messages ?? [];
}

beforeAll(async () => {
  const packaged = await packageStack({ stage: 'local' });
  template = await readTemplate(packaged.templatePath);
  resolver = new StackResolver(template, { region: LOCAL_REGION, accountId: LOCAL_ACCOUNT_ID, partition: 'aws', stackName: `${packaged.serviceName}-local` });
  emulators = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
  sqs = new SQSClient(clientConfig(emulators.endpoints.sqs));
  sns = new SNSClient(clientConfig(emulators.endpoints.sns));
  dynamodb = new DynamoDBClient(clientConfig(emulators.endpoints.dynamodb));
  resources = await provisionStack(resolver, { sqs, sns, dynamodb });
});

afterAll(async () => {
  [sqs, sns, dynamodb].forEach((client) => client?.destroy());
  await emulators?.stop();
});

describe('queues', () => {
  it('creates every queue of the template with its visibility timeout and redrive policy', async () => {
    const queues = declared('AWS::SQS::Queue');
    expect(queues.length).toBeGreaterThanOrEqual(6);
    for (const { properties } of queues) {
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: String(properties.QueueName) }));
      const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }));
      if (properties.VisibilityTimeout !== undefined) expect(Attributes.VisibilityTimeout).toBe(String(properties.VisibilityTimeout));
      if (properties.MessageRetentionPeriod !== undefined) expect(Attributes.MessageRetentionPeriod).toBe(String(properties.MessageRetentionPeriod));
      if (isRecord(properties.RedrivePolicy)) {
        const redrive = JSON.parse(Attributes.RedrivePolicy ?? '{}') as { deadLetterTargetArn: string; maxReceiveCount: number | string };
        expect(redrive.deadLetterTargetArn).toBe(properties.RedrivePolicy.deadLetterTargetArn);
        expect(Number(redrive.maxReceiveCount)).toBe(Number(properties.RedrivePolicy.maxReceiveCount));
        // The dead-letter queue it names exists.
        const dlqName = String(redrive.deadLetterTargetArn).split(':').pop()!;
        await expect(sqs.send(new GetQueueUrlCommand({ QueueName: dlqName }))).resolves.toMatchObject({ QueueUrl: expect.any(String) });
      } else {
        expect(Attributes.RedrivePolicy).toBeUndefined();
      }
    }
    // Every consumer queue has a DLQ: a poison message never blocks a queue forever.
    const consumerQueues = Object.values(resources.queues).filter((queue) => !queue.logicalId.includes('DeadLetter'));
    expect(consumerQueues.length).toBeGreaterThanOrEqual(3);
    for (const queue of consumerQueues) expect(queue.dlqUrl).toBeDefined();
  });
});

describe('subscriptions', () => {
  it('subscribes each consumer queue with raw delivery and the filter policy of the template', async () => {
    const expected = queueSubscriptions();
    expect(expected).toHaveLength(3);
    const { Subscriptions = [] } = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: resources.topicArn }));
    expect(Subscriptions.map((subscription) => subscription.Endpoint).sort()).toEqual(expected.map(({ properties }) => properties.Endpoint).sort());
    for (const { properties } of expected) {
      const subscription = Subscriptions.find((candidate) => candidate.Endpoint === properties.Endpoint)!;
      const { Attributes = {} } = await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: subscription.SubscriptionArn }));
      expect(Attributes.RawMessageDelivery).toBe('true');
      expect(Attributes.FilterPolicyScope ?? 'MessageAttributes').toBe(properties.FilterPolicyScope ?? 'MessageAttributes');
      expect(JSON.parse(Attributes.FilterPolicy ?? 'null')).toEqual(properties.FilterPolicy);
    }
  });

  it('fans an OrderPlaced event out to the three consumer queues, and an event no filter names to none', async () => {
    const queueUrlOf = (endpointArn: unknown) => Object.values(resources.queues).find((queue) => queue.arn === endpointArn)!.url;
    const consumerUrls = queueSubscriptions().map(({ properties }) => queueUrlOf(properties.Endpoint));
    const dlqUrls = Object.values(resources.queues).flatMap((queue) => (queue.dlqUrl ? [queue.dlqUrl] : []));

    const body = JSON.stringify({ eventType: 'OrderPlaced', orderId: 'ord_provision_test' });
    await sns.send(
      new PublishCommand({
        TopicArn: resources.topicArn,
        Message: body,
        MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderPlaced' } },
      }),
    );
    for (const url of consumerUrls) {
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

describe('tables', () => {
  it('creates every table of the template, and says once that TTL is not emulated', () => {
    const tables = declared('AWS::DynamoDB::Table');
    expect(Object.values(resources.tables).sort()).toEqual(tables.map(({ properties }) => String(properties.TableName)).sort());
    const withTtl = tables.filter(({ properties }) => isRecord(properties.TimeToLiveSpecification));
    expect(resources.notes.filter((note) => note.includes('TTL'))).toHaveLength(withTtl.length > 0 ? 1 : 0);
  });
});
