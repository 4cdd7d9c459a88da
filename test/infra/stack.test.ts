// Outputs, stage-aware names, and how the functions are built and packaged.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetterQueueOf,
  lambdaFunctions,
  packageProdWithOverrides,
  packageStack,
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

  it('publishes the URL of every stage queue and of its dead-letter queue', () => {
    const outputs = Object.entries(t.Outputs ?? {});
    for (const queue of sourceQueues(t)) {
      const dlq = deadLetterQueueOf(t, queue)!;
      // Ref of an SQS queue is its URL.
      const queueUrl = outputs.filter(([name, o]) => /QueueUrl$/.test(name) && !/DeadLetterQueueUrl$/.test(name) && o.Value?.Ref === queue);
      const dlqUrl = outputs.filter(([name, o]) => /DeadLetterQueueUrl$/.test(name) && o.Value?.Ref === dlq);
      expect(queueUrl.map(([n]) => n), `QueueUrl output of ${queue}`).toEqual([`${queue}Url`]);
      expect(dlqUrl.map(([n]) => n), `DeadLetterQueueUrl output of ${dlq}`).toEqual([`${dlq}Url`]);
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
    expect(fns.length).toBe(7);
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

  it("each zip holds only its own handler's bundle", () => {
    for (const fn of lambdaFunctions(t, stack.stage)) {
      const handler = String(fn.resource.Properties?.Handler); // functions/createOrder.handler
      const file = `${handler.slice(0, handler.lastIndexOf('.'))}.mjs`;
      const entries = zipEntries(stack.artifacts[fn.key]!).filter((e) => !e.endsWith('/'));
      expect(entries, `${fn.key} zip`).toContain(file);
      expect(entries.filter((e) => e !== file && e !== `${file}.map`), `${fn.key} zip has more than its bundle`).toEqual([]);
    }
  });
});
