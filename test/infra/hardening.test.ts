// Stack hardening (issue 11): each property below is asserted on the packaged CloudFormation, and
// the least-privilege check reads the packaged bundles themselves.
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleCalls } from './bundle-actions.js';
import { bundleCode, differencesFromReadableTwin, readableTwin } from './bundles.js';
import {
  actionsOf,
  asArray,
  CUSTOMER_TOPIC_KEY_ARN,
  deadLetterQueueOf,
  eventSourceMappings,
  functionByKey,
  functionStatements,
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
  type LambdaFunction,
  type Packaged,
  type Statement,
  type Template,
} from './template.js';

let dev: Packaged;
beforeAll(() => {
  dev = packageStack();
});

/** Stage prod with every hardening param set away from its default: one packaging. */
const overridden = () =>
  packageStack({
    stage: 'prod',
    params: {
      httpApiThrottlingRateLimit: 7,
      httpApiThrottlingBurstLimit: 13,
      logRetentionInDays: 30,
      createOrderReservedConcurrency: 3,
      retainData: 'false',
    },
  });

// ---------------------------------------------------------------------------------------------
// CloudFormation expressions rendered as text (Ref, Fn::GetAtt, Fn::Sub, Fn::Join), each
// Fn::If branch taken in turn: to tell an ARN from a name or a URL, and to compare ARNs.

/** Stand-ins for the pseudo parameters. */
const STAND_INS: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'stack',
};
/** Resource types whose Ref is an ARN (for most, Ref is a name, an id or a URL). */
const REF_IS_ARN = new Set(['AWS::SNS::Topic', 'AWS::IAM::ManagedPolicy', 'AWS::Lambda::Version', 'AWS::StepFunctions::StateMachine']);
/** Fn::GetAtt attributes that are ARNs. */
const ARN_ATTRIBUTES = new Set(['Arn', 'TopicArn', 'StreamArn']);
/** Properties that name a resource, as they appear in its ARN. */
const NAME_PROPERTIES = ['QueueName', 'TopicName', 'TableName', 'FunctionName', 'LogGroupName'];

/** Every text an expression can take, each Fn::If branch taken in turn. */
function renderings(t: Template, expr: Json): string[] {
  if (typeof expr === 'string' || typeof expr === 'number' || typeof expr === 'boolean') return [String(expr)];
  if (Array.isArray(expr) || expr === null || typeof expr !== 'object') throw new Error(`Not a scalar expression: ${JSON.stringify(expr)}`);
  if ('Fn::If' in expr) return [...renderings(t, expr['Fn::If'][1]), ...renderings(t, expr['Fn::If'][2])];
  // `X` (Ref) or `X.Attribute` (Fn::GetAtt): an ARN of the resource's name where they are ARNs.
  const named = (name: string): string => {
    if (name in STAND_INS) return STAND_INS[name]!;
    const [id, attribute] = name.split('.');
    const r = resource(t, id!);
    const physical = NAME_PROPERTIES.map((property) => r.Properties?.[property]).find((v) => typeof v === 'string') ?? id;
    const arn = `arn:aws:${r.Type.split('::')[1]!.toLowerCase()}:us-east-1:123456789012:${physical}`;
    if (attribute === undefined) return REF_IS_ARN.has(r.Type) ? arn : `ref-of-${id}`;
    return ARN_ATTRIBUTES.has(attribute) ? arn : `${attribute}-of-${id}`;
  };
  if (typeof expr.Ref === 'string') return [named(expr.Ref)];
  if ('Fn::GetAtt' in expr) {
    const getAtt = expr['Fn::GetAtt'];
    return [named(Array.isArray(getAtt) ? getAtt.join('.') : String(getAtt))];
  }
  if ('Fn::Sub' in expr) {
    const [text, vars] = Array.isArray(expr['Fn::Sub']) ? [expr['Fn::Sub'][0], expr['Fn::Sub'][1] ?? {}] : [expr['Fn::Sub'], {}];
    return [
      String(text).replace(/\$\{([^!}][^}]*)\}/g, (_whole: string, name: string) =>
        name in vars ? renderings(t, vars[name])[0]! : named(name),
      ),
    ];
  }
  if ('Fn::Join' in expr) {
    const [separator, parts] = expr['Fn::Join'];
    let texts = [''];
    for (const [i, part] of asArray<Json>(parts).entries()) {
      const options = renderings(t, part);
      texts = texts.flatMap((prefix) => options.map((o) => (i === 0 ? o : `${prefix}${separator}${o}`)));
    }
    return texts;
  }
  throw new Error(`Cannot render ${JSON.stringify(expr)}`);
}

