// Packages the stack offline (`serverless package`) and answers questions about the generated
// CloudFormation template.
//
// A packaging runs in a temp copy of the service, so that it never shares the .serverless/.esbuild
// folders with anyone running `serverless package` in the work tree at the same time. Its result is
// kept under a key hashing the service's files and the packaging options: the test files, which run
// in parallel worker processes, package each variant once between them (a lock makes the others
// wait), and a later run with no file changed reuses it. Results older than an hour are removed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverlessPackageCommand } from '../../local/package-stack.js';
import { readZipEntries } from '../../local/function-code.js';
import type { CfnResource, CfnTemplate } from '../../local/template.js';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

// `any` on purpose: an assertion walks into a template value (`r.Properties.Policies[0]...`) and
// the expectation, not the type, says what must be there.
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Json = any;

/** The repository's one set of CloudFormation types (local/template.ts), read loosely. */
export type Resource = CfnResource<Json>;
export type Template = CfnTemplate<Json>;

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: Json;
  NotResource?: Json;
  Principal?: Json;
  Condition?: Record<string, Record<string, Json>>;
}

export interface PackageOptions {
  stage?: string;
  /** `--param="key=value"` overrides of serverless.yml `params`. */
  params?: Record<string, string | number>;
}

export interface Packaged {
  stage: string;
  /**
   * Folder holding the template, serverless-state.json and the function zips, and in `esbuild/`
   * each bundle's metafile and external source map (packaging/esbuild-plugins.cjs).
   */
  dir: string;
  template: Template;
  /** serverless.yml `params.default`, then `params.<stage>`, then `options.params`. */
  params: Record<string, Json>;
  /** `options.params` alone: what this packaging was asked to change. */
  overrides: Record<string, string | number>;
  /** Function key in serverless.yml (createOrder, …) → its zip artifact. */
  artifacts: Record<string, string>;
}

const COPY_SKIP = new Set(['node_modules', '.git', '.serverless', '.esbuild', '.cache', 'coverage', 'bench', 'docs', 'test']);
const CACHE_ROOT = join(tmpdir(), 'order-pipeline-infra-tests');
const MAX_AGE_MS = 60 * 60 * 1000;
const LOCK_STALE_MS = 3 * 60 * 1000;
const cache = new Map<string, Packaged>();

function copied(path: string): boolean {
  return !COPY_SKIP.has(relative(repoRoot, path).split('/')[0] ?? '');
}

/** Hash of every file the packaging copies, plus the packaging options. */
function inputHash(options: unknown): string {
  const hash = createHash('sha256').update(JSON.stringify(options));
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (!copied(path)) continue;
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) hash.update(relative(repoRoot, path)).update('\0').update(readFileSync(path)).update('\0');
    }
  };
  walk(repoRoot);
  return hash.digest('hex').slice(0, 24);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pruneOldResults(): void {
  if (!existsSync(CACHE_ROOT)) return;
  for (const name of readdirSync(CACHE_ROOT)) {
    const path = join(CACHE_ROOT, name);
    try {
      if (Date.now() - statSync(path).mtimeMs > MAX_AGE_MS) rmSync(path, { recursive: true, force: true });
    } catch {
      // Removed meanwhile by another worker.
    }
  }
}

