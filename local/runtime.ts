// The local pipeline: packages the stack, starts the emulators, provisions the template's
// resources in them and runs its functions behind the same triggers as on AWS (HTTP API routes,
// SQS event source mappings, schedules). `local/start.ts` is the command line; tests call
// startLocalPipeline directly.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { FauxqsServer } from 'fauxqs';
import { clientConfig, LOCAL_ACCOUNT_ID, LOCAL_CREDENTIALS, LOCAL_REGION, startEmulators, type Emulators } from './emulators.js';
import { EventSourceMappingRefused, sqsMappingRefusals, type MappingRefusal } from './event-source-mapping-rules.js';
import { locateHandler, unpackFunctionZip } from './function-code.js';
import { LocalEndpointError, startHttpApi, type HttpRoute } from './http-api.js';
import { createLocalIssuer, type JwtAuthorizerConfig, type LocalIssuer, type TokenOptions } from './jwt-authorizer.js';
import { customerIdSchema } from '../lib/order-schema.js';
import { createLocalConsole, type LocalConsole } from './console.js';
import { createInvocationLog, keepingRecentLines, type InvocationLog } from './invocation-log.js';
import { runtimeMemory, type RuntimeMemory } from './memory.js';
import { processCpuSeconds, threadCpuSeconds } from './thread-cpu.js';
import {
  EnvironmentBudget,
  LambdaFunction,
  Semaphore,
  type EnvironmentClass,
  type EnvironmentLimits,
  type FunctionStats,
} from './lambda-environment.js';
import { packageStack, readPackagedStack, REPOSITORY_ROOT, variantPackaging } from './package-stack.js';
import { provisionStack, type ProvisionedResources } from './provision.js';
import { queueConsumers, twoLaneQueues, type QueueConsumer } from './queue-consumers.js';
import { startRequestCounter, type RequestCounter } from './request-counter.js';
import { startSchedules, type Schedules, type ScheduledTarget } from './schedule.js';
import { startLocalStatus } from './status.js';
import { LaneGate, SqsPoller, type EventSourceStats } from './sqs-poller.js';
import { isRecord, readTemplate, StackResolver } from './template.js';

export interface LocalPipelineOptions {
  /** HTTP API port; 3000 by default, 0 for any free port. */
  apiPort?: number;
  /** fauxqs (SNS and SQS) port; 4566 by default. */
  sqsPort?: number;
  /** dynalite (DynamoDB) port; 4567 by default. */
  dynamodbPort?: number;
  /** Serverless stage to package; `local` by default. Ignored with templatePath (its own stage). */
  stage?: string;
  /**
   * The queueType param to package with: `standard` (default) or `fifo` (an SNS FIFO topic and SQS
   * FIFO queues, `npm start -- --fifo`). Ignored with templatePath (its own queue type).
   */
  queueType?: QueueType;
  /** An already packaged template (its directory holds the function zips): skips packaging. */
  templatePath?: string;
  /** Per function (serverless.yml key or deployed name): variables set over the template's. */
  environmentOverrides?: Record<string, Record<string, string>>;
  /**
   * Variables set over the template's in every queue consumer (as the template has them), under a
   * function's own environmentOverrides: faults in every consumer without naming them.
   */
  consumerEnvironmentOverrides?: Record<string, string>;
  /** Run the packaged bundles (default) or the TypeScript sources in functions/ through tsx. */
  handlerSource?: 'bundle' | 'source';
  /** Speeds schedules up: 60 runs `rate(1 minute)` every second. 1 by default. */
  scheduleScale?: number;
  /**
   * Execution environments (worker threads) per function; 5 by default, and never fewer than an
   * function's SQS mappings' MaximumConcurrency together (a consumer's standard and express queues
   * each have their own). Beyond it, invocations wait for a free environment.
   */
  maxEnvironmentsPerFunction?: number;
  /**
   * Execution environments alive across all functions, a function's first excepted
   * (local/lambda-environment.ts, EnvironmentBudget): four per core by default, and none beyond a
   * function's first while this process keeps the cores busy; Infinity, none but each function's
   * own limit, as on Lambda.
   */
  maxEnvironmentsInAll?: number;
  /** Put local/seed-data.json into its tables; true by default. */
  seed?: boolean;
  /**
   * Put a counting proxy (local/request-counter.ts) in front of the emulators and give its
   * endpoints to everything started here, so every AWS request is counted (`npm run bench`).
   */
  countRequests?: boolean;
  /** WaitTimeSeconds of the SQS pollers' receives: 20 (long polling) by default, 0 short polling. */
  pollerWaitTimeSeconds?: number;
  /**
   * Probability that an SQS poller delivers a record twice on purpose (a second invocation with the
   * same message, as at-least-once delivery may; it counts against the mapping's maximum
   * concurrency like any invocation): 0 by default. A function's
   * LOCAL_DUPLICATE_DELIVERY_RATE in environmentOverrides sets it for that function alone.
   */
  duplicateDeliveryRate?: number;
  /**
   * Queues (by name) whose event source mapping starts disabled, as a mapping deployed with
   * Enabled: false: nothing is received from them until `enableEventSources` turns them on, as
   * UpdateEventSourceMapping would. What a test uses to let a backlog build.
   */
  disabledEventSources?: string[];
  /**
   * Run a consumer's standard lane in background environments (lambda-environment.ts,
   * EnvironmentClass) when it also has an express lane, so that on shared cores the express
   * invocations run first, as on Lambda, where neither lane's CPU is the other's; and hold the
   * standard lane's pollers back while an express batch is in hand (sqs-poller.ts, LaneGate), so
   * that the emulators' one event loop is not the backlog's. Off by default
   * (no background environments, no gate): background threads also yield to everything else in
   * the login session, which cost standard-only throughput on a busy machine (docs/decisions.md). LOCAL_LANE_PRIORITY=on
   * in the environment turns it on; `npm run bench -- --backlog` turns it on itself.
   */
  lanePriority?: boolean;
  /** No output at all (tests). */
  quiet?: boolean;
  /** Where output lines go; stdout/stderr by default. */
  write?: (line: string) => void;
}

