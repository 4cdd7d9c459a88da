// Outputs, stage-aware names, and how the functions are built and packaged (issue 12: small,
// minified bundles with their source maps beside the zips).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleCode, bundledModules, bundledPackageBytes, externalSourceMap } from './bundles.js';
import {
  deadLetterQueueOf,
  eventSourceMappings,
  lambdaFunctions,
  packageProdWithOverrides,
  packageStack,
  repoRoot,
  resourcesOfType,
  sourceQueues,
  targetId,
  zipEntries,
  type Packaged,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

describe('outputs', () => {
  it('publishes the HTTP API URL and the order events topic ARN', () => {
    expect(t.Outputs?.HttpApiUrl?.Value, 'HttpApiUrl').toBeDefined();
    expect(JSON.stringify(t.Outputs?.HttpApiUrl?.Value)).toContain('"Ref":"HttpApi"');
    const topic = targetId(t.Outputs?.OrderEventsTopicArn?.Value);
    expect(topic && t.Resources[topic]?.Type, 'OrderEventsTopicArn').toBe('AWS::SNS::Topic');
    // Ref of a topic is its ARN: the output must be a Ref, not a GetAtt of the name.
    expect(t.Outputs?.OrderEventsTopicArn?.Value).toEqual({ Ref: topic });
  });

  it('publishes the URL of every consumer queue and of its dead-letter queue', () => {
    const outputs = Object.entries(t.Outputs ?? {});
    for (const queue of sourceQueues(t)) {
      const dlq = deadLetterQueueOf(t, queue)!;
      // Ref of an SQS queue is its URL.
      const queueUrl = outputs.filter(([name, o]) => /QueueUrl$/.test(name) && !/DeadLetterQueueUrl$/.test(name) && o.Value?.Ref === queue);
      const dlqUrl = outputs.filter(([name, o]) => /DeadLetterQueueUrl$/.test(name) && o.Value?.Ref === dlq);
      expect(
        queueUrl.map(([n]) => n),
        `QueueUrl output of ${queue}`,
      ).toEqual([`${queue}Url`]);
      expect(
        dlqUrl.map(([n]) => n),
        `DeadLetterQueueUrl output of ${dlq}`,
      ).toEqual([`${dlq}Url`]);
    }
  });
});

describe('stage-aware names', () => {
  const named: Record<string, string> = {
    'AWS::SQS::Queue': 'QueueName',
    'AWS::SNS::Topic': 'TopicName',
    'AWS::DynamoDB::Table': 'TableName',
  };

  function names(template: Template): [string, unknown][] {
    return Object.entries(named).flatMap(([type, property]) =>
      resourcesOfType(template, type).map(([id, r]) => [id, r.Properties?.[property]] as [string, unknown]),
    );
  }

  it('names every queue, topic and table after the stage', () => {
    const prod = packageProdWithOverrides().template;
    const all = names(prod);
    expect(all.length).toBeGreaterThanOrEqual(12);
    for (const [id, name] of all) {
      expect(typeof name, `${id} has no explicit name`).toBe('string');
      expect(name, id).toContain('-prod-');
      expect(name, id).not.toContain('-dev-');
    }
    // The same names in dev, so that two stages in one account never collide.
    for (const [id, name] of names(t)) expect(name, id).toContain('-dev-');
  });
});

describe('functions', () => {
  it('run on Node.js 22 or newer', () => {
    for (const fn of lambdaFunctions(t, stack.stage)) {
      const runtime = String(fn.resource.Properties?.Runtime);
      const major = Number(/^nodejs(\d+)\.x$/.exec(runtime)?.[1] ?? 0);
      expect(major, `${fn.key} runtime ${runtime}`).toBeGreaterThanOrEqual(22);
    }
  });

  it('are packaged individually, each from its own zip', () => {
    const fns = lambdaFunctions(t, stack.stage);
    expect(fns.length).toBe(Object.keys(stack.artifacts).length);
    const keys = new Set<string>();
    for (const fn of fns) {
      const s3Key = String(fn.resource.Properties?.Code?.S3Key ?? '');
      expect(basename(s3Key), `${fn.key} S3Key`).toBe(`${fn.key}.zip`);
      keys.add(s3Key);
      expect(stack.artifacts[fn.key], `${fn.key} artifact`).toBeDefined();
      expect(existsSync(stack.artifacts[fn.key]!), `${stack.artifacts[fn.key]} missing`).toBe(true);
    }
    expect(keys.size).toBe(fns.length);
  });

  it("each zip holds its own handler's bundle and nothing else: no source map", () => {
    for (const fn of lambdaFunctions(t, stack.stage)) {
      const handler = String(fn.resource.Properties?.Handler); // functions/createOrder.handler
      const file = `${handler.slice(0, handler.lastIndexOf('.'))}.mjs`;
      const entries = zipEntries(stack.artifacts[fn.key]!).filter((e) => !e.endsWith('/'));
      expect(entries, `${fn.key} zip`).toEqual([file]);
      expect(
        entries.filter((e) => e.endsWith('.map')),
        `${fn.key} zip holds a source map`,
      ).toEqual([]);
    }
  });
});

// Issue 12, bundles that start fast. Measured by `npm run bench -- --cold-start-only`.
describe('bundles', () => {
  /** Each function's zip at most (what Lambda downloads before a cold start). */
  const MAX_ZIP_BYTES = 400 * 1024;

  it('every zip is at most 400 KB, with tracing on too (the Tracer and the X-Ray SDK in every bundle)', () => {
    for (const packaged of [stack, packageStack({ params: { tracing: 'true' } })]) {
      const fns = lambdaFunctions(packaged.template, packaged.stage);
      expect(fns.length).toBeGreaterThan(0);
      for (const fn of fns) {
        expect(statSync(packaged.artifacts[fn.key]!).size, `${fn.key}.zip bytes, tracing ${packaged.params.tracing}`).toBeLessThanOrEqual(
          MAX_ZIP_BYTES,
        );
      }
    }
  }, 180_000);

  it('are minified, tree-shaken ESM, with no source map named in them', () => {
    expect(String(stack.params.minify)).toBe('true');
    expect(stack.params.sourcemap).toBe('external');
    for (const fn of lambdaFunctions(t, stack.stage)) {
      const code = bundleCode(stack, fn.key);
      // esbuild writes a `// <module path>` line before each module unless it minifies.
      expect(code.match(/^\/\/ \S+\.(?:[cm]?js|ts)$/gm) ?? [], `${fn.key}: module lines`).toEqual([]);
      expect(code, fn.key).not.toMatch(/sourceMappingURL/);
      expect(code, `${fn.key}: ESM`).toMatch(/^import\b/);
    }
  });

  /** What every queue consumer's code uses: the shared consumer (batch, middy, metrics, the S3 client for claim-checks) and a participant's SNS publish. */
  const QUEUE_CONSUMER = [
    'batch',
    'logger',
    'metrics',
    'client-dynamodb',
    'lib-dynamodb',
    'client-s3',
    'client-sns',
    'client-sqs',
    '@middy/core',
    'zod',
  ];
  /** The app's dependencies (package.json) each function's code uses, and so its bundle holds. */
  const USES: Record<string, string[]> = {
    createOrder: ['logger', 'metrics', 'client-dynamodb', 'lib-dynamodb', 'client-s3', 'client-sns', '@middy/core', 'uuid', 'zod'],
    getOrder: ['logger', 'client-dynamodb', 'lib-dynamodb', '@middy/core', 'zod'],
    cancelOrder: ['logger', 'metrics', 'client-dynamodb', 'lib-dynamodb', 'client-s3', 'client-sns', '@middy/core', 'zod'],
    getInventory: ['client-dynamodb', 'lib-dynamodb', 'zod'],
    inventory: QUEUE_CONSUMER,
    payment: [...QUEUE_CONSUMER, 'idempotency', 'cockatiel'],
    shipping: QUEUE_CONSUMER,
    sweepOrders: ['logger', 'metrics', 'client-dynamodb', 'lib-dynamodb', 'client-s3', 'client-sns', '@middy/core', 'zod'],
  };
  /**
   * What a queue consumer that USES does not list may hold: the shared consumer (lib/queue-consumer.ts,
   * with the S3 client that reads claim-check pointers) and a publisher's SNS client. A new consumer
   * passes with no line here; one that pulls in more fails.
   */
  const CONSUMER_USES = [...QUEUE_CONSUMER, 'idempotency'];
  const fullName = (short: string) =>
    ['logger', 'metrics', 'batch', 'idempotency', 'tracer'].includes(short)
      ? `@aws-lambda-powertools/${short}`
      : /^(client|lib)-/.test(short)
        ? `@aws-sdk/${short}`
        : short;

  it('hold no dependency their function does not use (tree-shaken: the AWS SDK clients it calls, no other)', () => {
    const dependencies = Object.keys(JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).dependencies);
    const fns = lambdaFunctions(t, stack.stage);
    const consumers = new Set(eventSourceMappings(t).map((m) => m.functionId));
    expect(
      Object.keys(USES).filter((key) => !fns.some((fn) => fn.key === key)),
      'USES lists a function the stack lacks',
    ).toEqual([]);
    for (const fn of fns) {
      // A package counts as held when it puts code there, not the trace of an import: Powertools
      // 2.35's Metrics stores import @aws/lambda-invoke-store for its side effects, which leaves
      // an init call (5 bytes each, minified) in any bundle that imports the package at all.
      const bytes = bundledPackageBytes(stack, fn.key);
      const held = dependencies.filter((d) => (bytes.get(d) ?? 0) >= 100).sort();
      const listed = USES[fn.key];
      if (listed) expect(held, fn.key).toEqual(listed.map(fullName).sort());
      else if (consumers.has(fn.id)) expect(CONSUMER_USES.map(fullName), `${fn.key}, a consumer`).toEqual(expect.arrayContaining(held));
      else throw new Error(`${fn.key}: list the dependencies its code uses in USES`);
    }
  });

  it("writes each bundle's source map and metafile beside the zips, for the bundle it maps", () => {
    for (const fn of lambdaFunctions(t, stack.stage)) {
      const map = externalSourceMap(stack, fn.key);
      expect(map?.mappings, `${fn.key}: esbuild/functions/${fn.key}.mjs.map`).toBeTruthy();
      expect(
        map!.sources.some((source) => source.endsWith(`functions/${fn.key}.ts`)),
        `${fn.key}: map sources`,
      ).toBe(true);
      expect(bundledModules(stack, fn.key), `${fn.key}: metafile`).toContain(`functions/${fn.key}.ts`);
    }
  });

  it('with sourcemap=linked, each zip holds its map too, named by the bundle (for --enable-source-maps)', () => {
    const linked = packageStack({ params: { sourcemap: 'linked' } });
    expect(linked.template.Resources.CreateOrderLambdaFunction?.Properties?.Environment?.Variables?.NODE_OPTIONS).toBe(
      '--enable-source-maps',
    );
    for (const fn of lambdaFunctions(linked.template, linked.stage)) {
      const file = `functions/${fn.key}.mjs`;
      expect(
        zipEntries(linked.artifacts[fn.key]!)
          .filter((e) => !e.endsWith('/'))
          .sort(),
        fn.key,
      ).toEqual([file, `${file}.map`]);
      expect(bundleCode(linked, fn.key).trimEnd(), fn.key).toMatch(new RegExp(`//# sourceMappingURL=${fn.key}\\.mjs\\.map$`));
      expect(externalSourceMap(linked, fn.key), `${fn.key}: no map beside the zips`).toBeUndefined();
    }
  }, 180_000);
});
