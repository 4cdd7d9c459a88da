import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Work that outlives its invocation resumes, on AWS, in whichever invocation thaws its environment
// next, after its records were retried by another attempt (lib/lambda-invocation.ts). Middy's early
// timeout is what lets it: every handler built with Middy, a fork's new ones included, turns it off.
describe('handlers built with Middy', () => {
  it('all end with their work: none keeps Middy’s early timeout', () => {
    const sources = ['functions', 'lib'].flatMap((dir) =>
      readdirSync(dir)
        .filter((file) => file.endsWith('.ts'))
        .map((file) => join(dir, file)),
    );
    const calls = sources.flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/\bmiddy\(([^)]*)\)/g)].map((m) => ({ file, call: m[0] })),
    );
    expect(calls.length).toBeGreaterThanOrEqual(5);
    expect(calls.filter(({ call }) => !call.endsWith(', invocationEndsWithItsWork)'))).toEqual([]);
  });
});
