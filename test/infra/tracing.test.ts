// The `tracing` param: X-Ray active tracing on every function, the X-Ray actions on every
// function's role, and the Powertools Tracer in the bundles; none of it when off (the default).
import { statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { actionsOf, functionStatements, lambdaFunctions, packageStack, type Packaged, type Statement } from './template.js';

const XRAY_ACTIONS = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'];

let off: Packaged;
let on: Packaged;
beforeAll(() => {
  off = packageStack();
  on = packageStack({ params: { tracing: 'true' } });
});

const xrayStatements = (statements: Statement[]) => statements.filter((s) => actionsOf(s).some((a) => a.startsWith('xray:')));

describe('tracing param', () => {
  it('is off by default: no function traced, no role with an X-Ray action', () => {
    expect(String(off.params.tracing)).toBe('false');
    const functions = lambdaFunctions(off.template, off.stage);
    expect(functions.length).toBeGreaterThan(0);
    for (const fn of functions) {
      expect(fn.resource.Properties?.TracingConfig?.Mode ?? 'PassThrough', fn.key).not.toBe('Active');
      expect(fn.resource.Properties?.Environment?.Variables?.POWERTOOLS_TRACE_ENABLED, fn.key).toBe('false');
      expect(xrayStatements(functionStatements(off.template, fn.id)), fn.key).toEqual([]);
    }
  });

  it("on: every function has active tracing and its role exactly the two X-Ray actions, on '*'", () => {
    const functions = lambdaFunctions(on.template, on.stage);
    expect(functions.map((fn) => fn.key).sort()).toEqual(lambdaFunctions(off.template, off.stage).map((fn) => fn.key).sort());
    for (const fn of functions) {
      expect(fn.resource.Properties?.TracingConfig, fn.key).toEqual({ Mode: 'Active' });
      expect(fn.resource.Properties?.Environment?.Variables?.POWERTOOLS_TRACE_ENABLED, fn.key).toBe('true');
      const xray = xrayStatements(functionStatements(on.template, fn.id));
      expect(xray, fn.key).toHaveLength(1);
      expect(xray[0]).toMatchObject({ Effect: 'Allow', Resource: '*' });
      expect([...actionsOf(xray[0]!)].sort(), fn.key).toEqual([...XRAY_ACTIONS].sort());
    }
  });

  it('leaves the Tracer and the X-Ray SDK out of the bundles when off', () => {
    for (const [name, artifact] of Object.entries(off.artifacts)) {
      const withTracer = statSync(on.artifacts[name]!).size;
      const without = statSync(artifact).size;
      // The Tracer and aws-xray-sdk-core weigh about 200 KB zipped (with their source maps).
      expect(withTracer - without, name).toBeGreaterThan(100_000);
    }
  });
});
