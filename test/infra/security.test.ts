// Encryption at rest and least privilege: one role per function, each granted only what it does.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  actionsOf,
  asArray,
  eventSourceMappings,
  functionByKey,
  functionStatements,
  lambdaFunctions,
  orderEventsTopic,
  CUSTOMER_TOPIC_KEY_ARN,
  packageProdWithOverrides,
  packageStack,
  referencedIds,
  resource,
  resourcesOfType,
  roleOf,
  roleStatements,
  statementsOf,
  targetId,
  type Json,
  type Packaged,
  type Statement,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

const fns = () => lambdaFunctions(t, stack.stage);
/** The functions given the order events topic (ORDER_EVENTS_TOPIC_ARN): the ones that publish. */
const publishersIn = (template: Template, stage: string) =>
  lambdaFunctions(template, stage)
    .filter((fn) => referencedIds(fn.resource.Properties?.Environment ?? {}).has(orderEventsTopic(template)))
    .map((fn) => fn.key)
    .sort();
const READ_ONLY = ['getInventory', 'getOrder'];

/** Every policy document in the template, identity and resource policies alike. */
function policyDocuments(template: Template): { where: string; kind: 'identity' | 'resource'; statements: Statement[] }[] {
  const docs: { where: string; kind: 'identity' | 'resource'; statements: Statement[] }[] = [];
  for (const [id, r] of Object.entries(template.Resources)) {
    const p = r.Properties ?? {};
    if (r.Type === 'AWS::IAM::Role') {
      for (const policy of asArray<Json>(p.Policies)) {
        docs.push({ where: `${id}/${policy.PolicyName}`, kind: 'identity', statements: statementsOf(template, policy.PolicyDocument) });
      }
    } else if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      docs.push({ where: id, kind: 'identity', statements: statementsOf(template, p.PolicyDocument) });
    } else if (r.Type === 'AWS::KMS::Key') {
      docs.push({ where: id, kind: 'resource', statements: statementsOf(template, p.KeyPolicy) });
    } else if (p.PolicyDocument) {
      docs.push({ where: id, kind: 'resource', statements: statementsOf(template, p.PolicyDocument) });
    }
  }
  return docs;
}

function label(where: string, s: Statement): string {
  return `${where}/${s.Sid ?? actionsOf(s).join(',')}`;
}

/** The only Allow statements with Resource '*', and why AWS leaves no choice. */
const WILDCARD_RESOURCE_EXCEPTIONS: Record<string, string> = {
  'AlarmTopicKey/AccountAdministersKey': 'In a KMS key policy, Resource "*" means the key the policy is attached to.',
  'AlarmTopicKey/CloudWatchAlarmsPublishToEncryptedTopic': 'In a KMS key policy, Resource "*" means the key the policy is attached to.',
};
/** Actions without resource-level permissions: the only ones an identity policy may grant on '*'. */
const NO_RESOURCE_LEVEL_ACTIONS = new Set(['xray:PutTraceSegments', 'xray:PutTelemetryRecords']);

/** The only Allow statements whose actions are wildcards. */
const WILDCARD_ACTION_EXCEPTIONS: Record<string, string> = {
  'AlarmTopicKey/AccountAdministersKey: kms:*':
    'Default key policy: the account administers its key through IAM; without it the key is unmanageable.',
  'AlarmTopicKey/CloudWatchAlarmsPublishToEncryptedTopic: kms:GenerateDataKey*':
    'What AWS documents for CloudWatch alarms publishing to an SSE topic.',
};