export type QueueType = 'standard' | 'fifo';

/** A queue consumer of the template, with the URLs its queues have in the emulator. */
export interface LocalQueueConsumer extends QueueConsumer {
  queueUrl: string;
  deadLetterQueueUrl: string | undefined;
}

export interface LocalPipeline {
  apiUrl: string;
  /** Standard or FIFO, as the template's order events topic is. */
  queueType: QueueType;
  endpoints: { sqs: string; sns: string; dynamodb: string };
  resources: ProvisionedResources;
  /** The queue consumers, read from the template (resources/consumers.cjs declares them), by name. */
  consumers: LocalQueueConsumer[];
  /** `METHOD /path` of every route served. */
  routes: string[];
  templatePath: string;
  fauxqs: FauxqsServer;
  invocationStats(): { functions: Record<string, FunctionStats>; eventSources: Record<string, EventSourceStats> };
  /**
   * A token the local issuer signs for a customer (the token's subject), valid for the template's
   * JWT authorizer: `Authorization: Bearer <token>`. Undefined when no route has an authorizer.
   */
  tokenFor(customerId: string, options?: TokenOptions): Promise<string>;
  /** The JWT authorizers the routes use, as the template declares them. */
  authorizers: JwtAuthorizerConfig[];
  /** This process's resident memory, the main thread's heap and each execution environment's (GET /_local/memory). */
  memory(): Promise<RuntimeMemory>;
  /** CPU time so far, by thread: the bench's "CPU per order by thread" (RuntimeCpu). */
  cpuTime(): RuntimeCpu;
  stop(): Promise<void>;
  /** With countRequests: the counts, and the emulators' own endpoints (traffic there is not counted). */
  requestCounter?: RequestCounter;
  /**
   * Disables or enables the event source mappings of these queues (by name), as
   * UpdateEventSourceMapping with Enabled false or true: a disabled mapping finishes the batches it
   * holds and receives nothing more, its records waiting in the queue (a backlog, for tests and the bench).
   */
  disableEventSources(queueNames: string[]): void;
  enableEventSources(queueNames: string[]): void;
}

/**
 * CPU seconds this process has used, and where (Linux; elsewhere only `processSeconds` is filled).
 * The main thread runs the emulators, the HTTP API, the pollers and anything else of the caller's;
 * each function's environments (worker threads) run its handler, those ended included; the rest of
 * the process's time is V8's own threads (compilers, garbage collection helpers), libuv's, and
 * environments whose thread died on its own.
 */
export interface RuntimeCpu {
  processSeconds: number;
  mainThreadSeconds: number;
  functions: Record<string, number>;
}

/**
 * Lambda starts five concurrent batches per queue when a mapping sets no MaximumConcurrency and
 * scales up with the backlog (to 1,250, or the function's reserved concurrency). Locally the
 * mapping stays at that starting point, or at the reserved concurrency if lower.
 */
const DEFAULT_SQS_CONCURRENCY = 5;

/** Execution environments alive across all functions per core of this machine (EnvironmentBudget). */
const ENVIRONMENTS_PER_CORE = 4;

