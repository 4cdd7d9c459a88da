import type { Tracer } from '@aws-lambda-powertools/tracer';

// Powertools Tracer (AWS X-Ray), switched by the `tracing` param of serverless.yml. The param sets
// POWERTOOLS_TRACE_ENABLED on every function, and esbuild replaces process.env.TRACING_BUNDLED in
// the bundles with its value (custom.esbuild.define): with tracing off, the branch below is
// `if (false)` and esbuild leaves the Tracer and the X-Ray SDK out of every bundle
// (test/infra/tracing.test.ts checks both ways). Run from source (tests, tsx) nothing is replaced, and there is no tracer either.
let tracer: Tracer | undefined;
if (process.env.TRACING_BUNDLED === 'true' && process.env.POWERTOOLS_TRACE_ENABLED !== 'false') {
  const { Tracer } = await import('@aws-lambda-powertools/tracer');
  tracer = new Tracer();
}

/** The client, with each of its requests recorded as an X-Ray subsegment when tracing is on. */
export function traced<T>(client: T): T {
  return tracer ? tracer.captureAWSv3Client(client) : client;
}
