// The `tracing` param: X-Ray active tracing on every function, the X-Ray actions on every
// function's role, and the Powertools Tracer in the bundles; none of it when off (the default). The
// bundles are read as they ship (bundles.ts): the code out of the packaged zips, and what esbuild
// put in them from the metafile and the source map the packaging writes beside the zips. What is in
// them, not how much they weigh. The bundles are minified; the metafile and the map name every
// module all the same.
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleCode, bundledModules, externalSourceMap, packageOf } from './bundles.js';
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
    expect(functions.map((fn) => fn.key).sort()).toEqual(
      lambdaFunctions(off.template, off.stage)
        .map((fn) => fn.key)
        .sort(),
    );
    for (const fn of functions) {
      expect(fn.resource.Properties?.TracingConfig, fn.key).toEqual({ Mode: 'Active' });
      expect(fn.resource.Properties?.Environment?.Variables?.POWERTOOLS_TRACE_ENABLED, fn.key).toBe('true');
      const xray = xrayStatements(functionStatements(on.template, fn.id));
      expect(xray, fn.key).toHaveLength(1);
      expect(xray[0]).toMatchObject({ Effect: 'Allow', Resource: '*' });
      expect([...actionsOf(xray[0]!)].sort(), fn.key).toEqual([...XRAY_ACTIONS].sort());
    }
  });

  it('leaves the Tracer and the X-Ray SDK out of the bundles when off, and puts them in when on', () => {
    const off_ = bundledPackages(off);
    const on_ = bundledPackages(on);
    expect(Object.keys(off_).sort()).toEqual(Object.keys(off.artifacts).sort());
    expect(Object.keys(on_).sort()).toEqual(Object.keys(off.artifacts).sort());
    for (const name of Object.keys(off.artifacts)) {
      // The detection sees what every bundle holds (else an empty answer would prove nothing).
      for (const bundle of [off_[name]!, on_[name]!]) {
        expect(bundle.modules, `${name}: esbuild metafile`).toContain('@aws-sdk/client-dynamodb');
        expect(bundle.sources, `${name}: source map sources`).toContain('@aws-sdk/client-dynamodb');
      }
      for (const module of TRACING_MODULES) {
        expect(off_[name]!.modules, `${name} (tracing off) bundles ${module}`).not.toContain(module);
        expect(off_[name]!.sources, `${name} (tracing off) maps ${module}`).not.toContain(module);
        expect(off_[name]!.code.includes(module), `${name} (tracing off) names ${module} anywhere in its code`).toBe(false);
        expect(on_[name]!.modules, `${name} (tracing on) bundles ${module}`).toContain(module);
        expect(on_[name]!.sources, `${name} (tracing on) maps ${module}`).toContain(module);
      }
    }
  });
});

/** The Powertools Tracer and the X-Ray SDK under it: the packages tracing adds to a bundle. */
const TRACING_MODULES = ['@aws-lambda-powertools/tracer', 'aws-xray-sdk-core'];

interface Bundle {
  /** The bundle's code (functions/<name>.mjs in the zip). */
  code: string;
  /** Packages esbuild put in the bundle, from its metafile. */
  modules: string[];
  /** Packages the bundle's source map lists sources of. */
  sources: string[];
}

/** What each function's zip holds: its bundle's code, and the packages in it. */
function bundledPackages(packaged: Packaged): Record<string, Bundle> {
  const unique = (names: Array<string | undefined>) => [...new Set(names.filter((n): n is string => n !== undefined))].sort();
  const bundles: Record<string, Bundle> = {};
  for (const name of Object.keys(packaged.artifacts)) {
    const map = externalSourceMap(packaged, name);
    if (!map) throw new Error(`${packaged.dir} holds no source map of ${name} beside the zips`);
    bundles[name] = {
      code: bundleCode(packaged, name),
      modules: unique(bundledModules(packaged, name).map(packageOf)),
      sources: unique(map.sources.map(packageOf)),
    };
  }
  return bundles;
}
