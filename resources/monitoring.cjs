// Monitoring generated from the stack's lists rather than copied per item: the alarms on each
// consumer's queue and dead-letter queue and on each function's errors and throttles, and the
// dashboard, whose queue, function and per-consumer lines follow the consumers
// (resources/consumers.cjs) and the functions of serverless.yml. The alarm topic, its key and the
// order-level alarms are in resources/monitoring.yml. test/infra/monitoring.test.ts fails if a
// metric the code emits is left off the dashboard.
//
// CommonJS: osls loads a `${file()}` source with require(), and the project is ESM.
'use strict';

const { consumers, logicalName, LANES } = require('./consumer-resources.cjs');

const NAME_PREFIX = '${self:service}-${sls:stage}-';
const notify = { AlarmActions: [{ Ref: 'AlarmTopic' }], OKActions: [{ Ref: 'AlarmTopic' }] };

/** One data point over the threshold alarms; no data (an idle queue or function) is fine. */
function alarm(name, description, namespace, metric, dimension, statistic, period, threshold) {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmName: `${NAME_PREFIX}${name}`,
      AlarmDescription: description,
      Namespace: namespace,
      MetricName: metric,
      Dimensions: [dimension],
      Statistic: statistic,
      Period: period,
      EvaluationPeriods: 1,
      Threshold: threshold,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      ...notify,
    },
  };
}

/**
 * A consumer's queues: any message in its dead-letter queue (an order stuck after maxReceiveCount
 * failed tries), and a backlog whose oldest message waits too long (a consumer fallen behind, or
 * stopped).
 */
function queueAlarms(consumer, lane) {
  const queueName = (id) => ({ Name: 'QueueName', Value: { 'Fn::GetAtt': [id, 'QueueName'] } });
  const named = laneLabel(consumer, lane);
  return {
    [`${lane.deadLetterQueueId}Alarm`]: alarm(
      `${named.replace(' ', '-')}-dlq-not-empty`,
      `Messages in the ${named} dead-letter queue; inspect and redrive them.`,
      'AWS/SQS',
      'ApproximateNumberOfMessagesVisible',
      queueName(lane.deadLetterQueueId),
      'Maximum',
      60,
      0,
    ),
    [`${lane.queueId}AgeAlarm`]: alarm(
      `${named.replace(' ', '-')}-queue-backlog`,
      `The oldest message in the ${named} queue waits longer than \${param:oldestMessageAgeAlarmSeconds} s.`,
      'AWS/SQS',
      'ApproximateAgeOfOldestMessage',
      queueName(lane.queueId),
      'Maximum',
      60,
      '${param:oldestMessageAgeAlarmSeconds}',
    ),
  };
}

/**
 * Any unhandled error or throttle of a function in 5 minutes. A consumer's partial batch failures
 * are not Errors: they retry and end in the dead-letter queue, which has its own alarm.
 */
