// Cold start, the part a bundle controls: each function's zipped size (what Lambda downloads) and
// its module initialisation time — `await import(bundle)` timed inside a fresh Node process, so
// process start-up is not in it — next to an empty handler's, median of `runs` runs. Each round
// imports every bundle once (and the empty handler), so drift on a shared machine hits all alike.

import { spawn } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { locateHandler, unpackFunctionZip } from '../local/function-code.js';
import { isRecord, readTemplate } from '../local/template.js';
import { round } from './load.js';

export interface ColdStartRow {
  function: string;
  zipBytes: number;
  initMs: number;
  /** initMs / the empty handler's initMs. */
  vsEmpty: number;
}

export interface ColdStartResult {
  runs: number;
  emptyHandlerInitMs: number;
  functions: ColdStartRow[];
}

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
    child.once('close', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`import of ${fileUrl} failed (${code}): ${err.slice(0, 500)}`))));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export async function measureColdStarts(options: { templatePath: string; runs: number; onProgress?: (done: number, total: number) => void }): Promise<ColdStartResult> {
  const packageDir = path.dirname(options.templatePath);
  const template = await readTemplate(options.templatePath);
  const zips = (await readdir(packageDir)).filter((file) => file.endsWith('.zip')).sort();
  const targets: Array<{ name: string; zipBytes: number; url: string; env: Record<string, string> }> = [];
  for (const zip of zips) {
    const name = zip.replace(/\.zip$/, '');
    const resource = Object.values(template.Resources).find(
      (r) => r.Type === 'AWS::Lambda::Function' && isRecord(r.Properties?.Code) && String((r.Properties.Code as Record<string, unknown>).S3Key ?? '').endsWith(`/${zip}`),
    );
    const handler = String(resource?.Properties?.Handler ?? `functions/${name}.handler`);
    const variables = isRecord(resource?.Properties?.Environment) ? resource.Properties.Environment.Variables : undefined;
    // What the function's environment holds on AWS; references become placeholders (nothing is called at import).
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', AWS_REGION: 'us-east-1', AWS_LAMBDA_FUNCTION_NAME: name, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    for (const [key, value] of Object.entries(isRecord(variables) ? variables : {})) env[key] = typeof value === 'string' || typeof value === 'number' ? String(value) : `bench-${key.toLowerCase()}`;
    const taskRoot = await unpackFunctionZip(path.join(packageDir, zip));
    const { file } = locateHandler(taskRoot, handler);
    targets.push({ name, zipBytes: (await stat(path.join(packageDir, zip))).size, url: pathToFileURL(file).href, env });
  }
  const emptyDir = path.join(tmpdir(), 'order-pipeline-bench');
  await mkdir(emptyDir, { recursive: true });
  const emptyFile = path.join(emptyDir, 'empty-handler.mjs');
  await writeFile(emptyFile, 'export const handler = async () => ({});\n');
  const emptyEnv = { ...(targets[0]?.env ?? { PATH: process.env.PATH ?? '' }) };

  const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const emptyTimes: number[] = [];
  const total = options.runs * (targets.length + 1);
  let done = 0;
  for (let run = 0; run < options.runs; run++) {
    emptyTimes.push(await timeImport(pathToFileURL(emptyFile).href, emptyEnv));
    options.onProgress?.(++done, total);
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
      return { function: t.name, zipBytes: t.zipBytes, initMs, vsEmpty: round(initMs / Math.max(0.01, emptyHandlerInitMs), 1) };
    }),
  };
}