describe('encryption at rest', () => {
  it('every queue is encrypted (SSE-SQS or KMS)', () => {
    const queues = resourcesOfType(t, 'AWS::SQS::Queue');
    expect(queues.length).toBeGreaterThan(0);
    for (const [id, r] of queues) {
      const p = r.Properties ?? {};
      expect(p.SqsManagedSseEnabled === true || p.KmsMasterKeyId !== undefined, `${id} is not encrypted`).toBe(true);
    }
  });

  it('every topic is encrypted with KMS', () => {
    const topics = resourcesOfType(t, 'AWS::SNS::Topic');
    expect(topics.length).toBeGreaterThan(0);
    for (const [id, r] of topics) {
      expect(r.Properties?.KmsMasterKeyId, `${id} has no KmsMasterKeyId`).toBeTruthy();
    }
  });

  it('every table is encrypted', () => {
    const tables = resourcesOfType(t, 'AWS::DynamoDB::Table');
    expect(tables.length).toBeGreaterThan(0);
    for (const [id, r] of tables) expect(r.Properties?.SSESpecification?.SSEEnabled, `${id} SSEEnabled`).toBe(true);
  });

  it('a publisher may use the customer-managed key the order events topic is encrypted with', () => {
    // Publishing to an SSE topic needs kms:GenerateDataKey and kms:Decrypt on its key. The
    // AWS-managed alias/aws/sns grants them to the account itself; a key of your own
    // (`--param topicKmsKeyId=<key ARN>`, as serverless.yml invites) grants them only through IAM.
    const keyArn = CUSTOMER_TOPIC_KEY_ARN;
    const own = packageProdWithOverrides();
    const topic = resource(own.template, orderEventsTopic(own.template));
    expect(topic.Properties?.KmsMasterKeyId).toBe(keyArn);
    const missing: string[] = [];
    const publishers = publishersIn(own.template, own.stage);
    expect(publishers.length).toBeGreaterThan(0);
    for (const key of publishers) {
      const fn = functionByKey(own.template, own.stage, key);
      const granted = new Set(
        functionStatements(own.template, fn.id)
          .filter((s) => s.Effect === 'Allow' && asArray(s.Resource).includes(keyArn))
          .flatMap(actionsOf),
      );
      const canEncrypt = granted.has('kms:GenerateDataKey') || granted.has('kms:GenerateDataKey*');
      if (!canEncrypt || !granted.has('kms:Decrypt')) missing.push(key);
    }
    expect(
      missing,
      'publishers without kms:GenerateDataKey + kms:Decrypt on the topic key: sns:Publish fails with KMS AccessDenied',
    ).toEqual([]);
  });
});

