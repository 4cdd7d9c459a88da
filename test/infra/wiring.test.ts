// Template wiring: the params of serverless.yml reaching each function's environment (and the
// function, queue and mapping settings they size), per stage and under a `--param` override; and
// every table's keys, indexes, TTL and point-in-time recovery. (The sweep's schedule and its index's
// projection are in self-healing.test.ts.)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  asArray,
  eventSourceMappings,
  lambdaFunctions,
  packageStack,
  repoRoot,
  resource,
  resourcesOfType,
  type Json,
  type Packaged,
} from './template.js';

/** Every function of the packaged template, and the queue consumers (those an event source mapping invokes). */
let ALL_FUNCTIONS: string[];
let CONSUMERS: string[];

/**
 * Every environment variable serverless.yml sets from a param (itself or through the consumers'
 * declarations), the param, and the functions that must get it: the code reads each with a
 * fallback (lib/config.ts), so a variable that does not reach a function fails nothing at run
 * time, it just runs on the default.
 */
const ENVIRONMENT_PARAMS: Record<string, { param: string; functions: () => string[] }> = {
  POWERTOOLS_TRACE_ENABLED: { param: 'tracing', functions: () => ALL_FUNCTIONS },
  ORDER_SWEEP_AFTER_SECONDS: { param: 'orderSweepAfterSeconds', functions: () => ALL_FUNCTIONS },
  RETRY_BACKOFF_BASE_SECONDS: { param: 'retryBackoffBaseSeconds', functions: () => CONSUMERS },
  ORDER_SWEEP_BACKOFF_BASE_SECONDS: { param: 'orderSweepBackoffBaseSeconds', functions: () => ['sweepOrders'] },
  ORDER_SWEEP_STUCK_ATTEMPTS: { param: 'orderSweepStuckAttempts', functions: () => ['sweepOrders'] },
  // The OrderPlaced publishers (they offload a large one) and the consumers (a participant completing
  // an order deletes its object only if it was offloaded): lib/claim-check.ts.
  CLAIM_CHECK_THRESHOLD_BYTES: { param: 'claimCheckThresholdBytes', functions: () => [...CONSUMERS, 'createOrder', 'sweepOrders'] },
};

/** Every param above set away from its default and its `local` value, in one packaging. */
const OVERRIDES = {
  tracing: 'true',
  orderSweepAfterSeconds: 333,
  retryBackoffBaseSeconds: 7,
  orderSweepBackoffBaseSeconds: 44,
  orderSweepStuckAttempts: 9,
  claimCheckThresholdBytes: 100000,
  consumerTimeoutSeconds: 8,
  queueVisibilityTimeoutSeconds: 61,
  batchSize: 4,
  batchWindowSeconds: 3,
  maximumConcurrency: 6,
  expressMaximumConcurrency: 3,
};

let dev: Packaged;
let local: Packaged;
let overridden: Packaged;
beforeAll(() => {
  dev = packageStack();
  local = packageStack({ stage: 'local' });
  overridden = packageStack({ params: OVERRIDES });
  const functionKeys = new Map(lambdaFunctions(dev.template, dev.stage).map((fn) => [fn.id, fn.key]));
  ALL_FUNCTIONS = [...functionKeys.values()].sort();
  CONSUMERS = [...new Set(eventSourceMappings(dev.template).map((m) => functionKeys.get(m.functionId)!))].sort();
});

/** A function's environment variables, by its key in serverless.yml. */
function environments(packaged: Packaged): Record<string, Record<string, Json>> {
  return Object.fromEntries(
    lambdaFunctions(packaged.template, packaged.stage).map((fn) => [fn.key, fn.resource.Properties?.Environment?.Variables ?? {}]),
  );
}

/**
 * `VAR: ${param:name}` entries of the `environment:` maps of serverless.yml (provider-wide, or of one
 * function), read line by line: the file is plain block YAML, one key per line.
 */
function paramsInEnvironments(): Array<{ variable: string; param: string; scope: string }> {
  const found: Array<{ variable: string; param: string; scope: string }> = [];
  const path: Array<{ indent: number; key: string }> = [];
  for (const line of readFileSync(join(repoRoot, 'serverless.yml'), 'utf8').split('\n')) {
    const m = /^(\s*)(-\s+)?([\w.-]+):(?:\s+(.*))?$/.exec(line);
    if (!m || line.trimStart().startsWith('#')) continue;
    const indent = m[1]!.length + (m[2]?.length ?? 0);
    while (path.length > 0 && path[path.length - 1]!.indent >= indent) path.pop();
    const keys = path.map((p) => p.key);
    const params = [...(m[4] ?? '').matchAll(/\$\{param:(\w+)\}/g)].map((p) => p[1]!);
    const inEnvironment =
      (keys.length === 2 && keys[0] === 'provider' && keys[1] === 'environment') ||
      (keys.length === 3 && keys[0] === 'functions' && keys[2] === 'environment');
    if (inEnvironment) {
      for (const param of params) found.push({ variable: m[3]!, param, scope: keys[0] === 'provider' ? 'provider' : keys[1]! });
    }
    path.push({ indent, key: m[3]! });
  }
  // The consumers' functions, as resources/consumer-resources.cjs generates them for serverless.yml.
  const generated = createRequire(import.meta.url)('../../resources/consumer-resources.cjs').functions() as Record<
    string,
    { environment?: Record<string, Json> }
  >;
  for (const [key, fn] of Object.entries(generated)) {
    for (const [variable, value] of Object.entries(fn.environment ?? {})) {
      for (const p of typeof value === 'string' ? value.matchAll(/\$\{param:(\w+)\}/g) : [])
        found.push({ variable, param: p[1]!, scope: key });
    }
  }
  return found;
}