export function packageStack(options: PackageOptions = {}): Packaged {
  const stage = options.stage ?? 'dev';
  const overrides = options.params ?? {};
  const key = JSON.stringify([stage, Object.entries(overrides).sort()]);
  const memo = cache.get(key);
  if (memo) return memo;

  mkdirSync(CACHE_ROOT, { recursive: true });
  pruneOldResults();
  const entry = join(CACHE_ROOT, inputHash(key));
  const dir = join(entry, 'package');
  const lock = `${entry}.lock`;
  while (!existsSync(join(dir, 'done'))) {
    try {
      mkdirSync(lock);
    } catch {
      // Another worker packages this variant: wait for it (or take over a stale lock).
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
      sleep(200);
      continue;
    }
    try {
      if (!existsSync(join(dir, 'done'))) runPackage(entry, stage, overrides);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }

  const template = readJson(join(dir, 'cloudformation-template-update-stack.json')) as Template;
  const state = readJson(join(dir, 'serverless-state.json'));
  const params = state.service.initialServerlessConfig?.params ?? {};
  const artifacts: Record<string, string> = {};
  for (const [name, fn] of Object.entries<Json>(state.service.functions)) {
    const artifact: string | undefined = fn.package?.artifact;
    if (artifact) artifacts[name] = join(dir, artifact.split('/').pop()!);
  }
  const packaged: Packaged = {
    stage,
    dir,
    template,
    params: { ...params.default, ...params[stage], ...overrides },
    overrides,
    artifacts,
  };
  cache.set(key, packaged);
  return packaged;
}

function runPackage(entry: string, stage: string, overrides: Record<string, string | number>): void {
  rmSync(entry, { recursive: true, force: true });
  const service = join(entry, 'service');
  cpSync(repoRoot, service, { recursive: true, filter: copied });
  symlinkSync(join(repoRoot, 'node_modules'), join(service, 'node_modules'), 'dir');
  const building = join(entry, 'building');
  // The same invocation as the local runtime's packaging (local/package-stack.ts), run synchronously.
  const command = serverlessPackageCommand(
    service,
    stage,
    building,
    Object.entries(overrides).map(([name, value]) => `${name}=${value}`),
  );
  try {
    execFileSync(command.file, command.args, { cwd: service, env: command.env, stdio: 'pipe', timeout: 120_000 });
  } catch (error) {
    const e = error as { stdout?: Buffer; stderr?: Buffer; message: string };
    throw new Error(
      `serverless ${command.args.slice(1).join(' ')} failed: ${e.message}\n${e.stdout?.toString() ?? ''}\n${e.stderr?.toString() ?? ''}`,
    );
  }
  writeFileSync(join(building, 'done'), '');
  renameSync(building, join(entry, 'package'));
  rmSync(service, { recursive: true, force: true });
}

/** A customer-managed key ARN (of no real account) for the order events topic. */
export const CUSTOMER_TOPIC_KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/**
 * Stage prod with every param the tests check the wiring of set away from its default. One
 * variant for all test files, so that they share one packaging.
 */
export function packageProdWithOverrides(): Packaged {
  return packageStack({
    stage: 'prod',
    params: {
      maxReceiveCount: 7,
      topicKmsKeyId: CUSTOMER_TOPIC_KEY_ARN,
      alarmEmail: 'ops@example.com',
      oldestMessageAgeAlarmSeconds: 900,
      cancelledRateAlarmPercent: 35,
    },
  });
}

function readJson(file: string): Json {
  return JSON.parse(readFileSync(file, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// Template queries

export function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export function resourcesOfType(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

export function resource(template: Template, id: string): Resource {
  const r = template.Resources[id];
  if (!r) throw new Error(`No resource ${id} in the template`);
  return r;
}

/** `{Ref: X}` or `{Fn::GetAtt: [X, …]}` (or `"X.Attr"`) → X; anything else → undefined. */
export function targetId(expr: Json): string | undefined {
  if (expr === null || typeof expr !== 'object' || Array.isArray(expr)) return undefined;
  if (typeof expr.Ref === 'string') return expr.Ref.startsWith('AWS::') ? undefined : expr.Ref;
  const getAtt = expr['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  if (typeof getAtt === 'string') return getAtt.split('.')[0];
  return undefined;
}

/** Like targetId, but throws when the expression is not a Ref/GetAtt of a resource in the template. */
export function mustTarget(template: Template, expr: Json, what: string): string {
  const id = targetId(expr);
  if (!id || !template.Resources[id]) {
    throw new Error(`${what}: expected a Ref/Fn::GetAtt of a resource, got ${JSON.stringify(expr)}`);
  }
  return id;
}

/** Every logical id an expression references: Ref, Fn::GetAtt and Fn::Sub `${X}`/`${X.Attr}`. */
export function referencedIds(expr: Json, found = new Set<string>()): Set<string> {
  if (Array.isArray(expr)) {
    for (const item of expr) referencedIds(item, found);
  } else if (expr !== null && typeof expr === 'object') {
    const id = targetId(expr);
    if (id) found.add(id);
    const sub = expr['Fn::Sub'];
    if (sub !== undefined) {
      const [text, vars] = Array.isArray(sub) ? [sub[0], sub[1] ?? {}] : [sub, {}];
      for (const m of String(text).matchAll(/\$\{([^!}][^}]*)\}/g)) {
        const name = m[1]!.split('.')[0]!;
        if (!name.startsWith('AWS::') && !(name in vars)) found.add(name);
      }
      referencedIds(vars, found);
    } else {
      for (const value of Object.values(expr)) referencedIds(value, found);
    }
  }
  return found;
}

/** Evaluates a condition built from Fn::Equals/Not/And/Or/Condition over literal values. */
export function evaluateCondition(template: Template, expr: Json): boolean {
  if (typeof expr === 'boolean') return expr;
  if (expr && typeof expr === 'object') {
    if ('Condition' in expr) return evaluateCondition(template, template.Conditions?.[expr.Condition]);
    if ('Fn::Equals' in expr) {
      const [a, b] = expr['Fn::Equals'];
      if (typeof a === 'object' || typeof b === 'object') throw new Error(`Cannot evaluate ${JSON.stringify(expr)}`);
      return String(a) === String(b);
    }
    if ('Fn::Not' in expr) return !evaluateCondition(template, expr['Fn::Not'][0]);
    if ('Fn::And' in expr) return expr['Fn::And'].every((c: Json) => evaluateCondition(template, c));
    if ('Fn::Or' in expr) return expr['Fn::Or'].some((c: Json) => evaluateCondition(template, c));
  }
  throw new Error(`Cannot evaluate condition ${JSON.stringify(expr)}`);
}

export function conditionHolds(template: Template, name: string): boolean {
  const condition = template.Conditions?.[name];
  if (condition === undefined) throw new Error(`No condition ${name} in the template`);
  return evaluateCondition(template, condition);
}

/** Resolves Fn::If against the template's conditions and drops AWS::NoValue. */
export function resolveIfs(template: Template, expr: Json): Json {
  if (Array.isArray(expr)) {
    return expr.map((item) => resolveIfs(template, item)).filter((item) => item !== NO_VALUE);
  }
  if (expr !== null && typeof expr === 'object') {
    if (expr.Ref === 'AWS::NoValue') return NO_VALUE;
    if ('Fn::If' in expr) {
      const [name, yes, no] = expr['Fn::If'];
      return resolveIfs(template, conditionHolds(template, name) ? yes : no);
    }
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(expr)) {
      const resolved = resolveIfs(template, v);
      if (resolved !== NO_VALUE) out[k] = resolved;
    }
    return out;
  }
  return expr;
}
const NO_VALUE = Symbol('AWS::NoValue');

export function statementsOf(template: Template, policyDocument: Json): Statement[] {
  return asArray<Statement>(resolveIfs(template, policyDocument)?.Statement);
}

export function actionsOf(statement: Statement): string[] {
  return asArray(statement.Action);
}

// ---------------------------------------------------------------------------------------------
// Functions, roles, queues

export interface LambdaFunction {
  /** Logical id, e.g. CreateOrderLambdaFunction. */
  id: string;
  /** Key in serverless.yml `functions`, e.g. createOrder. */
  key: string;
  resource: Resource;
}

export function lambdaFunctions(template: Template, stage: string): LambdaFunction[] {
  return resourcesOfType(template, 'AWS::Lambda::Function').map(([id, r]) => {
    const name = String(r.Properties?.FunctionName ?? '');
    const marker = `-${stage}-`;
    const at = name.indexOf(marker);
    if (at < 0) throw new Error(`Function ${id} has no stage-qualified FunctionName: ${name}`);
    return { id, key: name.slice(at + marker.length), resource: r };
  });
}

export function functionByKey(template: Template, stage: string, key: string): LambdaFunction {
  const fn = lambdaFunctions(template, stage).find((f) => f.key === key);
  if (!fn) throw new Error(`No function ${key} in the template`);
  return fn;
}

/** The role a function runs as (its Role must be a Fn::GetAtt/Ref of a role in the template). */
export function roleOf(template: Template, functionId: string): string {
  const role = resource(template, functionId).Properties?.Role;
  const id = mustTarget(template, role, `Role of ${functionId}`);
  if (resource(template, id).Type !== 'AWS::IAM::Role') throw new Error(`${functionId} runs as ${id}, not an IAM role`);
  return id;
}

/** Every statement granted to a role: inline policies, and IAM Policy/ManagedPolicy resources attached to it. */
export function roleStatements(template: Template, roleId: string): Statement[] {
  const role = resource(template, roleId);
  const statements: Statement[] = [];
  for (const policy of asArray<Json>(role.Properties?.Policies)) {
    statements.push(...statementsOf(template, policy.PolicyDocument));
  }
  for (const [, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const roles = asArray<Json>(r.Properties?.Roles).map(targetId);
    if (roles.includes(roleId)) statements.push(...statementsOf(template, r.Properties?.PolicyDocument));
  }
  const managed = asArray<Json>(role.Properties?.ManagedPolicyArns);
  for (const arn of managed) {
    const id = targetId(arn);
    if (!id) throw new Error(`${roleId} attaches a managed policy from outside the stack: ${JSON.stringify(arn)}`);
  }
  return statements;
}

export function functionStatements(template: Template, functionId: string): Statement[] {
  return roleStatements(template, roleOf(template, functionId));
}

export interface EventSourceMapping {
  id: string;
  queueId: string;
  functionId: string;
  properties: Record<string, Json>;
}

export function eventSourceMappings(template: Template): EventSourceMapping[] {
  return resourcesOfType(template, 'AWS::Lambda::EventSourceMapping').map(([id, r]) => {
    const properties = r.Properties ?? {};
    return {
      id,
      queueId: mustTarget(template, properties.EventSourceArn, `EventSourceArn of ${id}`),
      functionId: mustTarget(template, properties.FunctionName, `FunctionName of ${id}`),
      properties,
    };
  });
}

/** Queues some event source mapping reads. */
export function sourceQueues(template: Template): string[] {
  const ids = eventSourceMappings(template).map((m) => m.queueId);
  for (const id of ids) {
    if (resource(template, id).Type !== 'AWS::SQS::Queue') throw new Error(`${id} is not an SQS queue`);
  }
  return [...new Set(ids)];
}

/** The dead-letter queue of a source queue, from its RedrivePolicy. */
export function deadLetterQueueOf(template: Template, queueId: string): string | undefined {
  const redrive = resource(template, queueId).Properties?.RedrivePolicy;
  if (!redrive) return undefined;
  return mustTarget(template, redrive.deadLetterTargetArn, `deadLetterTargetArn of ${queueId}`);
}

/** The topic the `OrderEventsTopicArn` output names. */
export function orderEventsTopic(template: Template): string {
  return mustTarget(template, template.Outputs?.OrderEventsTopicArn?.Value, 'Output OrderEventsTopicArn');
}

// ---------------------------------------------------------------------------------------------
// Zip archives

/** Names of the entries of a zip file, read from its central directory. */
export function zipEntries(file: string): string[] {
  return readZipEntries(readFileSync(file)).map((entry) => entry.name);
}