describe('least privilege', () => {
  it('every function runs as a role of its own, assumable only by Lambda', () => {
    const roles = new Map<string, string>();
    for (const fn of fns()) {
      const role = roleOf(t, fn.id); // throws unless Role is a Ref/GetAtt of an AWS::IAM::Role
      expect(roles.get(role), `${fn.key} and ${roles.get(role)} share ${role}`).toBeUndefined();
      roles.set(role, fn.key);
      const trust = statementsOf(t, resource(t, role).Properties?.AssumeRolePolicyDocument);
      expect(
        trust.map((s) => [s.Effect, s.Principal, actionsOf(s)]),
        `${role} trust policy`,
      ).toEqual([['Allow', { Service: 'lambda.amazonaws.com' }, ['sts:AssumeRole']]]);
    }
    expect(roles.size).toBe(fns().length);
  });

  it("Resource '*' appears only in the allow-listed statements", () => {
    const found: string[] = [];
    for (const doc of policyDocuments(t)) {
      for (const s of doc.statements) {
        if (s.Effect !== 'Allow') continue;
        if (s.NotResource !== undefined) found.push(`${label(doc.where, s)} (NotResource)`);
        if (!asArray(s.Resource).some((r) => r === '*')) continue;
        found.push(label(doc.where, s));
        if (doc.kind === 'identity') {
          const others = actionsOf(s).filter((a) => !NO_RESOURCE_LEVEL_ACTIONS.has(a));
          expect(others, `${label(doc.where, s)} grants actions that support resource ARNs on '*'`).toEqual([]);
        }
      }
    }
    expect(found.sort()).toEqual(Object.keys(WILDCARD_RESOURCE_EXCEPTIONS).sort());
  });

  it('no Allow grants a wildcard action (sqs:*, dynamodb:*, …) outside the allow-list', () => {
    const found: string[] = [];
    for (const doc of policyDocuments(t)) {
      for (const s of doc.statements) {
        if (s.Effect !== 'Allow') continue;
        if (s.NotAction !== undefined) found.push(`${label(doc.where, s)}: NotAction`);
        for (const action of actionsOf(s)) if (action.includes('*')) found.push(`${label(doc.where, s)}: ${action}`);
      }
    }
    expect(found.sort()).toEqual(Object.keys(WILDCARD_ACTION_EXCEPTIONS).sort());
  });

  it('no resource policy allows anonymous principals', () => {
    for (const doc of policyDocuments(t)) {
      for (const s of doc.statements) {
        if (s.Effect !== 'Allow' || doc.kind !== 'resource') continue;
        const principals = s.Principal === '*' ? ['*'] : asArray(s.Principal?.AWS);
        expect(principals, `${label(doc.where, s)} allows everyone`).not.toContain('*');
      }
    }
  });

  it('a function writes logs only to its own log group', () => {
    const logGroups = new Map(resourcesOfType(t, 'AWS::Logs::LogGroup').map(([id, r]) => [String(r.Properties?.LogGroupName), id]));
    for (const fn of fns()) {
      const own = logGroups.get(`/aws/lambda/${fn.resource.Properties?.FunctionName}`);
      expect(own, `${fn.key} has no log group`).toBeDefined();
      for (const s of functionStatements(t, fn.id).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')))) {
        expect([...referencedIds(s.Resource)], `${fn.key} logs statement`).toEqual([own]);
      }
    }
  });

  it('sqs actions on a queue appear only in the role of the function that consumes it', () => {
    const consumerRoles = new Map<string, Set<string>>(); // queue → roles of its consumers
    for (const m of eventSourceMappings(t)) {
      const roles = consumerRoles.get(m.queueId) ?? new Set();
      roles.add(roleOf(t, m.functionId));
      consumerRoles.set(m.queueId, roles);
    }
    for (const [role] of resourcesOfType(t, 'AWS::IAM::Role')) {
      for (const s of roleStatements(t, role)) {
        if (s.Effect !== 'Allow' || !actionsOf(s).some((a) => a.startsWith('sqs:'))) continue;
        for (const r of asArray(s.Resource)) {
          const queue = targetId(r);
          expect(queue, `${role} grants sqs actions on ${JSON.stringify(r)}, not a queue of the stack`).toBeDefined();
          expect([...(consumerRoles.get(queue!) ?? [])], `${role} grants sqs actions on ${queue}`).toContain(role);
        }
      }
    }
  });

  it("a function's role references no queue but the one it consumes", () => {
    const queues = new Set(resourcesOfType(t, 'AWS::SQS::Queue').map(([id]) => id));
    for (const fn of fns()) {
      const consumed = eventSourceMappings(t)
        .filter((m) => m.functionId === fn.id)
        .map((m) => m.queueId);
      const touched = new Set<string>();
      for (const s of functionStatements(t, fn.id)) {
        for (const id of referencedIds([s.Resource, s.Condition])) if (queues.has(id)) touched.add(id);
        // A hard-coded queue ARN would dodge the reference check.
        expect(JSON.stringify(s.Resource ?? ''), `${fn.key} names a queue ARN literally`).not.toMatch(/:sqs:/);
      }
      expect([...touched].sort(), fn.key).toEqual(consumed.sort());
    }
  });

  it('a consumer may receive, delete and delay (backoff) messages of its queue', () => {
    for (const m of eventSourceMappings(t)) {
      const granted = functionStatements(t, m.functionId)
        .filter((s) => s.Effect === 'Allow' && asArray(s.Resource).some((r) => targetId(r) === m.queueId))
        .flatMap(actionsOf);
      expect(granted, m.functionId).toEqual(
        expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ChangeMessageVisibility']),
      );
    }
  });

  it('only the publishers (the functions given the topic) may sns:Publish, and only to the order events topic', () => {
    const topic = orderEventsTopic(t);
    const publishers: string[] = [];
    for (const fn of fns()) {
      const publish = functionStatements(t, fn.id).filter(
        (s) => s.Effect === 'Allow' && actionsOf(s).some((a) => a.toLowerCase() === 'sns:publish'),
      );
      if (publish.length > 0) publishers.push(fn.key);
      for (const s of publish) {
        expect(asArray(s.Resource).map(targetId), `${fn.key} publishes to`).toEqual(asArray(s.Resource).map(() => topic));
      }
    }
    expect(publishers.sort()).toEqual(publishersIn(t, stack.stage));
  });

  it.each(READ_ONLY)('%s only reads (dynamodb:GetItem/Query) and writes its logs', (key) => {
    const fn = functionByKey(t, stack.stage, key);
    const actions = new Set(
      functionStatements(t, fn.id)
        .filter((s) => s.Effect === 'Allow')
        .flatMap(actionsOf),
    );
    const data = [...actions].filter((a) => !['logs:CreateLogStream', 'logs:PutLogEvents'].includes(a));
    expect(data.length).toBeGreaterThan(0);
    for (const action of data) expect(['dynamodb:GetItem', 'dynamodb:Query'], `${key} may ${action}`).toContain(action);
  });

  it('a function touches only the tables it is configured with (environment)', () => {
    const tables = new Set(resourcesOfType(t, 'AWS::DynamoDB::Table').map(([id]) => id));
    for (const fn of fns()) {
      const configured = referencedIds(fn.resource.Properties?.Environment ?? {});
      for (const s of functionStatements(t, fn.id)) {
        for (const id of referencedIds(s.Resource)) {
          if (tables.has(id)) expect([...configured], `${fn.key} is granted ${id}`).toContain(id);
        }
      }
    }
  });
});