describe('params reaching the functions', () => {
  it('the table above is every ${param:…} serverless.yml (or a consumer declaration) puts in an environment, where it puts it', () => {
    const scanned = paramsInEnvironments();
    // The scan sees the file's environment maps (else an empty answer would prove nothing).
    expect(scanned.length).toBeGreaterThanOrEqual(Object.keys(ENVIRONMENT_PARAMS).length);
    const byVariable: Record<string, { param: string; functions: string[] }> = {};
    for (const { variable, param, scope } of scanned) {
      byVariable[variable] ??= { param, functions: [] };
      const entry = byVariable[variable];
      expect(entry.param, `${variable} set from two params`).toBe(param);
      entry.functions.push(...(scope === 'provider' ? ALL_FUNCTIONS : [scope]));
    }
    for (const entry of Object.values(byVariable)) entry.functions.sort();
    const expected = Object.fromEntries(
      Object.entries(ENVIRONMENT_PARAMS).map(([variable, { param, functions }]) => [
        variable,
        { param, functions: [...functions()].sort() },
      ]),
    );
    expect(byVariable).toEqual(expected);
  });

  it.each(['dev', 'local'])('each function gets each param it needs, with the value of stage %s', (stageName) => {
    const packaged = stageName === 'local' ? local : dev;
    expect(packaged.stage).toBe(stageName);
    const env = environments(packaged);
    expect(Object.keys(env).sort()).toEqual([...ALL_FUNCTIONS].sort());
    for (const [variable, { param, functions }] of Object.entries(ENVIRONMENT_PARAMS)) {
      const value = packaged.params[param];
      expect(value, `param ${param} in stage ${stageName}`).toBeDefined();
      for (const fn of ALL_FUNCTIONS) {
        expect(env[fn]![variable], `${fn} ${variable}`).toBe(functions().includes(fn) ? String(value) : undefined);
      }
    }
  });

  it('stage local runs shorter clocks than dev: its own param values reach the functions', () => {
    const [d, l] = [environments(dev), environments(local)];
    for (const fn of CONSUMERS) {
      expect([d[fn]!.RETRY_BACKOFF_BASE_SECONDS, l[fn]!.RETRY_BACKOFF_BASE_SECONDS], fn).toEqual(['2', '1']);
      expect([d[fn]!.ORDER_SWEEP_AFTER_SECONDS, l[fn]!.ORDER_SWEEP_AFTER_SECONDS], fn).toEqual(['120', '20']);
    }
    expect([d.sweepOrders!.ORDER_SWEEP_BACKOFF_BASE_SECONDS, l.sweepOrders!.ORDER_SWEEP_BACKOFF_BASE_SECONDS]).toEqual(['60', '10']);
  });

  it('a --param override changes what every function gets', () => {
    const env = environments(overridden);
    for (const [variable, { param, functions }] of Object.entries(ENVIRONMENT_PARAMS)) {
      const value = String(OVERRIDES[param as keyof typeof OVERRIDES]);
      expect(value, `the override of ${param}`).not.toBe(String(dev.params[param]));
      for (const fn of functions()) expect(env[fn]![variable], `${fn} ${variable}`).toBe(value);
    }
  });

  it.each(['dev', 'local', 'overridden'])(
    'consumer timeout, queue visibility timeout and event source mapping settings follow the params (%s)',
    (variant) => {
      const packaged = { dev, local, overridden }[variant]!;
      const { template, params } = packaged;
      const mappings = eventSourceMappings(template);
      // Two per consumer: its standard queue's and its express queue's.
      expect(mappings).toHaveLength(CONSUMERS.length * 2);
      const keys = new Map(lambdaFunctions(template, packaged.stage).map((fn) => [fn.id, fn.key]));
      expect(mappings.map((m) => keys.get(m.functionId)).sort()).toEqual(CONSUMERS.flatMap((key) => [key, key]));
      for (const m of mappings) {
        expect(Number(resource(template, m.functionId).Properties?.Timeout), `${m.functionId} Timeout`).toBe(
          Number(params.consumerTimeoutSeconds),
        );
        expect(Number(resource(template, m.queueId).Properties?.VisibilityTimeout), `${m.queueId} VisibilityTimeout`).toBe(
          Number(params.queueVisibilityTimeoutSeconds),
        );
        expect(
          [m.properties.BatchSize, m.properties.MaximumBatchingWindowInSeconds, m.properties.ScalingConfig?.MaximumConcurrency].map(Number),
          m.id,
        ).toEqual(
          [
            params.batchSize,
            params.batchWindowSeconds,
            m.queueId.endsWith('ExpressQueue') ? params.expressMaximumConcurrency : params.maximumConcurrency,
          ].map(Number),
        );
      }
      if (variant === 'overridden') {
        expect([params.consumerTimeoutSeconds, params.queueVisibilityTimeoutSeconds, params.batchSize]).toEqual([8, 61, 4]);
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Tables

type Key = [attribute: string, type: 'S' | 'N' | 'B', keyType: 'HASH' | 'RANGE'];

interface TableIntent {
  keys: Key[];
  indexes: Record<string, Key[]>;
  /** The attribute DynamoDB expires items on, if any. */
  ttl?: string;
  /**
   * Point-in-time recovery: on for every table whose items are the pipeline's state (orders, stock,
   * reservations, the payments ledger, shipments): lost or overwritten, nothing else rebuilds them.
   * Off for idempotency records and Idempotency-Key mappings, which expire within a day, and for
   * card tokens, which must not outlive their use.
   */
  pitr: boolean;
}

const TABLES: Record<string, TableIntent> = {
  OrdersTable: {
    keys: [['orderId', 'S', 'HASH']],
    indexes: {
      UnfinishedOrders: [
        ['sweepShard', 'S', 'HASH'],
        ['sweepDueAt', 'S', 'RANGE'],
      ],
    },
    pitr: true,
  },
  IdempotencyTable: { keys: [['id', 'S', 'HASH']], indexes: {}, ttl: 'expiration', pitr: false },
  InventoryTable: { keys: [['sku', 'S', 'HASH']], indexes: {}, pitr: true },
  PaymentsTable: {
    keys: [
      ['orderId', 'S', 'HASH'],
      ['entryId', 'S', 'RANGE'],
    ],
    indexes: {},
    pitr: true,
  },
  // The card token until the charge is decided: a backup would keep deleted tokens for 35 days.
  PaymentTokensTable: { keys: [['orderId', 'S', 'HASH']], indexes: {}, ttl: 'expiresAt', pitr: false },
  // Which order an Idempotency-Key names, for 24 hours.
  OrderRequestsTable: { keys: [['requestKey', 'S', 'HASH']], indexes: {}, ttl: 'expiresAt', pitr: false },
};

const keySchema = (keys: Key[]) => keys.map(([AttributeName, , KeyType]) => ({ AttributeName, KeyType }));

describe('tables', () => {
  it('every table of the stack is one this test knows the intent of', () => {
    expect(
      resourcesOfType(dev.template, 'AWS::DynamoDB::Table')
        .map(([id]) => id)
        .sort(),
    ).toEqual(Object.keys(TABLES).sort());
  });

  describe.each(Object.entries(TABLES))('%s', (id, intent) => {
    it('has its keys and indexes, each key attribute defined once with its type, and no other', () => {
      const p = resource(dev.template, id).Properties ?? {};
      expect(p.KeySchema).toEqual(keySchema(intent.keys));
      const indexes = asArray<Json>(p.GlobalSecondaryIndexes);
      expect(Object.fromEntries(indexes.map((i) => [i.IndexName, i.KeySchema]))).toEqual(
        Object.fromEntries(Object.entries(intent.indexes).map(([name, keys]) => [name, keySchema(keys)])),
      );
      expect(p.LocalSecondaryIndexes).toBeUndefined();
      const attributes = new Map<string, string>();
      for (const [name, type] of [...intent.keys, ...Object.values(intent.indexes).flat()]) attributes.set(name, type);
      expect(
        asArray<Json>(p.AttributeDefinitions)
          .map((a) => [a.AttributeName, a.AttributeType])
          .sort(),
      ).toEqual([...attributes].sort());
      expect(p.BillingMode).toBe('PAY_PER_REQUEST');
    });

    it(intent.ttl ? `expires items on ${intent.ttl}` : 'never expires items', () => {
      const ttl = resource(dev.template, id).Properties?.TimeToLiveSpecification;
      expect(ttl).toEqual(intent.ttl ? { AttributeName: intent.ttl, Enabled: true } : undefined);
    });

    it(intent.pitr ? 'has point-in-time recovery: it holds state' : 'has no point-in-time recovery: its items expire within a day', () => {
      const pitr = resource(dev.template, id).Properties?.PointInTimeRecoverySpecification;
      expect(pitr?.PointInTimeRecoveryEnabled ?? false).toBe(intent.pitr);
    });
  });
});
