// CloudWatch alarms, the alarm topic and its key, and the dashboard (resources/monitoring.yml).
import { beforeAll, describe, expect, it } from 'vitest';
import {
  actionsOf,
  asArray,
  conditionHolds,
  deadLetterQueueOf,
  lambdaFunctions,
  mustTarget,
  packageProdWithOverrides,
  packageStack,
  resource,
  resourcesOfType,
  sourceQueues,
  statementsOf,
  targetId,
  type Json,
  type Packaged,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

const overridden = () => packageProdWithOverrides().template;

interface Alarm {
  id: string;
  p: Record<string, Json>;
}

function alarms(template: Template): Alarm[] {
  return resourcesOfType(template, 'AWS::CloudWatch::Alarm').map(([id, r]) => ({ id, p: r.Properties ?? {} }));
}

/** Single-metric alarms on `metric` whose dimension `name` references `target`. */
function alarmsOn(template: Template, namespace: string, metric: string, name: string, target: string): Alarm[] {
  return alarms(template).filter(
    ({ p }) =>
      p.Namespace === namespace &&
      p.MetricName === metric &&
      asArray<Json>(p.Dimensions).length === 1 &&
      p.Dimensions[0].Name === name &&
      targetId(p.Dimensions[0].Value) === target,
  );
}

/** The topic every alarm notifies: the one the AlarmTopicArn output names. */
function alarmTopic(template: Template): string {
  return mustTarget(template, template.Outputs?.AlarmTopicArn?.Value, 'Output AlarmTopicArn');
}

describe('alarm topic', () => {
  it("is encrypted with the stack's own rotating KMS key, whose policy admits CloudWatch", () => {
    const topic = resource(t, alarmTopic(t));
    expect(topic.Type).toBe('AWS::SNS::Topic');
    // Not alias/aws/sns: CloudWatch cannot use the AWS-managed key and drops the notification.
    const keyId = mustTarget(t, topic.Properties?.KmsMasterKeyId, 'KmsMasterKeyId of the alarm topic');
    const key = resource(t, keyId);
    expect(key.Type).toBe('AWS::KMS::Key');
    expect(key.Properties?.EnableKeyRotation).toBe(true);
    expect(key.Properties?.Enabled ?? true).toBe(true);

    const statements = statementsOf(t, key.Properties?.KeyPolicy).filter((s) => s.Effect === 'Allow');
    const root = statements.find((s) => JSON.stringify(s.Principal?.AWS ?? '').includes(':root'));
    expect(root, 'the account root administers the key').toBeDefined();
    expect(JSON.stringify(root!.Principal.AWS)).toContain('${AWS::AccountId}');
    expect(actionsOf(root!)).toContain('kms:*');

    const cloudwatch = statements.filter((s) => asArray(s.Principal?.Service).includes('cloudwatch.amazonaws.com'));
    const granted = cloudwatch.flatMap(actionsOf);
    expect(granted).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey*']));
  });

  it('lets CloudWatch alarms of this account publish', () => {
    const topic = alarmTopic(t);
    const policies = resourcesOfType(t, 'AWS::SNS::TopicPolicy').filter(([, r]) =>
      asArray(r.Properties?.Topics).some((x) => targetId(x) === topic),
    );
    expect(policies).toHaveLength(1);
    const allows = statementsOf(t, policies[0]![1].Properties?.PolicyDocument).filter((s) => s.Effect === 'Allow');
    const publish = allows.find(
      (s) => asArray(s.Principal?.Service).includes('cloudwatch.amazonaws.com') && actionsOf(s).includes('sns:Publish'),
    );
    expect(publish, 'no Allow for cloudwatch.amazonaws.com sns:Publish').toBeDefined();
    expect(asArray(publish!.Resource).map(targetId)).toEqual([topic]);
    expect(publish!.Condition?.StringEquals?.['aws:SourceAccount']).toEqual({ Ref: 'AWS::AccountId' });
  });

  it('subscribes the alarmEmail address only when the param is set', () => {
    const emailSubscriptions = (template: Template) =>
      resourcesOfType(template, 'AWS::SNS::Subscription').filter(
        ([, r]) => r.Properties?.Protocol === 'email' && targetId(r.Properties?.TopicArn) === alarmTopic(template),
      );
    const [[, byDefault] = []] = emailSubscriptions(t);
    expect(byDefault?.Condition, 'the e-mail subscription is not conditional').toBeDefined();
    expect(stack.params.alarmEmail).toBe('');
    expect(conditionHolds(t, byDefault!.Condition!)).toBe(false);

    const withEmail = overridden();
    const [[, subscription] = []] = emailSubscriptions(withEmail);
    expect(conditionHolds(withEmail, subscription!.Condition!)).toBe(true);
    expect(subscription!.Properties?.Endpoint).toBe('ops@example.com');
  });
});

describe('alarms', () => {
  it('every alarm notifies the alarm topic on ALARM and OK, and treats missing data as not breaching', () => {
    const topic = alarmTopic(t);
    const all = alarms(t);
    expect(all.length).toBeGreaterThan(0);
    for (const { id, p } of all) {
      for (const key of ['AlarmActions', 'OKActions']) {
        const targets = asArray<Json>(p[key]).map(targetId);
        expect(targets, `${id} ${key}`).toEqual([topic]);
      }
      expect(p.ActionsEnabled ?? true, `${id} ActionsEnabled`).toBe(true);
      expect(p.TreatMissingData, `${id} TreatMissingData`).toBe('notBreaching');
    }
  });

  it('alarm names are unique and carry the stage', () => {
    const names = alarms(t).map(({ p }) => p.AlarmName);
    for (const name of names) expect(name).toMatch(new RegExp(`-${stack.stage}-`));
    expect(new Set(names).size).toBe(names.length);
  });

  it('every dead-letter queue alarms on its first message (Maximum visible > 0 over 1 minute)', () => {
    for (const queue of sourceQueues(t)) {
      const dlq = deadLetterQueueOf(t, queue)!;
      const found = alarmsOn(t, 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', dlq);
      expect(found.map((a) => a.id), `alarm on ${dlq}`).toHaveLength(1);
      const { p } = found[0]!;
      expect(p.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [dlq, 'QueueName'] });
      expect([p.Statistic, p.Period, p.EvaluationPeriods, p.ComparisonOperator, p.Threshold]).toEqual([
        'Maximum', 60, 1, 'GreaterThanThreshold', 0,
      ]);
    }
  });

  it('every source queue alarms when its oldest message is older than oldestMessageAgeAlarmSeconds', () => {
    expect(stack.params.oldestMessageAgeAlarmSeconds).toBe(300);
    for (const [template, threshold] of [[t, 300], [overridden(), 900]] as const) {
      for (const queue of sourceQueues(template)) {
        const found = alarmsOn(template, 'AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', queue);
        expect(found.map((a) => a.id), `age alarm on ${queue}`).toHaveLength(1);
        const { p } = found[0]!;
        expect(p.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [queue, 'QueueName'] });
        expect([p.Statistic, p.ComparisonOperator, Number(p.Threshold)]).toEqual(['Maximum', 'GreaterThanThreshold', threshold]);
      }
    }
  });

  it('every function alarms on Errors > 0 and Throttles > 0 (Sum over 5 minutes)', () => {
    const fns = lambdaFunctions(t, stack.stage);
    expect(fns).toHaveLength(7);
    for (const fn of fns) {
      for (const metric of ['Errors', 'Throttles']) {
        const found = alarmsOn(t, 'AWS/Lambda', metric, 'FunctionName', fn.id);
        expect(found.map((a) => a.id), `${metric} alarm on ${fn.key}`).toHaveLength(1);
        const { p } = found[0]!;
        expect(p.Dimensions[0].Value, 'FunctionName dimension is the Ref (the name)').toEqual({ Ref: fn.id });
        expect([p.Statistic, p.Period, p.ComparisonOperator, p.Threshold]).toEqual(['Sum', 300, 'GreaterThanThreshold', 0]);
      }
    }
  });

  it('alarms when cancelled / placed x 100 exceeds cancelledRateAlarmPercent, on the metrics the functions emit', () => {
    const rate = alarms(t).filter(({ p }) => asArray<Json>(p.Metrics).some((m) => m.MetricStat?.Metric?.MetricName === 'OrdersCancelled'));
    expect(rate.map((a) => a.id)).toHaveLength(1);
    const { p } = rate[0]!;
    const metrics: Json[] = p.Metrics;
    const stat = (name: string) => metrics.find((m) => m.MetricStat?.Metric?.MetricName === name);
    const cancelled = stat('OrdersCancelled');
    const placed = stat('OrdersPlaced');
    expect(placed, 'OrdersPlaced').toBeDefined();

    // Powertools Metrics publishes to POWERTOOLS_METRICS_NAMESPACE with service=POWERTOOLS_SERVICE_NAME.
    const env = lambdaFunctions(t, stack.stage).map((f) => f.resource.Properties?.Environment?.Variables ?? {});
    const namespaces = new Set(env.map((v) => v.POWERTOOLS_METRICS_NAMESPACE));
    const services = new Set(env.map((v) => v.POWERTOOLS_SERVICE_NAME));
    expect([...namespaces]).toEqual(['OrderPipeline']);
    expect([...services]).toEqual(['order-pipeline']);
    for (const m of [cancelled, placed]) {
      expect(m.MetricStat.Metric.Namespace).toBe('OrderPipeline');
      expect(m.MetricStat.Metric.Dimensions).toEqual([{ Name: 'service', Value: 'order-pipeline' }]);
      expect(m.MetricStat.Stat).toBe('Sum');
      expect(m.ReturnData).toBe(false);
    }

    const returned = metrics.filter((m) => m.ReturnData !== false);
    expect(returned).toHaveLength(1);
    const expression: string = returned[0].Expression;
    // cancelled / placed * 100 (FILL(cancelled, 0): a window without cancellations is 0 %).
    const evaluate = (c: number, pl: number): number => {
      const arithmetic = expression
        .replace(/FILL\(\s*(\w+)\s*,\s*0\s*\)/g, '$1')
        .replace(new RegExp(`\\b${cancelled.Id}\\b`, 'g'), String(c))
        .replace(new RegExp(`\\b${placed.Id}\\b`, 'g'), String(pl));
      expect(arithmetic, `cannot evaluate ${expression}`).toMatch(/^[\d\s.*/()+-]+$/);
      return Function(`return ${arithmetic}`)() as number;
    };
    expect(evaluate(3, 10)).toBeCloseTo(30);
    expect(evaluate(1, 4)).toBeCloseTo(25);
    expect([p.ComparisonOperator, Number(p.Threshold)]).toEqual(['GreaterThanThreshold', 20]);
    expect(stack.params.cancelledRateAlarmPercent).toBe(20);
    const overriddenRate = alarms(overridden()).find(({ id }) => id === rate[0]!.id)!;
    expect(Number(overriddenRate.p.Threshold)).toBe(35);
  });
});