/** Each item a list (of statements, of policies) can hold, whichever way each Fn::If goes. */
function variants<T>(expr: Json): T[] {
  if (Array.isArray(expr)) return expr.flatMap((item) => variants<T>(item));
  if (expr === null || typeof expr !== 'object' || expr.Ref === 'AWS::NoValue') return [];
  if ('Fn::If' in expr) return [...variants<T>(expr['Fn::If'][1]), ...variants<T>(expr['Fn::If'][2])];
  return [expr as T];
}

/** Resource values of a statement, Fn::If branches and AWS::NoValue list items included. */
function resourceValues(expr: Json): Json[] {
  if (expr === undefined) return [];
  if (Array.isArray(expr)) return expr.flatMap(resourceValues);
  if (expr !== null && typeof expr === 'object' && expr.Ref === 'AWS::NoValue') return [];
  if (expr !== null && typeof expr === 'object' && Array.isArray(expr['Fn::If'])) {
    return [...resourceValues(expr['Fn::If'][1]), ...resourceValues(expr['Fn::If'][2])];
  }
  return [expr];
}

/** arn:partition:service:region:account:resource (region and account empty for S3, IAM). */
const ARN = /^arn:aws(-[a-z-]+)?:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:\S+$/;
/** Actions with no resource-level permissions: the only ones an identity policy may grant on '*'. */
const NO_RESOURCE_LEVEL_ACTIONS = new Set(['xray:PutTraceSegments', 'xray:PutTelemetryRecords']);

/**
 * `<where>: <resource text>` for every policy Resource that is not an ARN (or an allowed '*'), and
 * how many Resource texts were looked at.
 */
function nonArnResources(t: Template): { found: string[]; checked: number } {
  const found: string[] = [];
  let checked = 0;
  for (const [id, r] of Object.entries(t.Resources)) {
    const p = r.Properties ?? {};
    const docs: { where: string; kind: 'identity' | 'key' | 'resource'; doc: Json }[] = [];
    if (r.Type === 'AWS::IAM::Role') {
      for (const policy of variants<Json>(p.Policies))
        docs.push({ where: `${id}/${policy.PolicyName}`, kind: 'identity', doc: policy.PolicyDocument });
    } else if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      docs.push({ where: id, kind: 'identity', doc: p.PolicyDocument });
    } else if (r.Type === 'AWS::KMS::Key') {
      docs.push({ where: id, kind: 'key', doc: p.KeyPolicy });
    } else if (p.PolicyDocument) {
      docs.push({ where: id, kind: 'resource', doc: p.PolicyDocument });
    }
    for (const { where, kind, doc } of docs) {
      for (const s of variants<Statement>(doc?.Statement)) {
        const name = `${where}/${s.Sid ?? actionsOf(s).join(',')}`;
        if (s.NotResource !== undefined) found.push(`${name}: NotResource`);
        for (const value of resourceValues(s.Resource)) {
          for (const text of renderings(t, value)) {
            checked += 1;
            if (ARN.test(text)) continue;
            // In a key policy, '*' is the key itself; elsewhere only actions without resource-level
            // permissions may have it.
            if (text === '*' && (kind === 'key' || (kind === 'identity' && actionsOf(s).every((a) => NO_RESOURCE_LEVEL_ACTIONS.has(a)))))
              continue;
            found.push(`${name}: ${text}`);
          }
        }
      }
    }
  }
  return { found, checked };
}

