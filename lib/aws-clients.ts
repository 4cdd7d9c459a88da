import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { config } from './config.js';
import { traced } from './tracing.js';

// One client of each kind per execution environment, created on first use and reused across
// invocations (connection reuse is most of an SDK call's latency). The S3 client of the claim-check
// bucket is in lib/claim-check-bucket.ts, loaded only when a large event comes.
let dynamoDb: DynamoDBClient | undefined;
let documentClient: DynamoDBDocumentClient | undefined;
let sns: SNSClient | undefined;
let sqs: SQSClient | undefined;

export function dynamoDbClient(): DynamoDBClient {
  dynamoDb ??= traced(new DynamoDBClient({ region: config.region(), endpoint: config.endpoints().dynamodb }));
  return dynamoDb;
}

export function dynamoDbDocumentClient(): DynamoDBDocumentClient {
  documentClient ??= DynamoDBDocumentClient.from(dynamoDbClient(), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return documentClient;
}

export function snsClient(): SNSClient {
  sns ??= traced(new SNSClient({ region: config.region(), endpoint: config.endpoints().sns }));
  return sns;
}

export function sqsClient(): SQSClient {
  sqs ??= traced(new SQSClient({ region: config.region(), endpoint: config.endpoints().sqs }));
  return sqs;
}

const queueUrls = new Map<string, string>();

/**
 * The URL of a queue from its ARN (what a Lambda SQS record carries), asked of the endpoint once
 * per execution environment: the endpoint knows its own URL format, on AWS and on an emulator.
 */
export async function queueUrlOf(queueArn: string): Promise<string> {
  const known = queueUrls.get(queueArn);
  if (known) return known;
  const [, , , , accountId, queueName] = queueArn.split(':');
  if (!accountId || !queueName) throw new Error(`Not an SQS queue ARN: ${queueArn}`);
  const { QueueUrl } = await sqsClient().send(new GetQueueUrlCommand({ QueueName: queueName, QueueOwnerAWSAccountId: accountId }));
  if (!QueueUrl) throw new Error(`No URL for queue ${queueArn}`);
  queueUrls.set(queueArn, QueueUrl);
  return QueueUrl;
}