describe('dashboard', () => {
  it('is valid JSON (Fn::Sub) graphing every queue, dead-letter queue and function', () => {
    const dashboards = resourcesOfType(t, 'AWS::CloudWatch::Dashboard');
    expect(dashboards).toHaveLength(1);
    const [, dashboard] = dashboards[0]!;
    expect(dashboard.Properties?.DashboardName).toContain(`-${stack.stage}`);
    const body = dashboard.Properties?.DashboardBody?.['Fn::Sub'];
    expect(typeof body, 'DashboardBody is an Fn::Sub of a JSON string').toBe('string');
    for (const m of String(body).matchAll(/\$\{([^}]+)\}/g)) {
      const name = m[1]!.split('.')[0]!;
      expect(name.startsWith('AWS::') || name in t.Resources, `unknown \${${m[1]}}`).toBe(true);
    }
    const parsed = JSON.parse(String(body).replace(/\$\{([^}]+)\}/g, '<$1>'));
    const lines: string[][] = parsed.widgets.flatMap((w: Json) => w.properties?.metrics ?? []);
    const has = (namespace: string, metric: string, value: string) =>
      lines.some((l) => l[0] === namespace && l[1] === metric && l[3] === value);

    for (const queue of sourceQueues(t)) {
      const dlq = deadLetterQueueOf(t, queue)!;
      for (const metric of ['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateAgeOfOldestMessage']) {
        expect(has('AWS/SQS', metric, `<${queue}.QueueName>`), `${metric} of ${queue}`).toBe(true);
      }
      expect(has('AWS/SQS', 'ApproximateNumberOfMessagesVisible', `<${dlq}.QueueName>`), `depth of ${dlq}`).toBe(true);
    }
    for (const fn of lambdaFunctions(t, stack.stage)) {
      for (const metric of ['Invocations', 'Errors', 'Duration', 'ConcurrentExecutions']) {
        expect(has('AWS/Lambda', metric, `<${fn.id}>`), `${metric} of ${fn.key}`).toBe(true);
      }
    }
  });
});
