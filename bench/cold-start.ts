// Cold start, the part a bundle controls: each function's zipped size (what Lambda downloads) and
// its module initialisation time — `await import(bundle)` timed inside a fresh Node process, so
// process start-up is not in it — next to two floors, median of `runs` runs:
// - an empty handler's;
// - the function's SDK floor: a bundle holding only the AWS SDK clients the function's own bundle
//   holds (read from its esbuild metafile, which the packaging writes beside the zips), built in
//   the same run with the same esbuild options as the packaged bundles. An empty handler is no
//   fair floor: the SDK clients a function needs cost most of its cold start, minified or not.
// Each round imports every bundle once (and each floor), so drift on a shared machine hits all alike.

import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { locateHandler, unpackFunctionZip } from '../local/function-code.js';
import { REPOSITORY_ROOT } from '../local/package-stack.js';
import { isRecord, readTemplate } from '../local/template.js';
import { round } from './load.js';

export interface ColdStartRow {
  function: string;
  zipBytes: number;
  initMs: number;
  /** initMs / the empty handler's initMs. */
  vsEmpty: number;
  /** The AWS SDK clients the function's bundle holds (`@aws-sdk/client-sns`'s SNSClient, ...). */
  sdkClients: string[];
  /** Init of a bundle holding only those clients, built with the packaged bundles' esbuild options. */
  sdkFloorMs: number;
  /** initMs / sdkFloorMs. Issue 12's goal: at most 1.5. */
  vsSdkFloor: number;
}

export interface ColdStartResult {
  runs: number;
  emptyHandlerInitMs: number;
  functions: ColdStartRow[];
}

/** What the bench asks of a function's bundle; the floor is at most this many times its SDK floor. */
export const SDK_FLOOR_GOAL = 1.5;

const PROBE = `
const started = performance.now();
await import(process.argv[1]);
process.stdout.write(String(performance.now() - started));
`;

function timeImport(fileUrl: string, env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', PROBE, fileUrl], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(Number(out)) : reject(new Error(`import of ${fileUrl} failed (${code}): ${err.slice(0, 500)}`)),
    );
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** serverless-esbuild's own options, which it takes out before it calls esbuild (its dist/bundle.js). */
const PLUGIN_ONLY_OPTIONS = [
  'concurrency',
  'zipConcurrency',
  'exclude',
  'nativeZip',
  'packager',
  'packagePath',
  'watch',
  'keepOutputDirectory',
  'packagerOptions',
  'installExtraArgs',
  'outputFileExtension',
  'outputBuildFolder',
  'outputWorkFolder',
  'nodeExternals',
  'skipBuild',
  'skipRebuild',
  'skipBuildExcludeFns',
  'stripEntryResolveExtensions',
  'disposeContext',
  'plugins',
  'config',
];

/** The esbuild options the packaging used (custom.esbuild as resolved in serverless-state.json), as esbuild takes them. */
async function packagedEsbuildOptions(packageDir: string): Promise<BuildOptions> {
  const state = JSON.parse(await readFile(path.join(packageDir, 'serverless-state.json'), 'utf8')) as {
    service?: { custom?: { esbuild?: Record<string, unknown> } };
  };
  const configured = state.service?.custom?.esbuild;
  if (!isRecord(configured)) throw new Error(`${packageDir}/serverless-state.json has no custom.esbuild`);
  const options: Record<string, unknown> = { ...configured };
  for (const key of PLUGIN_ONLY_OPTIONS) delete options[key];
  const list = (value: unknown) => (Array.isArray(value) ? value.map(String) : typeof value === 'string' ? [value] : []);
  // serverless-esbuild marks `exclude` external too (unless it is '*').
  const exclude = list(configured.exclude).filter((name) => name !== '*');
  return { ...(options as BuildOptions), external: [...list(configured.external), ...exclude] };
}

export interface SdkClient {
  /** The package the client comes from, one of the app's dependencies. */
  module: string;
  /** Its exported class. */
  exportName: string;
}

/**
 * The AWS SDK clients a bundle holds: the client class modules of the app's own SDK dependencies
 * (package.json) among the bundle's inputs (clients the SDK's credential providers use inside
 * themselves are not the function's).
 */
export function sdkClientsOf(metafile: Metafile, dependencies: string[]): SdkClient[] {
  const entry = Object.values(metafile.outputs).find((output) => output.entryPoint);
  if (!entry) throw new Error('The metafile has no entry point output');
  const found = new Map<string, SdkClient>();
  for (const [input, { bytesInOutput }] of Object.entries(entry.inputs)) {
    // Imported, then shaken out entirely: not in the bundle.
    if (bytesInOutput === 0) continue;
    const match = /node_modules\/(@aws-sdk\/(?:client-[\w-]+|lib-[\w-]+))\/dist-es\/(\w+Client)\.js$/.exec(input);
    if (!match || !dependencies.includes(match[1]!)) continue;
    found.set(`${match[1]} ${match[2]}`, { module: match[1]!, exportName: match[2]! });
  }
  return [...found.values()].sort((a, b) => a.module.localeCompare(b.module));
}

/**
 * A bundle exporting only the given clients, built with the packaged bundles' options, written as
 * the zips hold them: the map beside it only when the bundles link theirs.
 */