// ---------------------------------------------------------------------------------------------
// The HTTP API

function httpApiStage(t: Template): Record<string, Json> {
  const stages = resourcesOfType(t, 'AWS::ApiGatewayV2::Stage');
  expect(
    stages.map(([id]) => id),
    'HTTP API stages',
  ).toHaveLength(1);
  const properties = stages[0]![1].Properties ?? {};
  expect(mustTarget(t, properties.ApiId, 'ApiId of the stage')).toBe(resourcesOfType(t, 'AWS::ApiGatewayV2::Api')[0]![0]);
  return properties;
}

describe('HTTP API', () => {
  it('throttles every route of its stage at httpApiThrottlingRateLimit/BurstLimit', () => {
    expect([dev.params.httpApiThrottlingRateLimit, dev.params.httpApiThrottlingBurstLimit]).toEqual([50, 100]);
    for (const [stack, rate, burst] of [
      [dev, 50, 100],
      [overridden(), 7, 13],
    ] as const) {
      const stage = httpApiStage(stack.template);
      expect(stage.StageName, 'the stage every request goes through').toBe('$default');
      const defaults = stage.DefaultRouteSettings ?? {};
      expect([Number(defaults.ThrottlingRateLimit), Number(defaults.ThrottlingBurstLimit)], stack.stage).toEqual([rate, burst]);
      // What osls sets there is kept.
      expect(defaults.DetailedMetricsEnabled).toBe(false);
      // No route lifted above the default.
      for (const [route, settings] of Object.entries<Json>(stage.RouteSettings ?? {})) {
        expect(Number(settings.ThrottlingRateLimit ?? 0), route).toBeLessThanOrEqual(rate);
        expect(Number(settings.ThrottlingBurstLimit ?? 0), route).toBeLessThanOrEqual(burst);
      }
    }
  });

  /** What an access log line must hold: field → the `$context` variable it logs. */
  const ACCESS_LOG_FIELDS = {
    requestId: '$context.requestId',
    ip: '$context.identity.sourceIp',
    requestTime: '$context.requestTime',
    httpMethod: '$context.httpMethod',
    routeKey: '$context.routeKey',
    status: '$context.status',
    responseLength: '$context.responseLength',
    // Why API Gateway got no answer from the integration (timeout, throttled function)...
    integrationError: '$context.integrationErrorMessage',
    // ...and why it refused the request itself (429 throttled, 404 no route).
    errorMessage: '$context.error.message',
  };

  it('writes a JSON access log line per request to a log group of its own, kept logRetentionInDays', () => {
    const t = dev.template;
    const settings = httpApiStage(t).AccessLogSettings;
    expect(settings, 'AccessLogSettings of the HTTP API stage').toBeDefined();
    const format = String(settings.Format);
    expect(format, 'one line per request').not.toMatch(/\n/);
    expect(JSON.parse(format)).toMatchObject(ACCESS_LOG_FIELDS);

    expect(settings.DestinationArn, 'the log group ARN').toEqual({ 'Fn::GetAtt': [expect.any(String), 'Arn'] });
    const groupId = mustTarget(t, settings.DestinationArn, 'DestinationArn');
    const group = resource(t, groupId);
    expect(group.Type).toBe('AWS::Logs::LogGroup');
    expect(Number(group.Properties?.RetentionInDays), `${groupId} retention`).toBe(14);
    // Its own: not a function's log group, and no function writes to it.
    const name = String(group.Properties?.LogGroupName);
    expect(name).not.toMatch(/^\/aws\/lambda\//);
    for (const fn of lambdaFunctions(t, dev.stage)) {
      expect(JSON.stringify(fn.resource.Properties?.LoggingConfig ?? {}), fn.key).not.toContain(groupId);
      for (const s of functionStatements(t, fn.id)) expect(JSON.stringify(s.Resource ?? ''), fn.key).not.toContain(groupId);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// createOrder

describe('createOrder', () => {
  it('has createOrderReservedConcurrency concurrent executions reserved, and no more', () => {
    expect(dev.params.createOrderReservedConcurrency).toBe(20);
    for (const [stack, reserved] of [
      [dev, 20],
      [overridden(), 3],
    ] as const) {
      const fn = functionByKey(stack.template, stack.stage, 'createOrder');
      expect(fn.resource.Properties?.ReservedConcurrentExecutions, stack.stage).toBe(reserved);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Logs

describe('log retention', () => {
  it("every log group, the functions' and the access logs', keeps its events logRetentionInDays days", () => {
    expect(dev.params.logRetentionInDays).toBe(14);
    for (const [stack, days] of [
      [dev, 14],
      [overridden(), 30],
    ] as const) {
      const groups = resourcesOfType(stack.template, 'AWS::Logs::LogGroup');
      // One per function, and the HTTP API's access logs.
      expect(groups.length, stack.stage).toBe(lambdaFunctions(stack.template, stack.stage).length + 1);
      for (const [id, group] of groups) expect(Number(group.Properties?.RetentionInDays), `${stack.stage} ${id}`).toBe(days);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Tables

// Point-in-time recovery per table, with the reason where it is off: test/infra/wiring.test.ts.

describe('tables', () => {
  /** Tables whose loss loses orders or money: retained outside the throwaway stages. */
  const RETAINED = ['OrdersTable', 'PaymentsTable'];
  const retention = (stack: Packaged, id: string) => {
    const r = resource(stack.template, id) as Json;
    return [r.DeletionPolicy, r.UpdateReplacePolicy, r.Properties?.DeletionProtectionEnabled];
  };

  it('retainData is on by default and off for the dev and local stages', () => {
    expect(String(packageProdWithOverrides().params.retainData)).toBe('true');
    expect(String(dev.params.retainData)).toBe('false');
    expect(String(packageStack({ stage: 'local' }).params.retainData)).toBe('false');
  });

  it.each(RETAINED)('%s is retained (deletion, replacement) and deletion-protected exactly when retainData is on', (id) => {
    expect(retention(packageProdWithOverrides(), id), 'prod').toEqual(['Retain', 'Retain', true]);
    expect(retention(overridden(), id), 'prod, retainData=false').toEqual(['Delete', 'Delete', false]);
    expect(retention(dev, id), 'dev').toEqual(['Delete', 'Delete', false]);
    expect(retention(packageStack({ stage: 'local' }), id), 'local').toEqual(['Delete', 'Delete', false]);
  });
});

// ---------------------------------------------------------------------------------------------
// Topics

describe('topics', () => {
  const policiesOf = (t: Template, topic: string) =>
    resourcesOfType(t, 'AWS::SNS::TopicPolicy').filter(([, r]) => asArray(r.Properties?.Topics).some((x) => targetId(x) === topic));

  it('every topic refuses requests not sent over TLS, with one policy', () => {
    const t = dev.template;
    const topics = resourcesOfType(t, 'AWS::SNS::Topic').map(([id]) => id);
    expect(topics.sort()).toEqual(['AlarmTopic', 'OrderEventsTopic']);
    for (const topic of topics) {
      const policies = policiesOf(t, topic);
      // A second policy on the same topic would replace the first.
      expect(
        policies.map(([id]) => id),
        `policies of ${topic}`,
      ).toHaveLength(1);
      const denies = statementsOf(t, policies[0]![1].Properties?.PolicyDocument).filter(
        (s) =>
          s.Effect === 'Deny' &&
          (s.Principal === '*' || JSON.stringify(s.Principal) === JSON.stringify({ AWS: '*' })) &&
          actionsOf(s).some((a) => ['sns:publish', 'sns:*', '*'].includes(a.toLowerCase())) &&
          asArray(s.Resource).map(targetId).includes(topic) &&
          JSON.stringify(s.Condition) === JSON.stringify({ Bool: { 'aws:SecureTransport': 'false' } }),
      );
      expect(denies, `${topic}: no Deny of sns:Publish when aws:SecureTransport is false`).toHaveLength(1);
    }
  });

  it('keeps what the topic policies allowed: CloudWatch alarms of this account publish to the alarm topic', () => {
    const t = dev.template;
    const allows = policiesOf(t, 'AlarmTopic')
      .flatMap(([, r]) => statementsOf(t, r.Properties?.PolicyDocument))
      .filter((s) => s.Effect === 'Allow');
    expect(allows.map((s) => [s.Principal, actionsOf(s)])).toEqual([[{ Service: 'cloudwatch.amazonaws.com' }, ['sns:Publish']]]);
    // The order events topic allows nothing through its policy: its publishers' roles do.
    const orderEvents = policiesOf(t, 'OrderEventsTopic').flatMap(([, r]) => statementsOf(t, r.Properties?.PolicyDocument));
    expect(orderEvents.filter((s) => s.Effect === 'Allow')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// KMS key policies

/**
 * Service principals whose requests to KMS carry no aws:SourceAccount/aws:SourceArn, so that a
 * condition on them would refuse every request. None in this stack; EventBridge delivering to an
 * encrypted topic is the case AWS documents, should a forker add one.
 */
const UNCONDITIONABLE_SERVICES: Record<string, string> = {
  'events.amazonaws.com': "EventBridge's KMS requests carry neither key: a condition would drop every event silently",
};

describe('KMS key policies', () => {
  it("grant a service principal the key only for this account's resources (aws:SourceAccount / aws:SourceArn)", () => {
    const t = dev.template;
    const keys = resourcesOfType(t, 'AWS::KMS::Key');
    expect(keys.length).toBeGreaterThan(0);
    let checked = 0;
    for (const [id, key] of keys) {
      for (const s of statementsOf(t, key.Properties?.KeyPolicy)) {
        const services = asArray<string>(s.Principal?.Service);
        if (s.Effect !== 'Allow' || services.length === 0) continue;
        if (services.every((service) => service in UNCONDITIONABLE_SERVICES)) continue;
        checked += 1;
        const where = `${id}/${s.Sid ?? services.join(',')}`;
        const keysUsed = Object.values(s.Condition ?? {}).flatMap((c) => Object.keys(c));
        expect(
          keysUsed.filter((k) => ['aws:SourceAccount', 'aws:SourceArn'].includes(k)),
          `${where}: no source condition`,
        ).not.toEqual([]);
        // Each condition names this account.
        const account = s.Condition?.StringEquals?.['aws:SourceAccount'];
        if (account !== undefined) expect(account, `${where} aws:SourceAccount`).toEqual({ Ref: 'AWS::AccountId' });
        for (const operator of ['ArnLike', 'ArnEquals']) {
          const arn = s.Condition?.[operator]?.['aws:SourceArn'];
          if (arn !== undefined) expect(JSON.stringify(arn), `${where} aws:SourceArn`).toContain(':${AWS::AccountId}:');
        }
        expect(
          Object.keys(s.Condition ?? {}).filter((o) => /^String(Not)?Like$|IfExists$|^ForAnyValue/.test(o)),
          `${where}: a loose operator`,
        ).toEqual([]);
      }
    }
    expect(checked, 'service principal grants checked').toBeGreaterThan(0);
  });

  it("the alarm topic key admits CloudWatch for this account's alarms in this region", () => {
    const t = dev.template;
    const grant = statementsOf(t, resource(t, 'AlarmTopicKey').Properties?.KeyPolicy).find((s) =>
      asArray(s.Principal?.Service).includes('cloudwatch.amazonaws.com'),
    );
    expect(grant?.Condition).toEqual({
      StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
      ArnLike: { 'aws:SourceArn': { 'Fn::Sub': 'arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*' } },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Dead-letter queues

describe('dead-letter queues', () => {
  it.each(['dev', 'prod'])('each lets only its own source queue use it as a dead-letter queue (%s)', (stage) => {
    const t = stage === 'dev' ? dev.template : overridden().template;
    const queues = sourceQueues(t);
    expect(queues.length).toBeGreaterThan(0);
    for (const queue of queues) {
      const dlq = deadLetterQueueOf(t, queue)!;
      const policy = resource(t, dlq).Properties?.RedriveAllowPolicy;
      const parsed = typeof policy === 'string' ? JSON.parse(policy) : policy;
      expect(parsed?.redrivePermission, `${dlq} redrivePermission`).toBe('byQueue');
      // The ARN as built (Fn::Sub from the queue's name: a GetAtt would close a cycle), against the
      // ARN of the queue of that name.
      const named = asArray<Json>(parsed.sourceQueueArns).flatMap((arn) => renderings(t, arn));
      expect(named, `${dlq} sourceQueueArns`).toEqual(renderings(t, { 'Fn::GetAtt': [queue, 'Arn'] }));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Least privilege, from the code: no role holds a DynamoDB, SNS, SQS or S3 action its function's
// bundle never calls.

/** Services whose actions a role may hold only if the bundle calls them. */
const CHECKED_SERVICES = ['dynamodb', 'sns', 'sqs', 's3'];
/**
 * Granted without a call that sends it: s3:ListBucket makes S3 answer GetObject on a missing key
 * with 404 rather than 403, which is how a consumer tells a deleted claim-check object from a
 * permission fault (lib/claim-check.ts). No bundle lists the bucket.
 */
const GRANTED_FOR_THEIR_EFFECT = ['s3:ListBucket'];
/**
 * What the Lambda service itself calls with the function's role to run its SQS event source
 * mapping (poll, delete what succeeded, read the queue's attributes): never in the bundle, and
 * exempt only on the queue the function's mapping reads.
 */
const EVENT_SOURCE_MAPPING_ACTIONS = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'];

/**
 * The packaged bundles are minified; the calls are read from their readable twin (bundles.ts), the
 * same packaging with `minify=false` and nothing else changed (checked below, for each bundle).
 */
function readableBundleOf(readable: Packaged, fn: LambdaFunction): string {
  return bundleCode(readable, fn.key);
}

/**
 * `<function>: <action> on <resource>` for each checked action its role (in `stack`) holds and its
 * bundle (read in `readable`, the readable twin of stack's bundles) never calls, and how many
 * granted actions were checked.
 */
function uncalledGrants(stack: Packaged, readable: Packaged): { found: string[]; checked: number } {
  const t = stack.template;
  const found: string[] = [];
  let checked = 0;
  for (const fn of lambdaFunctions(t, stack.stage)) {
    const called = bundleCalls(readableBundleOf(readable, fn)).actions;
    const mappedQueues = eventSourceMappings(t)
      .filter((m) => m.functionId === fn.id)
      .map((m) => m.queueId);
    for (const s of functionStatements(t, fn.id)) {
      if (s.Effect !== 'Allow') continue;
      const resources = asArray(s.Resource);
      const onMappedQueues = resources.length > 0 && resources.every((r) => mappedQueues.includes(targetId(r) ?? ''));
      if (s.NotAction !== undefined) found.push(`${fn.key}: NotAction ${JSON.stringify(s.NotAction)}`);
      for (const action of actionsOf(s)) {
        if (!CHECKED_SERVICES.includes(action.split(':')[0]!.toLowerCase())) continue;
        if (EVENT_SOURCE_MAPPING_ACTIONS.includes(action) && onMappedQueues) continue;
        if (GRANTED_FOR_THEIR_EFFECT.includes(action)) continue;
        checked += 1;
        if (!called.has(action)) found.push(`${fn.key}: ${action} on ${JSON.stringify(s.Resource)}`);
      }
    }
  }
  return { found, checked };
}

/** The packaging whose bundles a combination of params ships: only `tracing` changes them. */
const bundlesFor = (params: Record<string, string>) => packageStack({ params: params.tracing ? { tracing: params.tracing } : {} });

describe('least privilege, read from the bundles', () => {
  it.each(['false', 'true'])(
    'reads them in a readable twin that differs in minification alone (tracing=%s)',
    (tracing) => {
      const shipped = bundlesFor({ tracing });
      expect(differencesFromReadableTwin(shipped, readableTwin(shipped))).toEqual([]);
    },
    180_000,
  );

  it('reads the commands a bundle sends, not the ones it merely contains', () => {
    const readable = readableTwin(dev);
    const sent = (key: string) => bundleCalls(readableBundleOf(readable, functionByKey(dev.template, dev.stage, key)));
    const createOrder = sent('createOrder');
    expect([...createOrder.actions]).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'sns:Publish']));
    // getOrder's bundle defines QueryCommand and ScanCommand (lib-dynamodb's paginators keep them)
    // and never sends them.
    const getOrder = sent('getOrder');
    expect([...getOrder.defined]).toEqual(expect.arrayContaining(['QueryCommand', 'ScanCommand']));
    expect([...getOrder.actions].filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:GetItem']);
    // The sweep does query (its index), the consumers back off with ChangeMessageVisibilityBatch.
    expect([...sent('sweepOrders').actions]).toContain('dynamodb:Query');
    expect([...sent('payment').actions]).toEqual(expect.arrayContaining(['sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl']));
    // The claim-check bucket's calls, in a module loaded by import() (esbuild's lazy-init wrapper).
    expect([...createOrder.actions]).toContain('s3:PutObject');
    expect([...sent('inventory').actions]).toEqual(expect.arrayContaining(['s3:GetObject', 's3:DeleteObject']));
  });

  it('finds no uncalled action with tracing off (the default)', () => {
    const { found, checked } = uncalledGrants(dev, readableTwin(dev));
    expect(found).toEqual([]);
    expect(checked, 'DynamoDB, SNS, SQS and S3 actions granted to the roles').toBeGreaterThan(20);
  });
});

// ---------------------------------------------------------------------------------------------
// Every combination of the params that change what the template grants: tracing,
// topicKmsKeyId, alarmEmail, retainData. Each is packaged once (test/infra/template.ts caches
// it), only the params that differ from stage dev's passed, so that variants other test files
// package are shared.

const COMBINATIONS: Record<string, string>[] = [];
for (const tracing of ['false', 'true'])
  for (const topicKmsKeyId of ['alias/aws/sns', CUSTOMER_TOPIC_KEY_ARN])
    for (const alarmEmail of ['', 'ops@example.com'])
      for (const retainData of ['false', 'true']) {
        const params: Record<string, string> = {};
        if (tracing !== 'false') params.tracing = tracing;
        if (topicKmsKeyId !== 'alias/aws/sns') params.topicKmsKeyId = topicKmsKeyId;
        if (alarmEmail !== '') params.alarmEmail = alarmEmail;
        if (retainData !== 'false') params.retainData = retainData;
        COMBINATIONS.push(params);
      }
const label = (params: Record<string, string>) =>
  Object.entries(params)
    .map(([k, v]) => `${k}=${v === CUSTOMER_TOPIC_KEY_ARN ? 'own key ARN' : v}`)
    .join(' ') || 'stage dev defaults';

describe.each(COMBINATIONS.map((params) => [label(params), params] as const))('with %s', (_label, params) => {
  let stack: Packaged;
  let shipped: Packaged;
  beforeAll(() => {
    stack = packageStack({ params });
    shipped = bundlesFor(params);
  }, 180_000);

  it('ships the bundles of the packaging with the same tracing, byte for byte', () => {
    for (const key of Object.keys(stack.artifacts)) expect(bundleCode(stack, key) === bundleCode(shipped, key), key).toBe(true);
  });

  it('every IAM Resource, in every branch of every Fn::If, is an ARN (or a documented *)', () => {
    const { found, checked } = nonArnResources(stack.template);
    expect(found).toEqual([]);
    // Roles, queue, topic, key and bucket policies: dozens of Resources.
    expect(checked).toBeGreaterThan(40);
  });

  it('no role holds a DynamoDB, SNS, SQS or S3 action its bundle never calls', () => {
    expect(uncalledGrants(stack, readableTwin(shipped)).found).toEqual([]);
  });
});
