import { CloudWatchClient, GetMetricDataCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { FunctionActivity } from '../local/status.js';
import type { StackTarget } from './stack-target.js';

// What `npm run status -- --aws` reads from CloudWatch: the age of each consumer queue's oldest
// message, and per function its invocations, errors and concurrency, with the records processed
// and failed that the consumers report as metrics (namespace OrderPipeline, dimensions service and
// consumer: lib/queue-consumer.ts).

export interface CloudWatchActivity {
  oldestMessageAgeSeconds: Record<string, number | null>;
  functions: FunctionActivity[];
}

function query(id: string, namespace: string, metric: string, dimensions: Record<string, string>, stat: string): MetricDataQuery {
  return {
    Id: id,
    MetricStat: {
      Metric: {
        Namespace: namespace,
        MetricName: metric,
        Dimensions: Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value })),
      },
      Period: 60,
      Stat: stat,
    },
  };
}

export async function cloudWatchActivity(
  target: StackTarget,
  cloudWatch = new CloudWatchClient({ region: target.region }),
  now = new Date(),
): Promise<CloudWatchActivity> {
  const { functions } = target;
  const consumers = new Set(target.consumers.map((consumer) => consumer.name));
  const queries: MetricDataQuery[] = [
    ...target.consumers.map((consumer, i) =>
      query(`age${i}`, 'AWS/SQS', 'ApproximateAgeOfOldestMessage', { QueueName: consumer.queueName }, 'Maximum'),
    ),
    ...functions.flatMap((fn, i) => {
      const lambda = { FunctionName: `${target.service}-${target.stage}-${fn}` };
      return [
        query(`inv${i}`, 'AWS/Lambda', 'Invocations', lambda, 'Sum'),
        query(`err${i}`, 'AWS/Lambda', 'Errors', lambda, 'Sum'),
        query(`run${i}`, 'AWS/Lambda', 'ConcurrentExecutions', lambda, 'Maximum'),
        ...(consumers.has(fn)
          ? [
              query(`ok${i}`, 'OrderPipeline', 'RecordsProcessed', { service: target.service, consumer: fn }, 'Sum'),
              query(`bad${i}`, 'OrderPipeline', 'RecordsFailed', { service: target.service, consumer: fn }, 'Sum'),
            ]
          : []),
      ];
    }),
  ];
  // The last complete minute: CloudWatch publishes a minute's datapoint shortly after it ends.
  const end = new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  const start = new Date(end.getTime() - 5 * 60_000);
  const latest = new Map<string, number>();
  for (let i = 0; i < queries.length; i += 500) {
    const { MetricDataResults = [] } = await cloudWatch.send(
      new GetMetricDataCommand({
        StartTime: start,
        EndTime: end,
        MetricDataQueries: queries.slice(i, i + 500),
        ScanBy: 'TimestampDescending',
      }),
    );
    for (const result of MetricDataResults) {
      const value = result.Values?.[0];
      if (result.Id && value !== undefined) latest.set(result.Id, value);
    }
  }
  const value = (id: string) => latest.get(id) ?? 0;
  return {
    oldestMessageAgeSeconds: Object.fromEntries(
      target.consumers.map((consumer, i) => [consumer.queueName, latest.has(`age${i}`) ? value(`age${i}`) : null]),
    ),
    functions: functions.map((name, i) => ({
      name,
      invocations: value(`inv${i}`),
      // API and scheduled functions: an invocation is the unit of work; consumers report records.
      processed: consumers.has(name) ? value(`ok${i}`) : value(`inv${i}`) - value(`err${i}`),
      failed: consumers.has(name) ? value(`bad${i}`) : value(`err${i}`),
      running: value(`run${i}`),
    })),
  };
}
