// The function bundles of a packaging, read the way they ship: the code from each function's zip;
// what went into it from the esbuild metafile, and its source map (by default external), which the
// packaging writes beside the zips (packaging/esbuild-plugins.cjs).
//
// The bundles are minified: no `// <module path>` line before each module, class names mangled.
// What needs to read the code itself (which AWS commands a bundle constructs: bundle-actions.ts)
// reads its readable twin: the same packaging with `--param=minify=false`, which changes nothing
// but custom.esbuild.minify (differencesFromReadableTwin checks it).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageStack, type Json, type Packaged } from './template.js';
import { zipFiles } from './zip-contents.js';

/** `functions/createOrder` for a function key: the handler's module path, without extension. */
export function modulePathOf(stack: Packaged, key: string): string {
  const state = JSON.parse(readFileSync(join(stack.dir, 'serverless-state.json'), 'utf8'));
  const handler = String(state.service.functions[key]?.handler ?? '');
  if (!handler.includes('.')) throw new Error(`No handler for function ${key}`);
  return handler.slice(0, handler.lastIndexOf('.'));
}

/** The bundle's code, out of the function's zip. */
export function bundleCode(stack: Packaged, key: string): string {
  const name = `${modulePathOf(stack, key)}.mjs`;
  const file = zipFiles(stack.artifacts[key]!).find((f) => f.name === name);
  if (!file) throw new Error(`${stack.artifacts[key]} holds no ${name}`);
  return file.content.toString('utf8');
}

export interface Metafile {
  inputs: Record<string, { bytes: number }>;
  outputs: Record<string, { entryPoint?: string; inputs: Record<string, { bytesInOutput: number }>; bytes: number }>;
}

/** The esbuild metafile of a function's bundle, beside the zips. */
export function bundleMetafile(stack: Packaged, key: string): Metafile {
  return JSON.parse(readFileSync(join(stack.dir, 'esbuild', `${modulePathOf(stack, key)}.meta.json`), 'utf8'));
}

/**
 * The modules esbuild put code of in a function's bundle (paths relative to the service directory).
 * The metafile also lists modules imported and then shaken out entirely, with 0 bytes: not those.
 */
export function bundledModules(stack: Packaged, key: string): string[] {
  const entry = Object.values(bundleMetafile(stack, key).outputs).find((output) => output.entryPoint);
  if (!entry) throw new Error(`${key}: no entry point in the metafile`);
  return Object.entries(entry.inputs)
    .filter(([, input]) => input.bytesInOutput > 0)
    .map(([path]) => path)
    .sort();
}

/** Bytes of code each npm package puts in a function's bundle (packageOf its modules; the app's own code is left out). */
export function bundledPackageBytes(stack: Packaged, key: string): Map<string, number> {
  const entry = Object.values(bundleMetafile(stack, key).outputs).find((output) => output.entryPoint);
  if (!entry) throw new Error(`${key}: no entry point in the metafile`);
  const bytes = new Map<string, number>();
  for (const [path, input] of Object.entries(entry.inputs)) {
    const name = packageOf(path);
    if (name !== undefined) bytes.set(name, (bytes.get(name) ?? 0) + input.bytesInOutput);
  }
  return bytes;
}

/** The npm package a module path is in (the innermost node_modules), or undefined for the app's own code. */
export function packageOf(path: string): string | undefined {
  return /node_modules\/((?:@[^/\s]+\/)?[^/\s]+)\/(?!.*node_modules\/)/.exec(path)?.[1];
}

/** The source map written beside the zips (sourcemap=external), or undefined when there is none. */
export function externalSourceMap(stack: Packaged, key: string): { sources: string[]; mappings: string } | undefined {
  const path = join(stack.dir, 'esbuild', `${modulePathOf(stack, key)}.mjs.map`);
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
}

/** The same packaging with only `minify=false` added: readable bundles. */
export function readableTwin(stack: Packaged): Packaged {
  if (String(stack.params.minify) === 'false') return stack;
  return packageStack({ stage: stack.stage, params: { ...stack.overrides, minify: 'false' } });
}

/** A module of the AWS SDK that defines a command class or a paginator. */
const AWS_CALL_MODULE = /@aws-sdk\/[^/]+\/dist-[\w-]+\/(?:commands|pagination)\//;

/** JSON with every object's keys sorted: two templates compare equal whatever their key order. */
function canonical(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  return `{${Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`)
    .join(',')}}`;
}

/**
 * The template with what changes with the code alone blanked out: the code's hash (in each
 * Lambda Version's logical id and CodeSha256) and the upload folder (timestamped) of the zips.
 */
function withoutCodeIdentity(template: Json): string {
  const text = JSON.stringify(template)
    .replace(/LambdaVersion[A-Za-z0-9]+/g, 'LambdaVersion#')
    .replace(/"CodeSha256":"[^"]*"/g, '"CodeSha256":"#"')
    .replace(/\/\d{13}-[^/"]+\//g, '/#/');
  return canonical(JSON.parse(text));
}

function esbuildOptionsOf(stack: Packaged): Record<string, Json> {
  return JSON.parse(readFileSync(join(stack.dir, 'serverless-state.json'), 'utf8')).service.custom.esbuild;
}

/**
 * How a packaging and its readable twin differ, other than in custom.esbuild.minify, as
 * `<where>: <what>` lines; empty when minify is the only difference. Compared: the esbuild options,
 * the template (code hashes aside), and each bundle's modules. Minifying may fold a module away
 * entirely (one exporting constants only, inlined where used), so the readable bundle may hold
 * modules the minified one lacks, but never one defining an AWS command or paginator: what the
 * readable bundle is read for.
 */
export function differencesFromReadableTwin(stack: Packaged, twin: Packaged): string[] {
  const found: string[] = [];
  const options = esbuildOptionsOf(stack);
  const twinOptions = esbuildOptionsOf(twin);
  if (options.minify !== true || twinOptions.minify !== false)
    found.push(`custom.esbuild.minify: ${options.minify} and ${twinOptions.minify}, not true and false`);
  const rest = (o: Record<string, Json>) => JSON.stringify({ ...o, minify: undefined });
  if (rest(options) !== rest(twinOptions)) found.push(`custom.esbuild: ${rest(options)} and ${rest(twinOptions)}`);
  if (withoutCodeIdentity(stack.template) !== withoutCodeIdentity(twin.template)) found.push('the CloudFormation templates differ');
  const keys = Object.keys(stack.artifacts).sort();
  if (JSON.stringify(keys) !== JSON.stringify(Object.keys(twin.artifacts).sort()))
    found.push(`functions: ${keys} and ${Object.keys(twin.artifacts).sort()}`);
  for (const key of keys) {
    const minified = bundledModules(stack, key);
    const readable = new Set(bundledModules(twin, key));
    for (const module of minified) if (!readable.has(module)) found.push(`${key}: ${module} only in the minified bundle`);
    for (const module of readable) {
      if (!minified.includes(module) && AWS_CALL_MODULE.test(module)) found.push(`${key}: ${module} only in the readable bundle`);
    }
  }
  return found;
}
