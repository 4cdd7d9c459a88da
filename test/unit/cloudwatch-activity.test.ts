import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { cloudWatchActivity } from '../../scripts/cloudwatch-activity.js';
import type { QueueConsumer } from '../../local/queue-consumers.js';
import type { StackTarget } from '../../scripts/stack-target.js';

// `npm run status -- --aws`: which CloudWatch series it reads and how it maps them to the table.
const consumer = (name: string): QueueConsumer => ({
  name,
  functionId: `${name}LambdaFunction`,
  queueId: `${name}Queue`,
  deadLetterQueueId: `${name}DeadLetterQueue`,
  functionName: `order-pipeline-dev-${name}`,
  queueName: `order-pipeline-dev-${name}`,
  deadLetterQueueName: `order-pipeline-dev-${name}-dlq`,
  eventTypes: ['OrderPlaced'],
  lane: 'standard',
});
const target: StackTarget = {
  description: 'AWS us-east-1, stage dev',
  stage: 'dev',
  service: 'order-pipeline',
  region: 'us-east-1',
  sqs: new SQSClient({ region: 'us-east-1' }),
  // As the deployed template would have them.
  consumers: ['inventory', 'payment', 'shipping'].map(consumer),
  functions: ['createOrder', 'getInventory', 'getOrder', 'inventory', 'payment', 'shipping', 'sweepOrders'],
};

describe('cloudWatchActivity', () => {
  it('reads queue ages, Lambda counts and the consumers’ record metrics for the stage', async () => {
    const cloudWatch = mockClient(CloudWatchClient);
    cloudWatch.on(GetMetricDataCommand).callsFake(
      (input: {
        MetricDataQueries: Array<{
          Id: string;
          MetricStat: { Metric: { MetricName: string; Dimensions: Array<{ Name: string; Value: string }> } };
        }>;
      }) => ({
        MetricDataResults: input.MetricDataQueries.map((q) => {
          const dims = Object.fromEntries(q.MetricStat.Metric.Dimensions.map((d) => [d.Name, d.Value]));
          const values: Record<string, number> = {
            'ApproximateAgeOfOldestMessage:order-pipeline-dev-payment': 42,
            'Invocations:order-pipeline-dev-payment': 7,
            'Errors:order-pipeline-dev-createOrder': 1,
            'Invocations:order-pipeline-dev-createOrder': 10,
            'RecordsProcessed:payment': 60,
            'RecordsFailed:payment': 3,
          };
          const key = `${q.MetricStat.Metric.MetricName}:${dims.QueueName ?? dims.FunctionName ?? dims.consumer}`;
          return { Id: q.Id, Values: key in values ? [values[key]!] : [] };
        }),
      }),
    );
    const activity = await cloudWatchActivity(target, new CloudWatchClient({ region: 'us-east-1' }), new Date('2026-11-25T12:00:30Z'));
    expect(activity.oldestMessageAgeSeconds).toEqual({
      'order-pipeline-dev-inventory': null,
      'order-pipeline-dev-payment': 42,
      'order-pipeline-dev-shipping': null,
    });
    expect(activity.functions.find((f) => f.name === 'payment')).toEqual({
      name: 'payment',
      invocations: 7,
      processed: 60,
      failed: 3,
      running: 0,
    });
    expect(activity.functions.find((f) => f.name === 'createOrder')).toEqual({
      name: 'createOrder',
      invocations: 10,
      processed: 9,
      failed: 1,
      running: 0,
    });
    const call = cloudWatch.commandCalls(GetMetricDataCommand)[0]?.args[0].input;
    expect(call?.EndTime).toEqual(new Date('2026-11-25T12:00:00Z'));
  });
});