export async function startLocalPipeline(options: LocalPipelineOptions = {}): Promise<LocalPipeline> {
  // The SDK's Node 20 end-of-support notice is noise here; workers get the same variable.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // The handlers' last lines are kept for the console's log view (GET /_local/console/logs).
  const { log, recent: recentLog } = keepingRecentLines(createInvocationLog({ quiet: options.quiet, write: options.write }), 2000);

  let templatePath = options.templatePath;
  let serviceName: string;
  let stage: string;
  if (templatePath) {
    ({ serviceName, stage } = await readPackagedStack(path.dirname(templatePath)));
  } else {
    const packageAs = options.stage ?? 'local';
    const fifo = options.queueType === 'fifo';
    log.info(`Packaging the stack (serverless package --stage ${packageAs}${fifo ? ' --param="queueType=fifo"' : ''})...`);
    const packaged = await packageStack(variantPackaging(packageAs, options.queueType ?? 'standard'));
    ({ templatePath, serviceName, stage } = packaged);
  }
  const packageDir = path.dirname(templatePath);
  const template = await readTemplate(templatePath);
  const resolver = new StackResolver(template, {
    region: LOCAL_REGION,
    accountId: LOCAL_ACCOUNT_ID,
    partition: 'aws',
    stackName: `${serviceName}-${stage}`,
  });

  const cleanup: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch((error: unknown) => log.error(`stop: ${(error as Error).message}`));
  };
  try {
    const emulators: Emulators = await startEmulators({ sqsPort: options.sqsPort ?? 4566, dynamodbPort: options.dynamodbPort ?? 4567 });
    cleanup.push(() => emulators.stop());
    const requestCounter: RequestCounter | undefined = options.countRequests ? await startRequestCounter(emulators.endpoints) : undefined;
    if (requestCounter) cleanup.push(() => requestCounter.stop());
    // S3 (the claim-check bucket) goes straight to fauxqs: the counter counts what the bench
    // compares (SNS, SQS, DynamoDB), and a large order's S3 calls are not part of that.
    const endpoints = requestCounter ? { ...requestCounter.endpoints, s3: emulators.endpoints.s3 } : emulators.endpoints;
    const sqs = new SQSClient(clientConfig(endpoints.sqs));
    const sns = new SNSClient(clientConfig(endpoints.sns));
    const dynamodb = new DynamoDBClient(clientConfig(endpoints.dynamodb));
    const s3 = new S3Client({ ...clientConfig(endpoints.s3), forcePathStyle: true });
    cleanup.push(async () => {
      for (const client of [sqs, sns, dynamodb, s3]) client.destroy();
    });

    // Where every function reads its outages and switched faults (lib/fault-injection.ts): the
    // console's switches write it. A function's own FAULT_OUTAGES_FILE override (chaos) wins.
    const faultSwitchesDir = await mkdtemp(path.join(tmpdir(), 'order-pipeline-faults-'));
    cleanup.push(() => rm(faultSwitchesDir, { recursive: true, force: true }));
    const faultSwitchesFile = path.join(faultSwitchesDir, 'fault-switches.json');

    const resources = await provisionStack(resolver, { sqs, sns, dynamodb, s3 });
    for (const note of resources.notes) log.info(note);
    const consumers = queueConsumers(template, `${serviceName}-${stage}`).map((consumer) => {
      const queue = resources.queues[consumer.queueName];
      if (!queue) throw new Error(`${consumer.name}: no queue ${consumer.queueName} was provisioned`);
      const deadLetterQueueUrl =
        consumer.deadLetterQueueName === undefined ? undefined : resources.queues[consumer.deadLetterQueueName]?.url;
      return { ...consumer, queueUrl: queue.url, deadLetterQueueUrl };
    });
    if (options.seed !== false) await seedTables(resources, dynamodb);

    const inAll = options.maxEnvironmentsInAll ?? ENVIRONMENTS_PER_CORE * availableParallelism();
    const budget = Number.isFinite(inAll) ? new EnvironmentBudget(inAll) : undefined;
    const functions = await defineFunctions(resolver, {
      packageDir,
      stackName: `${serviceName}-${stage}`,
      endpoints,
      overrides: {
        ...options.environmentOverrides,
        ...Object.fromEntries(
          consumers.map((consumer) => [
            consumer.name,
            { ...options.consumerEnvironmentOverrides, ...options.environmentOverrides?.[consumer.name] },
          ]),
        ),
      },
      handlerSource: options.handlerSource ?? 'bundle',
      faultSwitchesFile,
      limits: {
        maxEnvironments: options.maxEnvironmentsPerFunction ?? 5,
        initSlots: new Semaphore(availableParallelism()),
        budget,
      },
      log,
    });
    cleanup.push(() => Promise.all([...functions.values()].map((fn) => fn.stop())).then(() => undefined));
    // Before anything listens: a mapping AWS would refuse stops the start here.
    const lanePriority = options.lanePriority ?? lanePriorityByDefault();
    const backgroundQueues = lanePriority ? twoLaneQueues(consumers, 'standard') : new Set<string>();
    const pollers = await sqsPollers(resolver, resources, functions, sqs, log, {
      backgroundQueues,
      ...(lanePriority ? { expressQueues: twoLaneQueues(consumers, 'express'), laneGate: new LaneGate() } : {}),
      ...(options.pollerWaitTimeSeconds === undefined ? {} : { receiveWaitTimeSeconds: options.pollerWaitTimeSeconds }),
    });

    // The local issuer: a key pair made now, standing in for the issuer each JWT authorizer names.
    const issuer = await createLocalIssuer();
    const routes = httpRoutes(resolver, functions, issuer, log);
    const authorizers = [
      ...new Map(
        routes.flatMap((route) => (route.authorizer ? [[route.authorizer.config.name, route.authorizer.config] as const] : [])),
      ).values(),
    ];
    const tokenFor = (customerId: string, tokenOptions?: TokenOptions) => {
      const [authorizer] = authorizers;
      if (!authorizer) throw new Error('No route of this stack has a JWT authorizer');
      return issuer.issueToken(authorizer, customerId, tokenOptions);
    };
    // GET /_local/status (local/status.ts), added once the pollers exist; the issuer's JWKS;
    // GET /_local/token?customer=ID[&expiresIn=SECONDS], what `npm run token` asks for; and
    // GET /_local/memory, where this process's memory goes (local/memory.ts).
    const memory = () => runtimeMemory(functions.values());
    const localEndpoints: Record<string, (query: URLSearchParams) => unknown> = {
      '/_local/jwks.json': () => issuer.jwks,
      '/_local/memory': () => memory(),
      '/_local/token': async (query) => {
        const customer = query.get('customer') ?? '';
        if (!customerIdSchema.safeParse(customer).success)
          throw new LocalEndpointError(400, 'customer: must be 1-128 visible ASCII characters, not a card number');
        const expiresIn = query.get('expiresIn');
        const expiresInSeconds = expiresIn === null ? undefined : Number(expiresIn);
        if (expiresInSeconds !== undefined && !Number.isInteger(expiresInSeconds))
          throw new LocalEndpointError(400, 'expiresIn: must be a whole number of seconds');
        return {
          token: await tokenFor(customer, { ...(expiresInSeconds === undefined ? {} : { expiresInSeconds }) }),
          customer,
          expiresInSeconds: expiresInSeconds ?? 3600,
        };
      },
    };
    let localConsole: LocalConsole | undefined;
    const http = await startHttpApi({
      localEndpoints,
      localRequests: (request, response, requestPath, query) =>
        localConsole ? localConsole.handle(request, response, requestPath, query) : Promise.resolve(false),
      routes,
      port: options.apiPort ?? 3000,
      apiId: apiIdOf(resolver),
      accountId: LOCAL_ACCOUNT_ID,
      log,
    });
    cleanup.push(() => http.close());

    const disabled = new Set(options.disabledEventSources ?? []);
    for (const poller of pollers) {
      if (options.duplicateDeliveryRate !== undefined) poller.setDuplicateDeliveryRate(options.duplicateDeliveryRate);
      if (disabled.has(queueName(poller.mapping.queueArn))) poller.disable();
      poller.start();
    }
    const pollersOf = (queueNames: string[]) => pollers.filter((poller) => queueNames.includes(queueName(poller.mapping.queueArn)));
    const disableEventSources = (queueNames: string[]) => {
      for (const poller of pollersOf(queueNames)) poller.disable();
    };
    const enableEventSources = (queueNames: string[]) => {
      for (const poller of pollersOf(queueNames)) poller.enable();
    };
    const status = startLocalStatus({
      fauxqs: emulators.fauxqs,
      queues: resources.queues,
      counters: () => ({
        functions: Object.fromEntries([...functions.values()].map((fn) => [fn.name, fn.stats()])),
        eventSources: pollers.map((poller) => ({
          queueName: queueName(poller.mapping.queueArn),
          functionName: poller.mapping.function.name,
          stats: poller.stats(),
        })),
      }),
    });
    cleanup.push(async () => status.stop());
    localEndpoints['/_local/status'] = () => status.snapshot();
    // GET /console and /_local/console/... (local/console.ts).
    localConsole = createLocalConsole({
      apiUrl: () => http.url,
      stage,
      queueType: resources.topicArn?.endsWith('.fifo') ? 'fifo' : 'standard',
      routes: routes.map((route) => route.routeKey),
      resources,
      consumers,
      fauxqs: emulators.fauxqs,
      sqs,
      dynamodb,
      functions: () =>
        [...functions.values()].map((fn) => ({ name: fn.name, functionName: fn.definition.functionName, stats: fn.stats() })),
      eventSources: () =>
        pollers.map((poller) => ({
          queueName: queueName(poller.mapping.queueArn),
          functionName: poller.mapping.function.definition.functionName,
          stats: poller.stats(),
          batchSize: poller.mapping.batchSize,
          maximumConcurrency: poller.mapping.maximumConcurrency,
          setDuplicateDeliveryRate: (rate: number) => poller.setDuplicateDeliveryRate(rate),
        })),
      faultSwitchesFile,
      tokenFor: (customerId) => tokenFor(customerId),
      recentLog,
    });
    cleanup.push(async () => localConsole?.stop());
    const schedules: Schedules = startSchedules({
      targets: scheduledTargets(resolver, functions),
      region: LOCAL_REGION,
      accountId: LOCAL_ACCOUNT_ID,
      scale: options.scheduleScale ?? 1,
      log,
    });
    // Stop taking work first; running invocations end when their environments are destroyed.
    cleanup.push(async () => {
      const pollersStopped = Promise.all(pollers.map((poller) => poller.stop()));
      const schedulesStopped = schedules.stop();
      await Promise.all([...functions.values()].map((fn) => fn.stop()));
      await Promise.all([pollersStopped, schedulesStopped]);
    });

    let stopping: Promise<void> | undefined;
    return {
      apiUrl: http.url,
      queueType: resources.topicArn?.endsWith('.fifo') ? 'fifo' : 'standard',
      endpoints,
      resources,
      consumers,
      routes: routes.map((route) => route.routeKey),
      templatePath,
      tokenFor,
      authorizers,
      memory,
      cpuTime: () => ({
        processSeconds: processCpuSeconds(),
        // On Linux the main thread's kernel id is the process id.
        mainThreadSeconds: threadCpuSeconds(process.pid) ?? 0,
        functions: Object.fromEntries([...functions.values()].map((fn) => [fn.name, fn.cpuSeconds()])),
      }),
      fauxqs: emulators.fauxqs,
      invocationStats: () => ({
        functions: Object.fromEntries([...functions.values()].map((fn) => [fn.name, fn.stats()])),
        eventSources: Object.fromEntries(pollers.map((poller) => [queueName(poller.mapping.queueArn), poller.stats()])),
      }),
      stop: () => (stopping ??= stopAll()),
      disableEventSources,
      enableEventSources,
      ...(requestCounter ? { requestCounter } : {}),
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Lane priority with LOCAL_LANE_PRIORITY=on: what startLocalPipeline does when not told (LocalPipelineOptions.lanePriority). */
export function lanePriorityByDefault(): boolean {
  return process.env.LOCAL_LANE_PRIORITY === 'on';
}

async function seedTables(resources: ProvisionedResources, dynamodb: DynamoDBClient): Promise<void> {
  const seed = JSON.parse(await readFile(new URL('./seed-data.json', import.meta.url), 'utf8')) as Record<
    string,
    Array<Record<string, unknown>>
  >;
  const documents = DynamoDBDocumentClient.from(dynamodb);
  for (const [logicalId, items] of Object.entries(seed)) {
    const tableName = resources.tables[logicalId];
    if (!tableName) continue;
    for (const item of items) await documents.send(new PutCommand({ TableName: tableName, Item: item }));
  }
}

async function defineFunctions(
  resolver: StackResolver,
  options: {
    packageDir: string;
    stackName: string;
    endpoints: Emulators['endpoints'];
    overrides: Record<string, Record<string, string>>;
    handlerSource: 'bundle' | 'source';
    faultSwitchesFile: string;
    limits: EnvironmentLimits;
    log: InvocationLog;
  },
): Promise<Map<string, LambdaFunction>> {
  const functions = new Map<string, LambdaFunction>();
  for (const [id, resource] of resolver.resources('AWS::Lambda::Function')) {
    const properties = resource.Properties ?? {};
    const functionName = resolver.physicalName(id);
    // The serverless.yml key: deployed names are <service>-<stage>-<key>.
    const name = functionName.startsWith(`${options.stackName}-`) ? functionName.slice(options.stackName.length + 1) : functionName;
    const handler = resolver.resolveString(properties.Handler, `${id}.Handler`);
    const { file, exportName } = await handlerModule(resolver, id, handler, options);
    const memorySize = Number(resolver.resolve(properties.MemorySize) ?? 128);
    const logGroupName =
      (isRecord(properties.LoggingConfig) && properties.LoggingConfig.LogGroup !== undefined
        ? resolver.resolveString(properties.LoggingConfig.LogGroup, `${id}.LoggingConfig.LogGroup`)
        : undefined) ?? `/aws/lambda/${functionName}`;
    const variables = resolver.resolve(isRecord(properties.Environment) ? properties.Environment.Variables : undefined);
    const templateEnvironment = Object.fromEntries(
      Object.entries(isRecord(variables) ? variables : {}).map(([key, value]) => [key, String(value)]),
    );
    const environment: Record<string, string> = {
      ...templateEnvironment,
      // What Lambda sets (reserved: a template cannot override these) ...
      AWS_REGION: LOCAL_REGION,
      AWS_DEFAULT_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_LAMBDA_FUNCTION_NAME: functionName,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memorySize),
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_LOG_GROUP_NAME: logGroupName,
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      LAMBDA_TASK_ROOT: path.dirname(file),
      _HANDLER: handler,
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      // ... and what points the SDK at the emulators instead of AWS.
      AWS_ENDPOINT_URL_SQS: options.endpoints.sqs,
      AWS_ENDPOINT_URL_SNS: options.endpoints.sns,
      AWS_ENDPOINT_URL_DYNAMODB: options.endpoints.dynamodb,
      AWS_ENDPOINT_URL_S3: options.endpoints.s3,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Local only (serverless.yml sets no FAULT_* variable): the console's switches.
      FAULT_OUTAGES_FILE: options.faultSwitchesFile,
      ...options.overrides[name],
      ...options.overrides[functionName],
    };
    const definition = {
      name,
      functionName,
      functionArn: resolver.arn(id),
      modulePath: file,
      exportName,
      timeoutSeconds: Number(resolver.resolve(properties.Timeout) ?? 3),
      memorySize,
      logGroupName,
      environment,
    };
    // A quiet log drops every line: the environments drop them as they are written (no sink).
    const output = options.log.discardsOutput
      ? undefined
      : (fn: string, stream: 'stdout' | 'stderr', line: string) => options.log.output(fn, stream, line);
    functions.set(id, new LambdaFunction(definition, output, options.limits));
  }
  return functions;
}

async function handlerModule(
  resolver: StackResolver,
  id: string,
  handler: string,
  options: { packageDir: string; handlerSource: 'bundle' | 'source' },
): Promise<{ file: string; exportName: string }> {
  if (options.handlerSource === 'source') return locateHandler(REPOSITORY_ROOT, handler, ['.ts', '.mts', '.js', '.mjs']);
  const code = resolver.resource(id).Properties?.Code;
  const key = isRecord(code) && code.S3Key !== undefined ? resolver.resolveString(code.S3Key, `${id}.Code.S3Key`) : undefined;
  if (!key) throw new Error(`${id}: only zip packages (Code.S3Key) can run locally`);
  const taskRoot = await unpackFunctionZip(path.join(options.packageDir, path.basename(key)));
  return locateHandler(taskRoot, handler);
}

/** The function a template reference (name, ARN or API Gateway invocation URI) points at. */
function functionFor(functions: Map<string, LambdaFunction>, reference: string): LambdaFunction | undefined {
  for (const fn of functions.values()) {
    const { functionName, functionArn } = fn.definition;
    if (
      reference === functionName ||
      reference === functionArn ||
      reference.includes(`${functionArn}/`) ||
      reference.startsWith(`${functionArn}:`)
    ) {
      return fn;
    }
  }
  return undefined;
}

function httpRoutes(resolver: StackResolver, functions: Map<string, LambdaFunction>, issuer: LocalIssuer, log: InvocationLog): HttpRoute[] {
  const integrations = new Map(resolver.resources('AWS::ApiGatewayV2::Integration').map(([id]) => [resolver.ref(id), id]));
  const routes: HttpRoute[] = [];
  for (const [id, resource] of resolver.resources('AWS::ApiGatewayV2::Route')) {
    const properties = resource.Properties ?? {};
    const routeKey = resolver.resolveString(properties.RouteKey, `${id}.RouteKey`);
    const target = resolver.resolveString(properties.Target, `${id}.Target`);
    const integrationId = integrations.get(target.replace(/^integrations\//, ''));
    const integration = integrationId ? (resolver.resource(integrationId).Properties ?? {}) : undefined;
    const fn = integration
      ? functionFor(functions, resolver.resolveString(integration.IntegrationUri, `${integrationId}.IntegrationUri`))
      : undefined;
    if (!integration || !fn) {
      log.info(`Route ${routeKey}: its integration is not a function of this stack; not served`);
      continue;
    }
    const version =
      integration.PayloadFormatVersion === undefined
        ? '1.0'
        : resolver.resolveString(integration.PayloadFormatVersion, 'PayloadFormatVersion');
    if (version !== '2.0') {
      log.info(`Route ${routeKey}: payload format ${version} is not emulated (only 2.0); not served`);
      continue;
    }
    const timeout = integration.TimeoutInMillis === undefined ? 30_000 : Number(resolver.resolve(integration.TimeoutInMillis));
    const authorizationType =
      properties.AuthorizationType === undefined ? 'NONE' : resolver.resolveString(properties.AuthorizationType, `${id}.AuthorizationType`);
    if (authorizationType === 'NONE') {
      routes.push({ routeKey, function: fn, integrationTimeoutMs: timeout });
      continue;
    }
    const authorizer = authorizationType === 'JWT' ? jwtAuthorizer(resolver, properties.AuthorizerId, id) : undefined;
    if (!authorizer) {
      // Never serve a protected route unprotected.
      log.info(
        `Route ${routeKey}: authorization ${authorizationType} is not emulated (only JWT from $request.header.Authorization); not served`,
      );
      continue;
    }
    routes.push({ routeKey, function: fn, integrationTimeoutMs: timeout, authorizer: { config: authorizer, issuer } });
  }
  return routes;
}

/** A route's JWT authorizer from the template, or undefined when it is not one emulated here. */
function jwtAuthorizer(resolver: StackResolver, authorizerId: unknown, routeId: string): JwtAuthorizerConfig | undefined {
  const reference = resolver.resolveString(authorizerId, `${routeId}.AuthorizerId`);
  const found = resolver.resources('AWS::ApiGatewayV2::Authorizer').find(([id]) => resolver.ref(id) === reference);
  if (!found) return undefined;
  const [id, resource] = found;
  const properties = resolver.resolve(resource.Properties ?? {}) as Record<string, unknown>;
  const jwt = isRecord(properties.JwtConfiguration) ? properties.JwtConfiguration : {};
  const identitySource = Array.isArray(properties.IdentitySource) ? properties.IdentitySource.map(String) : [];
  if (properties.AuthorizerType !== 'JWT' || identitySource.join(',') !== '$request.header.Authorization') return undefined;
  const audience = (Array.isArray(jwt.Audience) ? jwt.Audience : []).map(String).filter(Boolean);
  const issuer = typeof jwt.Issuer === 'string' ? jwt.Issuer : '';
  if (!issuer || audience.length === 0)
    throw new Error(`${id}: a JWT authorizer needs an issuer and an audience (params jwtIssuerUrl and jwtAudience go together)`);
  return { name: String(properties.Name ?? id), issuer, audience, identitySource: identitySource[0]! };
}

function apiIdOf(resolver: StackResolver): string {
  const [api] = resolver.resources('AWS::ApiGatewayV2::Api');
  return api ? resolver.ref(api[0]) : 'local';
}

/**
 * One poller per enabled SQS event source mapping of the template. Throws
 * EventSourceMappingRefused, naming every mapping at fault, when AWS would refuse one of them.
 */
async function sqsPollers(
  resolver: StackResolver,
  resources: ProvisionedResources,
  functions: Map<string, LambdaFunction>,
  sqs: SQSClient,
  log: InvocationLog,
  options: { backgroundQueues: Set<string>; expressQueues?: Set<string>; laneGate?: LaneGate; receiveWaitTimeSeconds?: number },
): Promise<SqsPoller[]> {
  const { receiveWaitTimeSeconds } = options;
  const laneGateOf = (queue: string) => {
    if (!options.laneGate) return {};
    if (options.expressQueues?.has(queue)) return { laneGate: { gate: options.laneGate, lane: 'express' as const } };
    if (options.backgroundQueues.has(queue)) return { laneGate: { gate: options.laneGate, lane: 'standard' as const } };
    return {};
  };
  const queuesByArn = new Map(Object.values(resources.queues).map((queue) => [queue.arn, queue]));
  const pollers: SqsPoller[] = [];
  const refused: Array<{ mappingId: string; refusal: MappingRefusal }> = [];
  /**
   * The environments each function needs, of each kind: the sum of its mappings' concurrency. A
   * consumer's express queue has its own mapping, and its invocations must not wait for an
   * environment the standard queue's backlog holds (on AWS both draw on the account's concurrency alike).
   */
  const environmentsNeeded = new Map<LambdaFunction, Record<EnvironmentClass, number>>();
  for (const [id, resource] of resolver.resources('AWS::Lambda::EventSourceMapping')) {
    const properties = resolver.resolve(resource.Properties ?? {}) as Record<string, unknown>;
    if (properties.Enabled === false) continue;
    const queue = queuesByArn.get(String(properties.EventSourceArn));
    const fn = functionFor(functions, String(properties.FunctionName));
    if (!queue || !fn) {
      log.info(`${id}: event source ${String(properties.EventSourceArn)} is not an SQS queue of this stack; not polled`);
      continue;
    }
    if (properties.FilterCriteria !== undefined) log.info(`${id}: FilterCriteria is not applied locally; every message reaches ${fn.name}`);
    const scaling = isRecord(properties.ScalingConfig) ? properties.ScalingConfig : {};
    const batchSize = Number(properties.BatchSize ?? 10);
    const maximumBatchingWindowSeconds = Number(properties.MaximumBatchingWindowInSeconds ?? 0);
    // Lambda checks the queue as SQS reports it, not as a template says it.
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['VisibilityTimeout', 'FifoQueue'] }),
    );
    const fifo = Attributes?.FifoQueue === 'true';
    const refusals = sqsMappingRefusals({
      batchSize,
      maximumBatchingWindowInSeconds: maximumBatchingWindowSeconds,
      ...(scaling.MaximumConcurrency === undefined ? {} : { maximumConcurrency: Number(scaling.MaximumConcurrency) }),
      functionTimeoutSeconds: fn.definition.timeoutSeconds,
      queueVisibilityTimeoutSeconds: Number(Attributes?.VisibilityTimeout ?? 30),
      queueIsFifo: fifo,
    });
    if (refusals.length > 0) {
      refused.push(...refusals.map((refusal) => ({ mappingId: id, refusal })));
      continue;
    }
    const reserved = resolver.resolve(resolver.resource(functionLogicalId(functions, fn)).Properties?.ReservedConcurrentExecutions);
    const maximumConcurrency =
      scaling.MaximumConcurrency !== undefined
        ? Number(scaling.MaximumConcurrency)
        : Math.min(DEFAULT_SQS_CONCURRENCY, reserved === undefined ? Infinity : Number(reserved));
    const environmentClass: EnvironmentClass = options.backgroundQueues.has(queueName(queue.arn)) ? 'background' : 'foreground';
    const needed = environmentsNeeded.get(fn) ?? { foreground: 0, background: 0 };
    needed[environmentClass] += Math.max(1, maximumConcurrency);
    environmentsNeeded.set(fn, needed);
    pollers.push(
      new SqsPoller(
        {
          function: fn,
          queueUrl: queue.url,
          queueArn: queue.arn,
          region: LOCAL_REGION,
          batchSize,
          maximumBatchingWindowSeconds,
          maximumConcurrency: Math.max(1, maximumConcurrency),
          environmentClass,
          ...laneGateOf(queueName(queue.arn)),
          fifo,
          reportBatchItemFailures:
            Array.isArray(properties.FunctionResponseTypes) && properties.FunctionResponseTypes.includes('ReportBatchItemFailures'),
          ...(receiveWaitTimeSeconds === undefined ? {} : { receiveWaitTimeSeconds }),
        },
        sqs,
        log,
      ),
    );
  }
  if (refused.length > 0) throw new EventSourceMappingRefused(refused);
  for (const [fn, needed] of environmentsNeeded) {
    fn.allowEnvironments(needed.foreground, 'foreground');
    fn.allowEnvironments(needed.background, 'background');
  }
  return pollers;
}

