// Reads the CloudFormation template that `serverless package` generates and resolves the
// intrinsic functions it uses into local values. The template is the one description of the stack:
// everything the local runtime creates or runs is found here, nothing is listed twice.

import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';

// The one set of CloudFormation types of the repository: the local runtime reads values as
// `unknown` and narrows them; the infra tests (test/infra/template.ts) read them as `Json`, loose
// on purpose so that an assertion can walk into a property without a guard at every step.
export interface CfnResource<Value = unknown> {
  Type: string;
  Properties?: Record<string, Value>;
  Condition?: string;
  DependsOn?: string | string[];
}

export interface CfnTemplate<Value = unknown> {
  Parameters?: Record<string, { Default?: Value }>;
  Conditions?: Record<string, Value>;
  Resources: Record<string, CfnResource<Value>>;
  Outputs?: Record<string, { Value: Value; Export?: Value; Description?: string }>;
}

export interface StackContext {
  region: string;
  accountId: string;
  partition: string;
  stackName: string;
}

/** What a provisioned resource answers to `Ref` and `Fn::GetAtt`, once it really exists. */
export interface PhysicalResource {
  ref: string;
  attributes?: Record<string, string>;
}

export async function readTemplate(templatePath: string): Promise<CfnTemplate> {
  const template = JSON.parse(await readFile(templatePath, 'utf8')) as CfnTemplate;
  if (!template.Resources || typeof template.Resources !== 'object') {
    throw new Error(`${templatePath} has no Resources: is it a CloudFormation template?`);
  }
  return template;
}

