// What a handler writes to stdout and stderr: forwarded line by line to the runtime's sink, or,
// with no sink (a quiet runtime), dropped inside the environment as it is written, the handler
// seeing the same writable streams either way.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LambdaFunction, type LambdaFunctionDefinition } from '../../local/lambda-environment.js';

let workDir: string;
let definition: LambdaFunctionDefinition;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'lambda-output-'));
  const modulePath = path.join(workDir, 'handler.mjs');
  await writeFile(
    modulePath,
    `export async function handler(event) {
  console.log('line from console.log', event.n);
  console.error('line from console.error');
  const acknowledged = await new Promise((resolve) => process.stdout.write('written with a callback\\n', () => resolve(true)));
  return { n: event.n, acknowledged, writable: process.stdout.writable, returned: process.stdout.write('') };
}
`,
  );
  definition = {
    name: 'output',
    functionName: 'output-test',
    functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:output-test',
    modulePath,
    exportName: 'handler',
    timeoutSeconds: 5,
    memorySize: 128,
    logGroupName: '/aws/lambda/output-test',
    environment: {},
  };
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('handler output', () => {
  it('reaches the sink line by line', async () => {
    const lines: Array<[string, string]> = [];
    const fn = new LambdaFunction(definition, (_name, stream, line) => lines.push([stream, line]));
    try {
      const result = await fn.invoke({ n: 1 });
      expect(result).toMatchObject({ ok: true, payload: { n: 1, acknowledged: true, writable: true, returned: true } });
      await expect.poll(() => lines.length).toBe(3);
      expect(lines).toEqual(
        expect.arrayContaining([
          ['stdout', 'line from console.log 1'],
          ['stderr', 'line from console.error'],
          ['stdout', 'written with a callback'],
        ]),
      );
    } finally {
      await fn.stop();
    }
  });

  it('is dropped in the environment when there is no sink, the handler none the wiser', async () => {
    const fn = new LambdaFunction(definition, undefined);
    try {
      for (const n of [1, 2]) {
        const result = await fn.invoke({ n });
        expect(result).toMatchObject({ ok: true, payload: { n, acknowledged: true, writable: true, returned: true } });
      }
    } finally {
      await fn.stop();
    }
  });
});
