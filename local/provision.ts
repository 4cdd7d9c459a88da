// Creates the stack's queues, topics, subscriptions, tables and buckets in the emulators, from the
// CloudFormation template, through the AWS SDK (the calls a user or CloudFormation would make), in
// dependency order: a dead-letter queue before the queue whose redrive policy names it.

import { CreateTableCommand, DescribeTableCommand, type CreateTableCommandInput, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import { CreateQueueCommand, SetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { creationOrder, isRecord, type StackResolver } from './template.js';

export interface ProvisionedQueue {
  logicalId: string;
  url: string;
  arn: string;
  /** URL of the dead-letter queue named by the queue's redrive policy. */
  dlqUrl?: string;
}

export interface ProvisionedResources {
  /** By queue name. */
  queues: Record<string, ProvisionedQueue>;
  /** Topic ARN by logical id. */
  topics: Record<string, string>;
  /** The topic that SQS queues subscribe to (the order events topic). */
  topicArn: string | undefined;
  /** Table name by logical id. */
  tables: Record<string, string>;
  /** Subscription ARN by logical id. */
  subscriptions: Record<string, string>;
  /** Bucket name by logical id. */
  buckets: Record<string, string>;
  /** What could not be reproduced locally, one line each. */
  notes: string[];
}

export interface AwsClients {
  sqs: SQSClient;
  sns: SNSClient;
  dynamodb: DynamoDBClient;
  s3: S3Client;
}

const PROVISIONED_TYPES = [
  'AWS::SQS::Queue',
  'AWS::SNS::Topic',
  'AWS::SNS::Subscription',
  'AWS::SQS::QueuePolicy',
  'AWS::DynamoDB::Table',
  'AWS::S3::Bucket',
];

/** The framework's bucket for the function zips on AWS: locally they run from the package directory. */
const DEPLOYMENT_BUCKET = 'ServerlessDeploymentBucket';

/** CloudFormation queue properties that are SQS queue attributes of the same name. */
const QUEUE_ATTRIBUTES = [
  'DelaySeconds',
  'MaximumMessageSize',
  'MessageRetentionPeriod',
  'ReceiveMessageWaitTimeSeconds',
  'VisibilityTimeout',
  'KmsMasterKeyId',
  'KmsDataKeyReusePeriodSeconds',
  'SqsManagedSseEnabled',
  'FifoQueue',
  'ContentBasedDeduplication',
  'DeduplicationScope',
  'FifoThroughputLimit',
];
const QUEUE_JSON_ATTRIBUTES = ['RedrivePolicy', 'RedriveAllowPolicy'];
const TOPIC_ATTRIBUTES = ['DisplayName', 'KmsMasterKeyId', 'FifoTopic', 'ContentBasedDeduplication'];
const SUBSCRIPTION_ATTRIBUTES = ['RawMessageDelivery', 'FilterPolicyScope'];
const SUBSCRIPTION_JSON_ATTRIBUTES = ['FilterPolicy', 'RedrivePolicy', 'DeliveryPolicy'];

export async function provisionStack(resolver: StackResolver, clients: AwsClients): Promise<ProvisionedResources> {
  const result: ProvisionedResources = {
    queues: {},
    topics: {},
    topicArn: undefined,
    tables: {},
    subscriptions: {},
    buckets: {},
    notes: [],
  };
  const bucketSettings: string[] = [];
  const ids = Object.keys(resolver.template.Resources).filter((id) => {
    const resource = resolver.template.Resources[id]!;
    return PROVISIONED_TYPES.includes(resource.Type) && resolver.isCreated(resource) && id !== DEPLOYMENT_BUCKET;
  });
  const ttl: string[] = [];
  for (const id of creationOrder(resolver, ids)) {
    const resource = resolver.resource(id);
    const properties = resource.Properties ?? {};
    switch (resource.Type) {
      case 'AWS::SQS::Queue':
        await createQueue(id, properties, resolver, clients.sqs, result);
        break;
      case 'AWS::SNS::Topic': {
        const attributes = stringAttributes(resolver, properties, TOPIC_ATTRIBUTES, []);
        const { TopicArn } = await clients.sns.send(new CreateTopicCommand({ Name: resolver.physicalName(id), Attributes: attributes }));
        if (!TopicArn) throw new Error(`CreateTopic ${id} returned no ARN`);
        resolver.setPhysical(id, { ref: TopicArn, attributes: { Arn: TopicArn, TopicArn } });
        result.topics[id] = TopicArn;
        break;
      }
      case 'AWS::SNS::Subscription': {
        const protocol = resolver.resolveString(properties.Protocol, `${id}.Protocol`);
        if (protocol !== 'sqs') {
          result.notes.push(`${id}: ${protocol} subscriptions are not emulated (only sqs)`);
          break;
        }
        const topicArn = resolver.resolveString(properties.TopicArn, `${id}.TopicArn`);
        const { SubscriptionArn } = await clients.sns.send(
          new SubscribeCommand({
            TopicArn: topicArn,
            Protocol: protocol,
            Endpoint: resolver.resolveString(properties.Endpoint, `${id}.Endpoint`),
            Attributes: stringAttributes(resolver, properties, SUBSCRIPTION_ATTRIBUTES, SUBSCRIPTION_JSON_ATTRIBUTES),
            ReturnSubscriptionArn: true,
          }),
        );
        result.subscriptions[id] = SubscriptionArn ?? '';
        resolver.setPhysical(id, { ref: SubscriptionArn ?? id });
        result.topicArn ??= topicArn;
        break;
      }
      case 'AWS::SQS::QueuePolicy': {
        // Stored, not enforced, by fauxqs: it shows in get-queue-attributes as it would on AWS.
        const policy = JSON.stringify(resolver.resolve(properties.PolicyDocument));
        const queueUrls = resolver.resolve(properties.Queues);
        for (const url of Array.isArray(queueUrls) ? queueUrls : []) {
          await clients.sqs.send(new SetQueueAttributesCommand({ QueueUrl: String(url), Attributes: { Policy: policy } }));
        }
        break;
      }
      case 'AWS::DynamoDB::Table': {
        const name = await createTable(id, properties, resolver, clients.dynamodb);
        result.tables[id] = name;
        const spec = resolver.resolve(properties.TimeToLiveSpecification);
        if (isRecord(spec) && spec.Enabled) ttl.push(`${id}.${String(spec.AttributeName)}`);
        break;
      }
      case 'AWS::S3::Bucket': {
        const name = resolver.physicalName(id);
        await clients.s3.send(new CreateBucketCommand({ Bucket: name }));
        resolver.setPhysical(id, { ref: name, attributes: { Arn: resolver.arn(id) } });
        result.buckets[id] = name;
        const configured = ['BucketEncryption', 'LifecycleConfiguration', 'PublicAccessBlockConfiguration', 'OwnershipControls'];
        if (configured.some((property) => properties[property] !== undefined)) bucketSettings.push(id);
        break;
      }
    }
  }
  if (bucketSettings.length > 0) {
    // fauxqs stores objects and nothing else of a bucket's configuration.
    result.notes.push(
      `S3 bucket settings are not emulated (encryption, lifecycle expiry, public access block, ownership): ${bucketSettings.join(', ')}`,
    );
  }
  if (ttl.length > 0) {
    result.notes.unshift(`DynamoDB TTL is not emulated (dynalite has no UpdateTimeToLive): items never expire on ${ttl.join(', ')}`);
  }
  // Each queue's DLQ, for callers that look at what ended up there.
  const byArn = new Map(Object.values(result.queues).map((queue) => [queue.arn, queue]));
  for (const queue of Object.values(result.queues)) {
    const redrive = resolver.resolve(resolver.resource(queue.logicalId).Properties?.RedrivePolicy);
    const dlq = isRecord(redrive) ? byArn.get(String(redrive.deadLetterTargetArn)) : undefined;
    if (dlq) queue.dlqUrl = dlq.url;
  }
  return result;
}

async function createQueue(
  id: string,
  properties: Record<string, unknown>,
  resolver: StackResolver,
  sqs: SQSClient,
  result: ProvisionedResources,
): Promise<void> {
  const name = resolver.physicalName(id);
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: stringAttributes(resolver, properties, QUEUE_ATTRIBUTES, QUEUE_JSON_ATTRIBUTES),
    }),
  );
  if (!QueueUrl) throw new Error(`CreateQueue ${id} returned no URL`);
  const arn = resolver.arn(id);
  resolver.setPhysical(id, { ref: QueueUrl, attributes: { Arn: arn, QueueName: name, QueueUrl } });
  result.queues[name] = { logicalId: id, url: QueueUrl, arn };
}