function functionAlarms(key, isConsumer) {
  const id = logicalName(key);
  const functionName = { Name: 'FunctionName', Value: { Ref: `${id}LambdaFunction` } };
  const failed = isConsumer ? 'failed a whole invocation' : 'failed';
  return {
    [`${id}ErrorsAlarm`]: alarm(
      `${key}-errors`,
      `${key} ${failed} at least once in 5 minutes.`,
      'AWS/Lambda',
      'Errors',
      functionName,
      'Sum',
      300,
      0,
    ),
    [`${id}ThrottlesAlarm`]: alarm(
      `${key}-throttles`,
      `${key} was throttled at least once in 5 minutes.`,
      'AWS/Lambda',
      'Throttles',
      functionName,
      'Sum',
      300,
      0,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// The dashboard: a CloudWatch dashboard body, as the JSON text of an Fn::Sub (`${Queue.QueueName}`
// and `${Function}` are filled in by CloudFormation; `${self:service}`, `${param:...}` by osls).

const SQS = 'AWS/SQS';
const LAMBDA = 'AWS/Lambda';
const APP = 'OrderPipeline';
const SERVICE = '${self:service}';

function widget(x, y, width, title, settings, metrics) {
  return {
    type: 'metric',
    x,
    y,
    width,
    height: 6,
    properties: { title, region: '${AWS::Region}', view: 'timeSeries', ...settings, metrics },
  };
}

/** `inventory`, or `inventory express` for its express lane: how alarms and widgets name a queue. */
function laneLabel(consumer, lane) {
  return lane.lane === 'standard' ? consumer.name : `${consumer.name} ${lane.lane}`;
}

/** Per consumer and lane: its queue's depth, in-flight records, dead-letter queue depth and oldest message. */
function queueWidget({ consumer, lane }, x, y) {
  const queue = `\${${lane.queueId}.QueueName}`;
  return widget(x, y, 8, `${laneLabel(consumer, lane)} queue`, { period: 60 }, [
    [SQS, 'ApproximateNumberOfMessagesVisible', 'QueueName', queue, { label: 'visible', stat: 'Maximum' }],
    [SQS, 'ApproximateNumberOfMessagesNotVisible', 'QueueName', queue, { label: 'in flight', stat: 'Maximum' }],
    [
      SQS,
      'ApproximateNumberOfMessagesVisible',
      'QueueName',
      `\${${lane.deadLetterQueueId}.QueueName}`,
      { label: 'DLQ depth', stat: 'Maximum' },
    ],
    [SQS, 'ApproximateAgeOfOldestMessage', 'QueueName', queue, { label: 'oldest message age (s)', stat: 'Maximum', yAxis: 'right' }],
  ]);
}

function dashboardBody(functionKeys, all) {
  // Queue widgets three to a row (each consumer's standard queues, then their express queues),
  // then every other widget below them.
  const queues = LANES.flatMap((name) =>
    all.flatMap((consumer) => consumer.lanes.filter((lane) => lane.lane === name).map((lane) => ({ consumer, lane }))),
  );
  const queueRows = Math.max(1, Math.ceil(queues.length / 3));
  const top = queueRows * 6;
  const functionLines = (metric) =>
    functionKeys.map((key) => [LAMBDA, metric, 'FunctionName', `\${${logicalName(key)}LambdaFunction}`, { label: key }]);
  /** One line per consumer of a metric the consumers emit with their `consumer` dimension (lib/queue-consumer.ts). */
  const consumerLines = (metric, label) => all.map((c) => [APP, metric, 'service', SERVICE, 'consumer', c.name, { label: label(c.name) }]);
  const widgets = [
    ...queues.map((queue, i) => queueWidget(queue, (i % 3) * 8, Math.floor(i / 3) * 6)),
    widget(0, top, 12, 'Invocations', { period: 60, stat: 'Sum' }, functionLines('Invocations')),
    widget(12, top, 12, 'Errors', { period: 60, stat: 'Sum' }, functionLines('Errors')),
    widget(0, top + 6, 12, 'Duration (p99, ms)', { period: 60, stat: 'p99' }, functionLines('Duration')),
    widget(12, top + 6, 12, 'Concurrent executions', { period: 60, stat: 'Maximum' }, functionLines('ConcurrentExecutions')),
    widget(0, top + 12, 12, 'Orders placed, confirmed and cancelled', { period: 300, stat: 'Sum' }, [
      [APP, 'OrdersPlaced', 'service', SERVICE, { label: 'placed' }],
      [APP, 'OrdersConfirmed', 'service', SERVICE, { label: 'confirmed' }],
      [APP, 'OrdersCancelled', 'service', SERVICE, { label: 'cancelled' }],
    ]),
    widget(12, top + 12, 12, 'Orders stuck (sweep attempts past ${param:orderSweepStuckAttempts})', { period: 300, stat: 'Maximum' }, [
      [APP, 'OrdersStuck', 'service', SERVICE, { label: 'stuck' }],
    ]),
    widget(0, top + 18, 12, 'Records processed and failed, per consumer', { period: 60, stat: 'Sum' }, [
      ...consumerLines('RecordsProcessed', (name) => `${name} processed`),
      ...consumerLines('RecordsFailed', (name) => `${name} failed`),
    ]),
    widget(12, top + 18, 12, 'Records retried and duplicates skipped, per consumer', { period: 60, stat: 'Sum' }, [
      ...consumerLines('RecordsRetried', (name) => `${name} retried`),
      ...consumerLines('DuplicatesSkipped', (name) => `${name} duplicates`),
    ]),
    widget(0, top + 24, 12, 'Order placed to decided (ms)', { period: 300 }, [
      [APP, 'OrderPlacedToDecided', 'service', SERVICE, { label: 'p50', stat: 'p50' }],
      [APP, 'OrderPlacedToDecided', 'service', SERVICE, { label: 'p99', stat: 'p99' }],
    ]),
    widget(
      12,
      top + 24,
      12,
      'Order placed to its work done, per consumer (p99, ms)',
      { period: 300, stat: 'p99' },
      consumerLines('OrderPlacedToStageDone', (name) => name),
    ),
  ];
  return JSON.stringify({ widgets }, null, 2);
}

/** The keys of serverless.yml `functions`, a map or a list of maps (osls merges those). */
async function functionKeysOf(resolveConfigurationProperty) {
  const functions = await resolveConfigurationProperty(['functions']);
  return [].concat(functions ?? []).flatMap((map) => Object.keys(map ?? {}));
}

/** The alarms and dashboard, for an entry of serverless.yml `resources`. */
async function resources({ resolveConfigurationProperty }) {
  const all = consumers();
  const consumerNames = new Set(all.map((consumer) => consumer.name));
  const functionKeys = await functionKeysOf(resolveConfigurationProperty);
  const missing = all.filter((consumer) => !functionKeys.includes(consumer.name));
  if (missing.length > 0)
    throw new Error(
      `serverless.yml functions has no ${missing.map((c) => c.name).join(', ')}: list resources/consumer-resources.cjs's functions there`,
    );
  return {
    Resources: {
      ...Object.assign({}, ...all.flatMap((consumer) => consumer.lanes.map((lane) => queueAlarms(consumer, lane)))),
      ...Object.assign({}, ...functionKeys.map((key) => functionAlarms(key, consumerNames.has(key)))),
      Dashboard: {
        Type: 'AWS::CloudWatch::Dashboard',
        Properties: {
          DashboardName: '${self:service}-${sls:stage}',
          DashboardBody: { 'Fn::Sub': dashboardBody(functionKeys, all) },
        },
      },
    },
    Outputs: { DashboardName: { Value: { Ref: 'Dashboard' } } },
  };
}

module.exports = { resources };
