import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canListenOn, freePort } from '../support/ports.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageStack, variantPackaging } from '../../local/package-stack.js';
import { startLocalPipeline } from '../../local/runtime.js';
import type { CfnTemplate } from '../../local/template.js';

// `npm start` refuses, at start-up and in Lambda's words, a template whose event source mappings
// AWS would refuse at deploy time, and leaves nothing running. The template is the packaged one,
// changed in a copy (the function zips are linked, not copied).

const TEMPLATE_FILE = 'cloudformation-template-update-stack.json';
let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'refused-mapping-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** A copy of the packaged stack (standard or FIFO) whose template `change` edits; returns the template's path. */
async function packagedCopy(change: (template: CfnTemplate) => void, queueType: 'standard' | 'fifo' = 'standard'): Promise<string> {
  const packaged = await packageStack(variantPackaging('local', queueType));
  const dir = await mkdtemp(path.join(workDir, 'stack-'));
  for (const file of await readdir(packaged.outputDir)) {
    if (file !== TEMPLATE_FILE) await symlink(path.join(packaged.outputDir, file), path.join(dir, file));
  }
  const template = JSON.parse(await readFile(packaged.templatePath, 'utf8')) as CfnTemplate;
  change(template);
  await writeFile(path.join(dir, TEMPLATE_FILE), JSON.stringify(template));
  return path.join(dir, TEMPLATE_FILE);
}

function properties(template: CfnTemplate, id: string): Record<string, unknown> {
  const resource = template.Resources[id];
  if (!resource?.Properties) throw new Error(`No ${id} in the template`);
  return resource.Properties;
}

describe('a template AWS would refuse', () => {
  it('is refused at start-up, each mapping at fault named with Lambda’s own message, and nothing is left listening', async () => {
    const templatePath = await packagedCopy((template) => {
      // Longer than the payment queue's 31 s visibility timeout.
      properties(template, 'PaymentLambdaFunction').Timeout = 60;
      properties(template, 'InventoryEventSourceMappingSQSInventoryQueue').ScalingConfig = { MaximumConcurrency: 1 };
      Object.assign(properties(template, 'ShippingEventSourceMappingSQSShippingQueue'), {
        BatchSize: 50,
        MaximumBatchingWindowInSeconds: 0,
      });
    });
    const [apiPort, sqsPort, dynamodbPort] = [await freePort(), await freePort(), await freePort()];

    const error = await startLocalPipeline({ templatePath, apiPort, sqsPort, dynamodbPort, quiet: true }).then(
      async (pipeline) => {
        await pipeline.stop();
        throw new Error('the local pipeline started');
      },
      (refused: unknown) => refused as Error,
    );

    expect(error.name).toBe('EventSourceMappingRefused');
    const { message } = error;
    expect(message).toContain('AWS would refuse event source mappings of this template');
    expect(message).toContain(
      'PaymentEventSourceMappingSQSPaymentQueue: InvalidParameterValueException: Queue visibility timeout: 31 seconds is less than Function timeout: 60 seconds',
    );
    expect(message).toContain(
      "InventoryEventSourceMappingSQSInventoryQueue: ValidationException: 1 validation error detected: Value '1' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have value greater than or equal to 2",
    );
    expect(message).toContain(
      'ShippingEventSourceMappingSQSShippingQueue: InvalidParameterValueException: Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10',
    );
    // The emulators it had started are stopped; the API never started.
    for (const port of [apiPort, sqsPort, dynamodbPort]) expect(await canListenOn(port)).toBe(true);
  });
});

describe('a FIFO template AWS would refuse', () => {
  it("is refused for a batching window on a FIFO queue, in Lambda's words, the FIFO stack's own mappings accepted", async () => {
    const templatePath = await packagedCopy((template) => {
      properties(template, 'PaymentEventSourceMappingSQSPaymentQueue').MaximumBatchingWindowInSeconds = 1;
    }, 'fifo');
    const [apiPort, sqsPort, dynamodbPort] = [await freePort(), await freePort(), await freePort()];
    const error = await startLocalPipeline({ templatePath, apiPort, sqsPort, dynamodbPort, quiet: true }).then(
      async (pipeline) => {
        await pipeline.stop();
        throw new Error('the local pipeline started');
      },
      (refused: unknown) => refused as Error,
    );
    expect(error.name).toBe('EventSourceMappingRefused');
    expect(error.message).toContain(
      'PaymentEventSourceMappingSQSPaymentQueue: InvalidParameterValueException: Batching window is not supported for FIFO queues',
    );
    // Only that one: the other FIFO mappings, as packaged, are what AWS accepts.
    expect(error.message).not.toContain('InventoryEventSourceMapping');
    expect(error.message).not.toContain('ShippingEventSourceMapping');
  });
});