/** What dynalite's CreateTable accepts; encryption, backups, TTL, streams and tags are dropped. */
async function createTable(
  id: string,
  properties: Record<string, unknown>,
  resolver: StackResolver,
  dynamodb: DynamoDBClient,
): Promise<string> {
  const name = resolver.physicalName(id);
  const resolved = resolver.resolve(properties) as Record<string, unknown>;
  const billingMode = (resolved.BillingMode as CreateTableCommandInput['BillingMode']) ?? 'PROVISIONED';
  const provisioned = billingMode === 'PROVISIONED';
  const index = (definition: unknown) => {
    const { IndexName, KeySchema, Projection, ProvisionedThroughput } = definition as Record<string, unknown>;
    return provisioned ? { IndexName, KeySchema, Projection, ProvisionedThroughput } : { IndexName, KeySchema, Projection };
  };
  const input = {
    TableName: name,
    AttributeDefinitions: resolved.AttributeDefinitions,
    KeySchema: resolved.KeySchema,
    BillingMode: billingMode,
    ...(provisioned ? { ProvisionedThroughput: resolved.ProvisionedThroughput } : {}),
    ...(Array.isArray(resolved.GlobalSecondaryIndexes) ? { GlobalSecondaryIndexes: resolved.GlobalSecondaryIndexes.map(index) } : {}),
    ...(Array.isArray(resolved.LocalSecondaryIndexes)
      ? {
          LocalSecondaryIndexes: resolved.LocalSecondaryIndexes.map((definition) => {
            const { IndexName, KeySchema, Projection } = definition as Record<string, unknown>;
            return { IndexName, KeySchema, Projection };
          }),
        }
      : {}),
  } as CreateTableCommandInput; // Shapes come straight from the template; DynamoDB validates them.
  await dynamodb.send(new CreateTableCommand(input));
  // dynalite flips the table to ACTIVE on its next tick; wait for it as CloudFormation would.
  for (let attempt = 0; attempt < 100; attempt++) {
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === 'ACTIVE') break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  resolver.setPhysical(id, { ref: name, attributes: { Arn: resolver.arn(id) } });
  return name;
}

/** Template properties as SQS/SNS string attributes: scalars as text, policies as JSON text. */
function stringAttributes(
  resolver: StackResolver,
  properties: Record<string, unknown>,
  scalars: string[],
  json: string[],
): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const name of scalars) {
    if (properties[name] !== undefined) attributes[name] = resolver.resolveString(properties[name], name);
  }
  for (const name of json) {
    if (properties[name] === undefined) continue;
    const value = resolver.resolve(properties[name]);
    attributes[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return attributes;
}
