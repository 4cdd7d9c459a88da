// The sweep that makes the pipeline heal itself (lib/order-sweep.ts), as the packaged template wires
// it: its schedule, the sparse sharded index it reads, the settings it gets, what it may do, and
// the alarm that names stuck orders.
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_SWEEP_BACKOFF_SECONDS } from '../../lib/order-sweep.js';
import { SWEEP_SHARDS } from '../../lib/order-store.js';
import {
  actionsOf,
  asArray,
  functionByKey,
  functionStatements,
  lambdaFunctions,
  packageStack,
  referencedIds,
  resource,
  resourcesOfType,
  targetId,
  type Packaged,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

describe('the sweep of unfinished orders', () => {
  it('runs every minute on a schedule that targets the sweep function', () => {
    const sweep = functionByKey(t, stack.stage, 'sweepOrders');
    const rules = resourcesOfType(t, 'AWS::Events::Rule').filter(([, rule]) =>
      asArray(rule.Properties?.Targets).some((target) => JSON.stringify(target.Arn).includes(`"${sweep.id}"`)),
    );
    expect(rules).toHaveLength(1);
    expect(rules[0]![1].Properties?.ScheduleExpression).toBe('rate(1 minute)');
    expect(rules[0]![1].Properties?.State ?? 'ENABLED').toBe('ENABLED');
    // EventBridge may invoke it: a permission for the rule.
    const permissions = resourcesOfType(t, 'AWS::Lambda::Permission').filter(
      ([, p]) => targetId(p.Properties?.FunctionName) === sweep.id && p.Properties?.Principal === 'events.amazonaws.com',
    );
    expect(permissions).toHaveLength(1);
  });

  it('reads a sparse index of unfinished orders, sharded on its hash key, keys only', () => {
    const orders = resource(t, 'OrdersTable');
    const indexes = asArray(orders.Properties?.GlobalSecondaryIndexes);
    const index = indexes.find((i) => i.IndexName === 'UnfinishedOrders');
    expect(index?.KeySchema).toEqual([
      { AttributeName: 'sweepShard', KeyType: 'HASH' },
      { AttributeName: 'sweepDueAt', KeyType: 'RANGE' },
    ]);
    expect(index?.Projection).toEqual({ ProjectionType: 'KEYS_ONLY' });
    expect(SWEEP_SHARDS).toBeGreaterThan(1);
  });

  it('gets its thresholds from the params, and every order writer knows when the sweep is due', () => {
    const env = (key: string) => functionByKey(t, stack.stage, key).resource.Properties?.Environment?.Variables ?? {};
    expect(env('sweepOrders')).toMatchObject({ ORDER_SWEEP_BACKOFF_BASE_SECONDS: '60', ORDER_SWEEP_STUCK_ATTEMPTS: '5' });
    // The order API sets the first due time, the deciding consumer the one after the decision.
    const writers = lambdaFunctions(t, stack.stage).filter((fn) =>
      functionStatements(t, fn.id).some(
        (s) =>
          s.Effect === 'Allow' &&
          referencedIds(s.Resource).has('OrdersTable') &&
          actionsOf(s).some((a) => ['dynamodb:PutItem', 'dynamodb:UpdateItem'].includes(a)),
      ),
    );
    expect(writers.length).toBeGreaterThan(1);
    for (const { key } of writers) {
      expect(env(key).ORDER_SWEEP_AFTER_SECONDS, key).toBe('120');
    }
    const local = packageStack({ stage: 'local' });
    const localSweep = functionByKey(local.template, local.stage, 'sweepOrders').resource.Properties?.Environment?.Variables ?? {};
    expect(localSweep).toMatchObject({ ORDER_SWEEP_AFTER_SECONDS: '20', ORDER_SWEEP_BACKOFF_BASE_SECONDS: '10' });
  });

  it('may query only that index, read and update only order items, and publish only to the topic', () => {
    const sweep = functionByKey(t, stack.stage, 'sweepOrders');
    const granted = functionStatements(t, sweep.id)
      .filter((s) => s.Effect === 'Allow')
      .flatMap((s) => actionsOf(s).map((action) => [action, JSON.stringify(s.Resource)] as const));
    const dynamo = granted.filter(([action]) => action.startsWith('dynamodb:'));
    expect(dynamo.map(([action]) => action).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem']);
    for (const [action, where] of dynamo) {
      expect(where, action).toContain('OrdersTable');
      if (action === 'dynamodb:Query') expect(where).toContain('/index/UnfinishedOrders');
      else expect(where).not.toContain('/index/');
    }
    expect(granted.filter(([action]) => action.startsWith('sns:')).map(([action]) => action)).toEqual(['sns:Publish']);
    expect(granted.some(([action]) => action.startsWith('sqs:'))).toBe(false);
  });

  it('alarms when an order is still unfinished after the stuck threshold of attempts', () => {
    const alarm = resource(t, 'OrdersStuckAlarm').Properties ?? {};
    expect(alarm).toMatchObject({
      Namespace: 'OrderPipeline',
      MetricName: 'OrdersStuck',
      Dimensions: [{ Name: 'service', Value: 'order-pipeline' }],
      // A stuck order is counted at least once per longest backoff: the alarm must span it.
      Period: MAX_SWEEP_BACKOFF_SECONDS,
      EvaluationPeriods: 1,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(targetId(asArray(alarm.AlarmActions)[0])).toBe('AlarmTopic');
    const dashboard = JSON.stringify(resource(t, 'Dashboard').Properties?.DashboardBody);
    expect(dashboard).toContain('OrdersStuck');
    expect(lambdaFunctions(t, stack.stage).map((f) => f.key)).toContain('sweepOrders');
  });
});