/** Marker for AWS::NoValue: the property it stands for is removed from its object or list. */
const NO_VALUE = Symbol('AWS::NoValue');

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The single key of an intrinsic function object such as { "Fn::GetAtt": [...] }, if it is one. */
function intrinsicOf(value: unknown): [string, unknown] | undefined {
  if (!isRecord(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const key = keys[0]!;
  if (key === 'Ref' || key === 'Condition' || key.startsWith('Fn::')) return [key, value[key]];
  return undefined;
}

const PSEUDO_PARAMETERS = [
  'AWS::Region',
  'AWS::AccountId',
  'AWS::Partition',
  'AWS::StackName',
  'AWS::StackId',
  'AWS::URLSuffix',
  'AWS::NoValue',
];

export class StackResolver {
  readonly template: CfnTemplate;
  readonly context: StackContext;
  readonly #physical = new Map<string, PhysicalResource>();
  readonly #conditions = new Map<string, boolean>();

  constructor(template: CfnTemplate, context: StackContext) {
    this.template = template;
    this.context = context;
  }

  resources(type?: string): Array<[string, CfnResource]> {
    return Object.entries(this.template.Resources).filter(
      ([, resource]) => (type === undefined || resource.Type === type) && this.isCreated(resource),
    );
  }

  resource(logicalId: string): CfnResource {
    const resource = this.template.Resources[logicalId];
    if (!resource) throw new Error(`The template has no resource ${logicalId}`);
    return resource;
  }

  /** A resource whose Condition is false does not exist in the stack. */
  isCreated(resource: CfnResource): boolean {
    return resource.Condition === undefined || this.condition(resource.Condition);
  }

  /** Records the identity of a resource once it has been created (e.g. the URL of a queue). */
  setPhysical(logicalId: string, physical: PhysicalResource): void {
    this.#physical.set(logicalId, physical);
  }

  condition(name: string): boolean {
    const known = this.#conditions.get(name);
    if (known !== undefined) return known;
    const definition = this.template.Conditions?.[name];
    if (definition === undefined) throw new Error(`The template has no condition ${name}`);
    const value = this.resolve(definition);
    if (typeof value !== 'boolean') throw new Error(`Condition ${name} is not a boolean`);
    this.#conditions.set(name, value);
    return value;
  }

  /** Resolves every intrinsic function in a value, deeply. */
  resolve(value: unknown): unknown {
    const resolved = this.#resolve(value);
    return resolved === NO_VALUE ? undefined : resolved;
  }

  resolveString(value: unknown, what: string): string {
    const resolved = this.resolve(value);
    if (typeof resolved === 'string') return resolved;
    if (typeof resolved === 'number' || typeof resolved === 'boolean') return String(resolved);
    throw new Error(`${what} does not resolve to a string: ${JSON.stringify(resolved)}`);
  }

  /** The logical ids a value refers to, through Ref, Fn::GetAtt and Fn::Sub. */
  dependencies(value: unknown, found = new Set<string>()): Set<string> {
    const intrinsic = intrinsicOf(value);
    if (intrinsic) {
      const [name, argument] = intrinsic;
      if (name === 'Ref' && typeof argument === 'string' && this.template.Resources[argument]) found.add(argument);
      if (name === 'Fn::GetAtt') {
        const [id] = typeof argument === 'string' ? argument.split('.') : (argument as unknown[]);
        if (typeof id === 'string' && this.template.Resources[id]) found.add(id);
      }
      if (name === 'Fn::Sub') {
        const text = Array.isArray(argument) ? argument[0] : argument;
        if (typeof text === 'string') {
          for (const match of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
            const id = match[1]!.split('.')[0]!;
            if (this.template.Resources[id]) found.add(id);
          }
        }
      }
    }
    const children = Array.isArray(value) ? value : isRecord(value) ? Object.values(value) : [];
    for (const item of children) this.dependencies(item, found);
    return found;
  }

  ref(name: string): string {
    switch (name) {
      case 'AWS::Region':
        return this.context.region;
      case 'AWS::AccountId':
        return this.context.accountId;
      case 'AWS::Partition':
        return this.context.partition;
      case 'AWS::StackName':
        return this.context.stackName;
      case 'AWS::StackId':
        return `arn:${this.context.partition}:cloudformation:${this.context.region}:${this.context.accountId}:stack/${this.context.stackName}/00000000-0000-0000-0000-000000000000`;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
    }
    const parameter = this.template.Parameters?.[name];
    if (parameter) {
      if (parameter.Default === undefined) throw new Error(`Parameter ${name} has no Default`);
      return String(parameter.Default);
    }
    const physical = this.#physical.get(name);
    if (physical) return physical.ref;
    const resource = this.resource(name);
    switch (resource.Type) {
      case 'AWS::SQS::Queue':
        // A queue's Ref is its URL, which only the service that created it knows.
        throw new Error(`Ref ${name}: queue URL unknown until the queue is created`);
      case 'AWS::SNS::Topic':
        return this.arn(name);
      case 'AWS::ApiGatewayV2::Api':
      case 'AWS::ApiGatewayV2::Integration':
      case 'AWS::ApiGatewayV2::Route':
      case 'AWS::ApiGatewayV2::Stage':
        // API Gateway identifies these by generated ids (e.g. an API id of 10 characters).
        return this.#shortId(name);
      default:
        return this.physicalName(name);
    }
  }

  getAtt(logicalId: string, attribute: string): string {
    const provided = this.#physical.get(logicalId)?.attributes?.[attribute];
    if (provided !== undefined) return provided;
    const resource = this.resource(logicalId);
    if (attribute === 'Arn') return this.arn(logicalId);
    switch (`${resource.Type}.${attribute}`) {
      case 'AWS::SQS::Queue.QueueName':
      case 'AWS::SNS::Topic.TopicName':
      case 'AWS::Events::Rule.Name':
        return this.physicalName(logicalId);
      case 'AWS::SQS::Queue.QueueUrl':
        return this.ref(logicalId);
      case 'AWS::SNS::Topic.TopicArn':
        return this.arn(logicalId);
      case 'AWS::KMS::Key.KeyId':
        return this.#keyId(logicalId);
    }
    throw new Error(`Fn::GetAtt ${logicalId}.${attribute} (${resource.Type}) is not supported locally`);
  }

  /** The name CloudFormation gives a resource: its name property, or stack-logicalId if unnamed. */
  physicalName(logicalId: string): string {
    const resource = this.resource(logicalId);
    const nameProperty = NAME_PROPERTIES[resource.Type];
    const declared = nameProperty ? resource.Properties?.[nameProperty] : undefined;
    if (declared !== undefined) return this.resolveString(declared, `${logicalId}.${nameProperty}`);
    const generated = `${this.context.stackName}-${logicalId}`;
    if (resource.Type === 'AWS::SQS::Queue' && resource.Properties?.FifoQueue) return `${generated}.fifo`;
    return generated;
  }

  arn(logicalId: string): string {
    const provided = this.#physical.get(logicalId)?.attributes?.Arn;
    if (provided) return provided;
    const { partition, region, accountId } = this.context;
    const resource = this.resource(logicalId);
    const name = () => this.physicalName(logicalId);
    switch (resource.Type) {
      case 'AWS::SQS::Queue':
        return `arn:${partition}:sqs:${region}:${accountId}:${name()}`;
      case 'AWS::SNS::Topic':
        return `arn:${partition}:sns:${region}:${accountId}:${name()}`;
      case 'AWS::DynamoDB::Table':
        return `arn:${partition}:dynamodb:${region}:${accountId}:table/${name()}`;
      case 'AWS::S3::Bucket':
        return `arn:${partition}:s3:::${name()}`;
      case 'AWS::Lambda::Function':
        return `arn:${partition}:lambda:${region}:${accountId}:function:${name()}`;
      case 'AWS::Events::Rule':
        return `arn:${partition}:events:${region}:${accountId}:rule/${name()}`;
      case 'AWS::IAM::Role':
        return `arn:${partition}:iam::${accountId}:role/${name()}`;
      case 'AWS::Logs::LogGroup':
        return `arn:${partition}:logs:${region}:${accountId}:log-group:${name()}:*`;
      case 'AWS::KMS::Key':
        return `arn:${partition}:kms:${region}:${accountId}:key/${this.#keyId(logicalId)}`;
      default: {
        // Resources the local runtime does not run (alarms, dashboards...) still get a stable,
        // well-formed ARN, so that templates referring to them resolve.
        const [, service = 'unknown', kind = 'resource'] = resource.Type.split('::');
        return `arn:${partition}:${service.toLowerCase()}:${region}:${accountId}:${kind.toLowerCase()}/${name()}`;
      }
    }
  }

  #resolve(value: unknown): unknown {
    const intrinsic = intrinsicOf(value);
    if (intrinsic) return this.#intrinsic(intrinsic[0], intrinsic[1]);
    if (Array.isArray(value)) return value.map((item) => this.#resolve(item)).filter((item) => item !== NO_VALUE);
    if (isRecord(value)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        const resolved = this.#resolve(item);
        if (resolved !== NO_VALUE) out[key] = resolved;
      }
      return out;
    }
    return value;
  }

  #intrinsic(name: string, argument: unknown): unknown {
    switch (name) {
      case 'Ref':
        if (argument === 'AWS::NoValue') return NO_VALUE;
        return this.ref(String(argument));
      case 'Condition':
        return this.condition(String(argument));
      case 'Fn::GetAtt': {
        const [logicalId, ...attribute] = typeof argument === 'string' ? argument.split('.') : (argument as string[]);
        return this.getAtt(String(logicalId), attribute.join('.'));
      }
      case 'Fn::Sub':
        return this.#sub(argument);
      case 'Fn::Join': {
        const [delimiter, list] = argument as [string, unknown];
        const items = this.#resolve(list);
        if (!Array.isArray(items)) throw new Error('Fn::Join needs a list');
        return items.join(delimiter);
      }
      case 'Fn::Select': {
        const [index, list] = argument as [unknown, unknown];
        const items = this.#resolve(list);
        if (!Array.isArray(items)) throw new Error('Fn::Select needs a list');
        return items[Number(this.#resolve(index))];
      }
      case 'Fn::Split': {
        const [delimiter, text] = argument as [string, unknown];
        return String(this.#resolve(text)).split(delimiter);
      }
      case 'Fn::Base64':
        return Buffer.from(String(this.#resolve(argument))).toString('base64');
      case 'Fn::GetAZs':
        return ['a', 'b', 'c'].map((zone) => `${this.context.region}${zone}`);
      case 'Fn::Equals': {
        const [left, right] = argument as [unknown, unknown];
        return JSON.stringify(this.#resolve(left)) === JSON.stringify(this.#resolve(right));
      }
      case 'Fn::Not':
        return !(this.#resolve((argument as unknown[])[0]) as boolean);
      case 'Fn::And':
        return (argument as unknown[]).every((item) => this.#resolve(item) === true);
      case 'Fn::Or':
        return (argument as unknown[]).some((item) => this.#resolve(item) === true);
      case 'Fn::If': {
        const [condition, whenTrue, whenFalse] = argument as [string, unknown, unknown];
        return this.#resolve(this.condition(condition) ? whenTrue : whenFalse);
      }
    }
    throw new Error(`Intrinsic function ${name} is not supported locally`);
  }

  #sub(argument: unknown): string {
    const [text, variables = {}] = Array.isArray(argument) ? (argument as [unknown, Record<string, unknown>?]) : [argument];
    if (typeof text !== 'string') throw new Error('Fn::Sub needs a string');
    return text.replace(/\$\{([^}]+)\}/g, (_whole, expression: string) => {
      if (expression.startsWith('!')) return `\${${expression.slice(1)}}`;
      if (expression in variables) return String(this.#resolve(variables[expression]));
      if (PSEUDO_PARAMETERS.includes(expression)) return this.ref(expression);
      const [logicalId, ...attribute] = expression.split('.');
      return attribute.length > 0 ? this.getAtt(logicalId!, attribute.join('.')) : this.ref(logicalId!);
    });
  }

  #shortId(logicalId: string): string {
    return createHash('sha256').update(`${this.context.stackName}/${logicalId}`).digest('hex').slice(0, 10);
  }

  #keyId(logicalId: string): string {
    // Stable per logical id, shaped like a KMS key id (a UUID).
    const hex = createHash('sha256').update(`${this.context.stackName}/${logicalId}`).digest('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  }
}

/** The property that names a resource of a given type, where CloudFormation lets you choose it. */
const NAME_PROPERTIES: Record<string, string> = {
  'AWS::SQS::Queue': 'QueueName',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::Events::Rule': 'Name',
  'AWS::IAM::Role': 'RoleName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::ApiGatewayV2::Api': 'Name',
  'AWS::KMS::Alias': 'AliasName',
  'AWS::CloudWatch::Alarm': 'AlarmName',
};

/** Orders logical ids so that each comes after the ones it refers to (CloudFormation's order). */
export function creationOrder(resolver: StackResolver, logicalIds: string[]): string[] {
  const wanted = new Set(logicalIds);
  const ordered: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') throw new Error(`Circular dependency through ${id}`);
    state.set(id, 'visiting');
    const resource = resolver.resource(id);
    const dependsOn = resource.DependsOn === undefined ? [] : [resource.DependsOn].flat();
    for (const dependency of [...resolver.dependencies(resource.Properties), ...dependsOn]) {
      if (wanted.has(dependency)) visit(dependency);
    }
    state.set(id, 'done');
    ordered.push(id);
  };
  logicalIds.forEach(visit);
  return ordered;
}
