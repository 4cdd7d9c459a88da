// CloudWatch alarms, the alarm topic and its key, and the dashboard (resources/monitoring.yml and
// resources/monitoring.cjs).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { queueConsumers } from '../../local/queue-consumers.js';
import { MAX_SWEEP_BACKOFF_SECONDS } from '../../lib/order-sweep.js';
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
  repoRoot,
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
      expect(
        found.map((a) => a.id),
        `alarm on ${dlq}`,
      ).toHaveLength(1);
      const { p } = found[0]!;
      expect(p.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [dlq, 'QueueName'] });
      expect([p.Statistic, p.Period, p.EvaluationPeriods, p.ComparisonOperator, p.Threshold]).toEqual([
        'Maximum',
        60,
        1,
        'GreaterThanThreshold',
        0,
      ]);
    }
  });

  it('every source queue alarms when its oldest message is older than oldestMessageAgeAlarmSeconds', () => {
    expect(stack.params.oldestMessageAgeAlarmSeconds).toBe(300);
    for (const [template, threshold] of [
      [t, 300],
      [overridden(), 900],
    ] as const) {
      for (const queue of sourceQueues(template)) {
        const found = alarmsOn(template, 'AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', queue);
        expect(
          found.map((a) => a.id),
          `age alarm on ${queue}`,
        ).toHaveLength(1);
        const { p } = found[0]!;
        expect(p.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [queue, 'QueueName'] });
        expect([p.Statistic, p.ComparisonOperator, Number(p.Threshold)]).toEqual(['Maximum', 'GreaterThanThreshold', threshold]);
      }
    }
  });

  it('every function alarms on Errors > 0 and Throttles > 0 (Sum over 5 minutes)', () => {
    const fns = lambdaFunctions(t, stack.stage);
    expect(fns.length).toBeGreaterThan(0);
    for (const fn of fns) {
      for (const metric of ['Errors', 'Throttles']) {
        const found = alarmsOn(t, 'AWS/Lambda', metric, 'FunctionName', fn.id);
        expect(
          found.map((a) => a.id),
          `${metric} alarm on ${fn.key}`,
        ).toHaveLength(1);
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
    // cancelled / placed * 100, evaluated as CloudWatch metric math (see evaluateMetricMath).
    const evaluate = (c: number, pl: number): number => {
      const value = evaluateMetricMath(expression, { [cancelled.Id]: c, [placed.Id]: pl });
      expect(value, `${expression} with ${cancelled.Id}=${c}, ${placed.Id}=${pl}`).toBeTypeOf('number');
      return value!;
    };
    expect(evaluate(3, 10)).toBeCloseTo(30);
    expect(evaluate(1, 4)).toBeCloseTo(25);
    expect([p.ComparisonOperator, Number(p.Threshold)]).toEqual(['GreaterThanThreshold', 20]);
    expect(stack.params.cancelledRateAlarmPercent).toBe(20);
    const overriddenRate = alarms(overridden()).find(({ id }) => id === rate[0]!.id)!;
    expect(Number(overriddenRate.p.Threshold)).toBe(35);
  });

  it('the cancelled-rate alarm stays OK at zero orders: no OrdersPlaced data point, or OrdersPlaced = 0', () => {
    const [rate] = alarms(t).filter(({ p }) =>
      asArray<Json>(p.Metrics).some((m) => m.MetricStat?.Metric?.MetricName === 'OrdersCancelled'),
    );
    const { p } = rate!;
    const idOf = (name: string): string => p.Metrics.find((m: Json) => m.MetricStat?.Metric?.MetricName === name).Id;
    const [cancelled, placed] = [idOf('OrdersCancelled'), idOf('OrdersPlaced')];
    const state = (data: Record<string, number | undefined>) => alarmState(p, data);
    // No order placed in the window (no data point at all), with or without cancellations of
    // orders placed earlier: not an alarm, and no division by zero on the way.
    expect(state({})).toBe('OK');
    expect(state({ [cancelled]: 3 })).toBe('OK');
    // A data point of 0 orders placed: the expression must guard the division, not divide by zero.
    expect(state({ [placed]: 0 })).toBe('OK');
    expect(state({ [placed]: 0, [cancelled]: 0 })).toBe('OK');
    expect(state({ [placed]: 0, [cancelled]: 2 })).toBe('OK');
    // And it still alarms when it should: 20 % by default, more than is an alarm.
    expect(state({ [placed]: 10 })).toBe('OK');
    expect(state({ [placed]: 10, [cancelled]: 2 })).toBe('OK');
    expect(state({ [placed]: 10, [cancelled]: 3 })).toBe('ALARM');
    expect(state({ [placed]: 1, [cancelled]: 1 })).toBe('ALARM');
  });

  it("every alarm's period and evaluation periods keep what its description promises", () => {
    const sweepEnv = lambdaFunctions(t, stack.stage).find((f) => f.key === 'sweepOrders')!.resource.Properties?.Environment?.Variables;
    const functionKeys = new Map(lambdaFunctions(t, stack.stage).map((f) => [f.id, f.key]));
    // What each kind of description promises. The window is the period of the one data point that
    // decides (EvaluationPeriods 1, DatapointsToAlarm 1): "at least once in 5 minutes" is one
    // 5-minute data point, not 1 of 5 one-minute ones; a queue alarm looks at each minute SQS reports.
    const promises: Array<{ pattern: RegExp; period: (m: RegExpMatchArray) => number; check: (a: Alarm, m: RegExpMatchArray) => void }> = [
      {
        // DLQ: its first message, within the minute.
        // A consumer's express lane's queues are named `<consumer> express`.
        pattern: /^Messages in the (\w+)( express)? dead-letter queue; inspect and redrive them\.$/,
        period: () => 60,
        check: ({ p }, m) =>
          expect.soft(targetId(p.Dimensions[0].Value)).toBe(`${capitalised(m[1]!)}${m[2] ? 'Express' : ''}DeadLetterQueue`),
      },
      {
        pattern: /^The oldest message in the (\w+)( express)? queue waits longer than (\d+) s\.$/,
        period: () => 60,
        check: ({ p }, m) => {
          expect.soft(targetId(p.Dimensions[0].Value)).toBe(`${capitalised(m[1]!)}${m[2] ? 'Express' : ''}Queue`);
          expect.soft(Number(p.Threshold)).toBe(Number(m[3]));
        },
      },
      {
        pattern: /^(\w+) (?:failed|failed a whole invocation|was throttled) at least once in (\d+) minutes\.$/,
        period: (m) => Number(m[2]) * 60,
        check: ({ p }, m) => {
          expect.soft(functionKeys.get(targetId(p.Dimensions[0].Value)!)).toBe(m[1]);
          expect.soft([p.Statistic, Number(p.Threshold), p.ComparisonOperator]).toEqual(['Sum', 0, 'GreaterThanThreshold']);
        },
      },
      {
        // The sweep counts stuck orders when it finds them, then backs each off (up to an hour):
        // one data point must alarm, and the period must span the longest backoff, or the alarm
        // would go back to OK between two attempts on an order that is still stuck.
        pattern: /^At least one order is still unfinished after (\d+) sweep attempts; /,
        period: () => MAX_SWEEP_BACKOFF_SECONDS,
        check: ({ p }, m) => {
          expect.soft(sweepEnv.ORDER_SWEEP_STUCK_ATTEMPTS).toBe(m[1]);
          expect.soft([p.Statistic, Number(p.Threshold), p.ComparisonOperator]).toEqual(['Maximum', 0, 'GreaterThanThreshold']);
        },
      },
      {
        pattern: /^More than (\d+) % of the orders placed in (\d+) minutes were cancelled\.$/,
        period: (m) => Number(m[2]) * 60,
        check: ({ p }, m) => expect.soft([Number(p.Threshold), p.ComparisonOperator]).toEqual([Number(m[1]), 'GreaterThanThreshold']),
      },
    ];
    const all = alarms(t);
    // Per consumer queue its DLQ and backlog alarms, per function its errors and throttles, and
    // the two order-level alarms (stuck orders, cancelled rate).
    expect.soft(all).toHaveLength(sourceQueues(t).length * 2 + lambdaFunctions(t, stack.stage).length * 2 + 2);
    for (const alarm of all) {
      const { id, p } = alarm;
      const description = String(p.AlarmDescription ?? '');
      const matching = promises.flatMap(({ pattern, period, check }) => {
        const m = description.match(pattern);
        return m ? [{ m, period, check }] : [];
      });
      expect.soft(matching, `${id}: no known promise in its description "${description}"`).toHaveLength(1);
      const [{ m, period, check }] = matching as [(typeof matching)[number]];
      // A single-metric alarm has its Period; a metric-math alarm the period of every metric it reads.
      const periods = p.Metrics
        ? asArray<Json>(p.Metrics)
            .filter((q) => q.MetricStat)
            .map((q) => Number(q.MetricStat.Period))
        : [Number(p.Period)];
      expect.soft(p.Metrics ? p.Period : undefined, `${id}: a metric-math alarm sets no Period of its own`).toBeUndefined();
      expect.soft(new Set(periods), `${id} Period`).toEqual(new Set([period(m)]));
      expect.soft(Number(p.EvaluationPeriods), `${id} EvaluationPeriods`).toBe(1);
      expect.soft(Number(p.DatapointsToAlarm ?? p.EvaluationPeriods), `${id} DatapointsToAlarm`).toBe(1);
      check(alarm, m);
    }
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
      for (const metric of [
        'ApproximateNumberOfMessagesVisible',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateAgeOfOldestMessage',
      ]) {
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

  it('graphs every custom metric the code emits, under the dimensions it is emitted with', () => {
    const emitted = emittedMetrics();
    // The scan finds what it should (the metrics the alarms read among them), or it would prove nothing.
    expect(emitted.map((m) => m.name)).toEqual(
      expect.arrayContaining(['OrdersPlaced', 'OrdersCancelled', 'OrdersStuck', 'RecordsProcessed']),
    );
    // The names the consumers' code gives its metrics' `consumer` dimension are their names in the template.
    const consumers = consumerNamesInCode();
    expect(consumers).toEqual([...new Set(queueConsumers(t, `order-pipeline-${stack.stage}`).map((c) => c.name))]);
    const lines = dashboardLines(t);
    const service = 'order-pipeline';
    const missing: string[] = [];
    for (const { name, dimensions, where } of emitted) {
      // One series per value of each dimension the code sets: the service, and each consumer.
      const wanted: Array<Record<string, string>> = dimensions.includes('consumer')
        ? consumers.map((consumer) => ({ service, consumer }))
        : [{ service }];
      for (const dims of wanted) {
        if (Object.keys(dims).sort().join() !== [...dimensions].sort().join()) {
          throw new Error(`${name} (${where}) is emitted with dimensions ${dimensions.join(', ')}: teach this test their values`);
        }
        const shown = lines.some((l) => l.namespace === 'OrderPipeline' && l.metric === name && sameDimensions(l.dimensions, dims));
        if (!shown)
          missing.push(
            `${name} {${Object.entries(dims)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}} (${where})`,
          );
      }
    }
    expect(missing, 'emitted but not on the dashboard').toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// CloudWatch metric math, as far as the alarms use it

/**
 * Evaluates a metric-math expression at one timestamp. `data` holds the metrics' data points there;
 * a metric without one is missing (undefined), as CloudWatch has no point for a period without data.
 * Arithmetic or a comparison with a missing operand is missing; FILL(x, v) replaces a missing x;
 * IF(c, a, b) is a when c is non-zero, b (missing if not given) when zero, missing when c is.
 * Division by zero throws: an alarm expression must guard it.
 */
function evaluateMetricMath(expression: string, data: Record<string, number | undefined>): number | undefined {
  const tokens = expression.match(/\s*(\d+(?:\.\d+)?|[A-Za-z_]\w*|>=|<=|==|!=|[-+*/(),<>])/gy)?.map((x) => x.trim()) ?? [];
  if (tokens.join('') !== expression.replace(/\s+/g, '')) throw new Error(`Cannot tokenize ${expression}`);
  let at = 0;
  const peek = () => tokens[at];
  const take = (expected?: string): string => {
    const token = tokens[at++];
    if (token === undefined || (expected !== undefined && token !== expected))
      throw new Error(`${expression}: expected ${expected ?? 'more'} at token ${at}`);
    return token;
  };
  type Value = number | undefined;
  type Thunk = () => Value;
  const both =
    (a: Thunk, b: Thunk, op: (x: number, y: number) => number): Thunk =>
    () => {
      const [x, y] = [a(), b()];
      return x === undefined || y === undefined ? undefined : op(x, y);
    };
  const comparison = (): Thunk => {
    const left = sum();
    const op = peek();
    if (!op || !['>', '<', '>=', '<=', '==', '!='].includes(op)) return left;
    take();
    const right = sum();
    const compare: Record<string, (x: number, y: number) => boolean> = {
      '>': (x, y) => x > y,
      '<': (x, y) => x < y,
      '>=': (x, y) => x >= y,
      '<=': (x, y) => x <= y,
      '==': (x, y) => x === y,
      '!=': (x, y) => x !== y,
    };
    return both(left, right, (x, y) => (compare[op]!(x, y) ? 1 : 0));
  };
  const sum = (): Thunk => {
    let left = product();
    while (peek() === '+' || peek() === '-') {
      const op = take();
      const right = product();
      left = both(left, right, op === '+' ? (x, y) => x + y : (x, y) => x - y);
    }
    return left;
  };
  const product = (): Thunk => {
    let left = unary();
    while (peek() === '*' || peek() === '/') {
      const op = take();
      const right = unary();
      left = both(left, right, (x, y) => {
        if (op === '*') return x * y;
        if (y === 0) throw new Error(`${expression} divides by zero with ${JSON.stringify(data)}`);
        return x / y;
      });
    }
    return left;
  };
  const unary = (): Thunk => {
    if (peek() === '-') {
      take();
      const operand = unary();
      return () => {
        const x = operand();
        return x === undefined ? undefined : -x;
      };
    }
    return primary();
  };
  const args = (): Thunk[] => {
    take('(');
    const list = [comparison()];
    while (peek() === ',') {
      take(',');
      list.push(comparison());
    }
    take(')');
    return list;
  };
  const primary = (): Thunk => {
    const token = take();
    if (token === '(') {
      const inner = comparison();
      take(')');
      return inner;
    }
    if (/^\d/.test(token)) return () => Number(token);
    if (token === 'FILL') {
      const [series, value, ...rest] = args();
      if (!series || !value || rest.length > 0) throw new Error(`${expression}: FILL takes two arguments`);
      return () => series() ?? value();
    }
    if (token === 'IF') {
      const [condition, then, otherwise, ...rest] = args();
      if (!condition || !then || rest.length > 0) throw new Error(`${expression}: IF takes two or three arguments`);
      return () => {
        const c = condition();
        if (c === undefined) return undefined;
        return c !== 0 ? then() : otherwise?.();
      };
    }
    if (/^[A-Z]+$/.test(token) && peek() === '(') throw new Error(`${expression}: function ${token} is not evaluated here`);
    if (!(token in data) && !/^[a-z]\w*$/.test(token)) throw new Error(`${expression}: unknown id ${token}`);
    return () => data[token];
  };
  const result = comparison();
  if (at !== tokens.length) throw new Error(`${expression}: unexpected ${tokens[at]}`);
  const value = result();
  if (value !== undefined && !Number.isFinite(value)) throw new Error(`${expression} is ${value} with ${JSON.stringify(data)}`);
  return value;
}

/** The state a one-period metric-math alarm takes for one window of data (missing data per TreatMissingData). */
function alarmState(p: Record<string, Json>, data: Record<string, number | undefined>): 'OK' | 'ALARM' | 'INSUFFICIENT_DATA' {
  const [returned] = asArray<Json>(p.Metrics).filter((m) => m.ReturnData !== false);
  const value = evaluateMetricMath(returned.Expression, data);
  if (value === undefined) {
    if (p.TreatMissingData === 'notBreaching') return 'OK';
    if (p.TreatMissingData === 'breaching') return 'ALARM';
    return 'INSUFFICIENT_DATA';
  }
  const threshold = Number(p.Threshold);
  const breaching: Record<string, boolean> = {
    GreaterThanThreshold: value > threshold,
    GreaterThanOrEqualToThreshold: value >= threshold,
    LessThanThreshold: value < threshold,
    LessThanOrEqualToThreshold: value <= threshold,
  };
  if (!(p.ComparisonOperator in breaching)) throw new Error(`ComparisonOperator ${p.ComparisonOperator}`);
  return breaching[p.ComparisonOperator] ? 'ALARM' : 'OK';
}

function capitalised(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

// ---------------------------------------------------------------------------------------------
// The metrics the code emits, and the ones the dashboard graphs

interface EmittedMetric {
  name: string;
  dimensions: string[];
  /** file:line of the addMetric call. */
  where: string;
}

/**
 * Every `addMetric('Name', …)` in lib/ and functions/, with the dimensions of the Metrics object it
 * is called on: Powertools adds `service` to each; the consumers' own instance (`consumerMetrics`,
 * lib/queue-consumer.ts) adds `consumer`. A reason-dimensioned extra copy (`.addDimension(…)` before
 * addMetric) is a breakdown of a metric emitted without it too, and needs no line of its own.
 */
function emittedMetrics(): EmittedMetric[] {
  const receivers: Record<string, string[]> = {
    metrics: ['service'],
    'singleMetric()': ['service'],
    consumerMetrics: ['service', 'consumer'],
  };
  const found: EmittedMetric[] = [];
  for (const dir of ['lib', 'functions']) {
    for (const file of readdirSync(join(repoRoot, dir), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts')) continue;
      const text = readFileSync(join(repoRoot, dir, file), 'utf8');
      for (const m of text.matchAll(/([\w.]+(?:\(\))?)((?:\s*\.addDimension\([^)]*\))*)\s*\.addMetric\(\s*(['"`])(\w+)\3/g)) {
        const where = `${dir}/${file}:${text.slice(0, m.index).split('\n').length}`;
        const [, receiver, addedDimensions, , name] = m as unknown as [string, string, string, string, string];
        if (addedDimensions) continue;
        const dimensions = receivers[receiver];
        if (!dimensions) throw new Error(`${where}: addMetric on ${receiver}; which dimensions does it carry?`);
        if (!found.some((f) => f.name === name && f.dimensions.join() === dimensions.join())) found.push({ name, dimensions, where });
      }
      // An addMetric this scan did not understand (a name in a variable) must not slip past it.
      const calls = text.match(/\.addMetric\(/g)?.length ?? 0;
      const understood = [...text.matchAll(/\.addMetric\(\s*(['"`])\w+\1/g)].length;
      if (calls !== understood) throw new Error(`${dir}/${file}: an addMetric call without a literal metric name`);
    }
  }
  return found;
}

/** The names the consumers pass to createQueueConsumer (their metrics' `consumer` dimension). */
function consumerNamesInCode(): string[] {
  const names: string[] = [];
  for (const file of readdirSync(join(repoRoot, 'functions'))) {
    const text = readFileSync(join(repoRoot, 'functions', file), 'utf8');
    for (const m of text.matchAll(/createQueueConsumer\(\s*'(\w+)'/g)) names.push(m[1]!);
  }
  return names.sort();
}

interface DashboardLine {
  namespace: string;
  metric: string;
  dimensions: Record<string, string>;
}

/** The metric lines of the dashboard's widgets (CloudWatch's "." shorthand: as the line before). */
function dashboardLines(template: Template): DashboardLine[] {
  const [[, dashboard] = []] = resourcesOfType(template, 'AWS::CloudWatch::Dashboard');
  const body = String(dashboard?.Properties?.DashboardBody?.['Fn::Sub']);
  const parsed = JSON.parse(body.replace(/\$\{([^}]+)\}/g, '<$1>'));
  const lines: DashboardLine[] = [];
  for (const widget of parsed.widgets as Json[]) {
    let previous: string[] = [];
    for (const raw of (widget.properties?.metrics ?? []) as Json[][]) {
      const parts = raw.filter((x) => typeof x === 'string').map((x: string, i: number) => (x === '.' ? previous[i]! : x));
      previous = parts;
      const [namespace, metric, ...pairs] = parts as [string, string, ...string[]];
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < pairs.length; i += 2) dimensions[pairs[i]!] = pairs[i + 1]!;
      lines.push({ namespace, metric, dimensions });
    }
  }
  return lines;
}

function sameDimensions(a: Record<string, string>, b: Record<string, string>): boolean {
  return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}
