import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { config } from './config.js';

// One client of each kind per execution environment, created on first use and reused across
// invocations (connection reuse is most of an SDK call's latency).
let dynamoDb: DynamoDBClient | undefined;
let documentClient: DynamoDBDocumentClient | undefined;
let sns: SNSClient | undefined;
let sqs: SQSClient | undefined;

export function dynamoDbClient(): DynamoDBClient {
  dynamoDb ??= new DynamoDBClient({ region: config.region(), endpoint: config.endpoints().dynamodb });
  return dynamoDb;
}

export function dynamoDbDocumentClient(): DynamoDBDocumentClient {
  documentClient ??= DynamoDBDocumentClient.from(dynamoDbClient(), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return documentClient;
}

export function snsClient(): SNSClient {
  sns ??= new SNSClient({ region: config.region(), endpoint: config.endpoints().sns });
  return sns;
}

export function sqsClient(): SQSClient {
  sqs ??= new SQSClient({ region: config.region(), endpoint: config.endpoints().sqs });
  return sqs;
}

/**
 * The URL of a queue from its ARN, without a GetQueueUrl call (and the permission it needs):
 * the regional endpoint on AWS, or the configured endpoint when one is set.
 */
export function queueUrlFromArn(queueArn: string): string {
  const [, , , region, accountId, queueName] = queueArn.split(':');
  if (!region || !accountId || !queueName) throw new Error(`Not an SQS queue ARN: ${queueArn}`);
  const endpoint = config.endpoints().sqs ?? `https://sqs.${region}.amazonaws.com`;
  return `${endpoint.replace(/\/$/, '')}/${accountId}/${queueName}`;
}