async function buildSdkFloor(clients: SdkClient[], options: BuildOptions, file: string): Promise<void> {
  const contents = clients.map((client) => `export { ${client.exportName} } from '${client.module}';`).join('\n') || 'export {};';
  const result = await build({
    ...options,
    stdin: { contents, resolveDir: REPOSITORY_ROOT, sourcefile: 'sdk-floor.ts', loader: 'ts' },
    absWorkingDir: REPOSITORY_ROOT,
    outfile: file,
    write: false,
    logLevel: 'silent',
  });
  const mapInZip = options.sourcemap === true || options.sourcemap === 'linked' || options.sourcemap === 'both';
  await mkdir(path.dirname(file), { recursive: true });
  for (const output of result.outputFiles) {
    if (output.path.endsWith('.map') && !mapInZip) continue;
    await writeFile(output.path, output.contents);
  }
}

export async function measureColdStarts(options: {
  templatePath: string;
  runs: number;
  onProgress?: (done: number, total: number) => void;
}): Promise<ColdStartResult> {
  const packageDir = path.dirname(options.templatePath);
  const template = await readTemplate(options.templatePath);
  const esbuildOptions = await packagedEsbuildOptions(packageDir);
  const packageJson = JSON.parse(await readFile(path.join(REPOSITORY_ROOT, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  const dependencies = Object.keys(packageJson.dependencies ?? {});
  const benchDir = path.join(tmpdir(), 'order-pipeline-bench');
  const zips = (await readdir(packageDir)).filter((file) => file.endsWith('.zip')).sort();
  const targets: Array<{ name: string; zipBytes: number; url: string; env: Record<string, string>; clients: SdkClient[]; floor: string }> =
    [];
  const floors = new Map<string, { url: string; env: Record<string, string> }>();
  for (const zip of zips) {
    const name = zip.replace(/\.zip$/, '');
    const resource = Object.values(template.Resources).find(
      (r) =>
        r.Type === 'AWS::Lambda::Function' &&
        isRecord(r.Properties?.Code) &&
        String((r.Properties.Code as Record<string, unknown>).S3Key ?? '').endsWith(`/${zip}`),
    );
    const handler = String(resource?.Properties?.Handler ?? `functions/${name}.handler`);
    const variables = isRecord(resource?.Properties?.Environment) ? resource.Properties.Environment.Variables : undefined;
    // What the function's environment holds on AWS; references become placeholders (nothing is called at import).
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      AWS_REGION: 'us-east-1',
      AWS_LAMBDA_FUNCTION_NAME: name,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    for (const [key, value] of Object.entries(isRecord(variables) ? variables : {}))
      env[key] = typeof value === 'string' || typeof value === 'number' ? String(value) : `bench-${key.toLowerCase()}`;
    const taskRoot = await unpackFunctionZip(path.join(packageDir, zip));
    const { file } = locateHandler(taskRoot, handler);
    const modulePath = handler.slice(0, handler.lastIndexOf('.'));
    const metafilePath = path.join(packageDir, 'esbuild', `${modulePath}.meta.json`);
    const metafile = JSON.parse(
      await readFile(metafilePath, 'utf8').catch(() => {
        throw new Error(`No ${metafilePath}: the packaging writes it (packaging/esbuild-plugins.cjs)`);
      }),
    ) as Metafile;
    const clients = sdkClientsOf(metafile, dependencies);
    const floor = clients.map((client) => client.exportName).join('+') || 'none';
    if (!floors.has(floor)) {
      const floorFile = path.join(benchDir, 'sdk-floors', `${floor}.mjs`);
      await buildSdkFloor(clients, esbuildOptions, floorFile);
      floors.set(floor, { url: pathToFileURL(floorFile).href, env });
    }
    targets.push({ name, zipBytes: (await stat(path.join(packageDir, zip))).size, url: pathToFileURL(file).href, env, clients, floor });
  }
  await mkdir(benchDir, { recursive: true });
  const emptyFile = path.join(benchDir, 'empty-handler.mjs');
  await writeFile(emptyFile, 'export const handler = async () => ({});\n');
  const emptyEnv = { ...(targets[0]?.env ?? { PATH: process.env.PATH ?? '' }) };

  const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const floorTimes = new Map<string, number[]>([...floors.keys()].map((floor) => [floor, []]));
  const emptyTimes: number[] = [];
  const total = options.runs * (targets.length + floors.size + 1);
  let done = 0;
  for (let run = 0; run < options.runs; run++) {
    emptyTimes.push(await timeImport(pathToFileURL(emptyFile).href, emptyEnv));
    options.onProgress?.(++done, total);
    for (const [floor, { url, env }] of floors) {
      floorTimes.get(floor)!.push(await timeImport(url, env));
      options.onProgress?.(++done, total);
    }
    for (const target of targets) {
      times.get(target.name)!.push(await timeImport(target.url, target.env));
      options.onProgress?.(++done, total);
    }
  }
  const emptyHandlerInitMs = round(median(emptyTimes), 2);
  return {
    runs: options.runs,
    emptyHandlerInitMs,
    functions: targets.map((t) => {
      const initMs = round(median(times.get(t.name)!), 1);
      const sdkFloorMs = round(median(floorTimes.get(t.floor)!), 1);
      return {
        function: t.name,
        zipBytes: t.zipBytes,
        initMs,
        vsEmpty: round(initMs / Math.max(0.01, emptyHandlerInitMs), 1),
        sdkClients: t.clients.map((client) => client.exportName),
        sdkFloorMs,
        vsSdkFloor: round(initMs / Math.max(0.01, sdkFloorMs), 2),
      };
    }),
  };
}
