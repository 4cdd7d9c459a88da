import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { clientConfig, LOCAL_ACCOUNT_ID, LOCAL_REGION, startEmulators, type Emulators } from '../../local/emulators.js';
import { packageStack, variantPackaging } from '../../local/package-stack.js';
import { provisionStack, type ProvisionedQueue, type ProvisionedResources } from '../../local/provision.js';
import { readTemplate, StackResolver } from '../../local/template.js';

// The stack's tables, queues, topic and subscriptions provisioned from the packaged template
// (`serverless package --stage local`) into fresh emulators, and the environment the functions
// get pointed at them: integration tests call the lib modules against what the template declares,
// never a hand-written copy of it.

export interface ProvisionedStack {
  emulators: Emulators;
  resources: ProvisionedResources;
  /** The packaged template, its intrinsics resolved against what was provisioned. */
  resolver: StackResolver;
  db: DynamoDBDocumentClient;
  sqs: SQSClient;
  sns: SNSClient;
  s3: S3Client;
  /** The claim-check bucket's name (resources/claim-check.yml). */
  claimCheckBucket: string;
  table(logicalId: string): string;
  /** A queue of the template by logical id (InventoryQueue, PaymentDeadLetterQueue...). */
  queue(logicalId: string): ProvisionedQueue;
  /** A resource's properties as the template declares them, intrinsics resolved. */
  properties(logicalId: string): Record<string, unknown>;
  stop(): Promise<void>;
}

/** The stage `local` template, standard by default or its FIFO variant (queueType=fifo). */
export async function startProvisionedStack(options: { queueType?: 'standard' | 'fifo' } = {}): Promise<ProvisionedStack> {
  const packaged = await packageStack(variantPackaging('local', options.queueType ?? 'standard'));
  const template = await readTemplate(packaged.templatePath);
  const resolver = new StackResolver(template, {
    region: LOCAL_REGION,
    accountId: LOCAL_ACCOUNT_ID,
    partition: 'aws',
    stackName: `${packaged.serviceName}-local`,
  });
  const emulators = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
  const sqs = new SQSClient(clientConfig(emulators.endpoints.sqs));
  const sns = new SNSClient(clientConfig(emulators.endpoints.sns));
  const dynamodb = new DynamoDBClient(clientConfig(emulators.endpoints.dynamodb));
  const s3 = new S3Client({ ...clientConfig(emulators.endpoints.s3), forcePathStyle: true });
  const resources = await provisionStack(resolver, { sqs, sns, dynamodb, s3 });
  const claimCheckBucket = resources.buckets.ClaimCheckBucket;
  if (!claimCheckBucket) throw new Error('The template declares no ClaimCheckBucket');
  const table = (logicalId: string) => {
    const name = resources.tables[logicalId];
    if (!name) throw new Error(`The template declares no table ${logicalId}`);
    return name;
  };
  Object.assign(process.env, {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_ENDPOINT_URL_DYNAMODB: emulators.endpoints.dynamodb,
    AWS_ENDPOINT_URL_SNS: emulators.endpoints.sns,
    AWS_ENDPOINT_URL_SQS: emulators.endpoints.sqs,
    AWS_ENDPOINT_URL_S3: emulators.endpoints.s3,
    CLAIM_CHECK_BUCKET: claimCheckBucket,
    ORDER_EVENTS_TOPIC_ARN: resources.topicArn ?? '',
    POWERTOOLS_LOG_LEVEL: 'WARN',
    POWERTOOLS_METRICS_NAMESPACE: 'OrderPipeline',
    POWERTOOLS_SERVICE_NAME: 'order-pipeline',
    ...Object.fromEntries(
      Object.entries({
        ORDERS_TABLE: 'OrdersTable',
        INVENTORY_TABLE: 'InventoryTable',
        RESERVATIONS_TABLE: 'ReservationsTable',
        PAYMENTS_TABLE: 'PaymentsTable',
        SHIPMENTS_TABLE: 'ShipmentsTable',
        IDEMPOTENCY_TABLE: 'IdempotencyTable',
        PAYMENT_TOKENS_TABLE: 'PaymentTokensTable',
        ORDER_REQUESTS_TABLE: 'OrderRequestsTable',
      })
        .filter(([, id]) => resources.tables[id])
        .map(([variable, id]) => [variable, table(id)]),
    ),
  });
  const queue = (logicalId: string) => {
    const found = Object.values(resources.queues).find((candidate) => candidate.logicalId === logicalId);
    if (!found) throw new Error(`The template declares no queue ${logicalId}`);
    return found;
  };
  return {
    emulators,
    resources,
    resolver,
    queue,
    properties: (logicalId) => resolver.resolve(resolver.resource(logicalId).Properties ?? {}) as Record<string, unknown>,
    db: DynamoDBDocumentClient.from(dynamodb),
    sqs,
    sns,
    s3,
    claimCheckBucket,
    table,
    async stop() {
      for (const client of [sqs, sns, dynamodb, s3]) client.destroy();
      await emulators.stop();
    },
  };
}