function functionLogicalId(functions: Map<string, LambdaFunction>, fn: LambdaFunction): string {
  for (const [id, candidate] of functions) if (candidate === fn) return id;
  throw new Error(`Unknown function ${fn.name}`);
}

function scheduledTargets(resolver: StackResolver, functions: Map<string, LambdaFunction>): ScheduledTarget[] {
  const targets: ScheduledTarget[] = [];
  for (const [id, resource] of resolver.resources('AWS::Events::Rule')) {
    const properties = resource.Properties ?? {};
    if (properties.ScheduleExpression === undefined || properties.State === 'DISABLED') continue;
    const scheduleExpression = resolver.resolveString(properties.ScheduleExpression, `${id}.ScheduleExpression`);
    const ruleTargets = resolver.resolve(properties.Targets);
    for (const target of Array.isArray(ruleTargets) ? ruleTargets : []) {
      if (!isRecord(target)) continue;
      const fn = functionFor(functions, String(target.Arn));
      if (!fn) continue;
      targets.push({
        ruleArn: resolver.arn(id),
        scheduleExpression,
        function: fn,
        ...(typeof target.Input === 'string' ? { input: target.Input } : {}),
      });
    }
  }
  return targets;
}

function queueName(arn: string): string {
  return arn.slice(arn.lastIndexOf(':') + 1);
}
