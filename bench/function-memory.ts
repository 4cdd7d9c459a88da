// `npx tsx bench/function-memory.ts [orders] [concurrency]`: each function's memory, to choose its
// Lambda memory size by measurement (docs/decisions.md, "Lambda memory per function").
// 1. A fresh node process imports the function's bundle, as Lambda's init does: its resident memory
//    (VmHWM) and V8 heap then. That is what the function holds before its first event.
// 2. The local pipeline runs `orders` orders at `concurrency` (the bench's load), plus GETs of the
//    two read routes and the sweep every second; each environment's V8 heap is read every 500 ms.
// Peak estimate = (1) + the most any of its environments' heaps grew over (1)'s heap under load.
// Linux only (VmHWM from /proc).

import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { locateHandler, unpackFunctionZip } from '../local/function-code.js';
import { packageStack } from '../local/package-stack.js';
import { startLocalPipeline } from '../local/runtime.js';
import { isRecord, readTemplate } from '../local/template.js';
import { closedLoop, seedStock, waitUntilDrained, watchDecisions } from './load.js';

const PROBE = `
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
await import(process.argv[1]);
const status = readFileSync('/proc/self/status', 'utf8');
process.stdout.write(JSON.stringify({ hwmKb: Number(/VmHWM:\\s+(\\d+)/.exec(status)[1]), heapBytes: getHeapStatistics().total_heap_size }));
`;

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

function importMemory(fileUrl: string, env: Record<string, string>): Promise<{ hwmKb: number; heapBytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', PROBE, fileUrl], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('close', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`import of ${fileUrl} failed: ${err.slice(0, 300)}`)),
    );
  });
}

const orders = Number(process.argv[2] ?? 1000);
const concurrency = Number(process.argv[3] ?? 32);
const stack = await packageStack({ stage: 'local' });
const template = await readTemplate(stack.templatePath);
const atImport: Record<string, { rssMb: number; heapMb: number; memorySize: number }> = {};
for (const resource of Object.values(template.Resources)) {
  if (resource.Type !== 'AWS::Lambda::Function') continue;
  const properties = resource.Properties ?? {};
  const name = String(properties.FunctionName).replace(/^order-pipeline-[a-z0-9]+-/, '');
  const zip = path.basename(String((properties.Code as Record<string, unknown>).S3Key));
  const variables = isRecord(properties.Environment) ? properties.Environment.Variables : undefined;
  // As bench/cold-start.ts: the function's variables, references as placeholders (nothing is called at import).
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    AWS_REGION: 'us-east-1',
    AWS_LAMBDA_FUNCTION_NAME: name,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  for (const [key, value] of Object.entries(isRecord(variables) ? variables : {}))
    env[key] = typeof value === 'string' || typeof value === 'number' ? String(value) : `bench-${key.toLowerCase()}`;
  delete env.NODE_OPTIONS;
  const { file } = locateHandler(await unpackFunctionZip(path.join(stack.outputDir, zip)), String(properties.Handler));
  const runs = await Promise.all([1, 2, 3].map(() => importMemory(pathToFileURL(file).href, env)));
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[1]!;
  atImport[name] = {
    rssMb: Math.round(median(runs.map((r) => r.hwmKb)) / 1024),
    heapMb: mb(median(runs.map((r) => r.heapBytes))),
    memorySize: Number(properties.MemorySize ?? 128),
  };
}

const pipeline = await startLocalPipeline({
  apiPort: 0,
  sqsPort: 0,
  dynamodbPort: 0,
  quiet: true,
  templatePath: stack.templatePath,
  scheduleScale: 60,
});
const peakHeap: Record<string, number> = {};
const sample = async () => {
  const memory = await pipeline.memory();
  for (const [name, fn] of Object.entries(memory.functions))
    for (const heap of fn.heaps) peakHeap[name] = Math.max(peakHeap[name] ?? 0, heap.totalBytes);
};
const sampler = setInterval(() => void sample(), 500);
try {
  const watcher = await watchDecisions(pipeline);
  const skus = await seedStock(pipeline, concurrency, orders, 'SKU-MEMORY');
  const load = await closedLoop(pipeline, watcher, { orders, concurrency, skus });
  await waitUntilDrained(pipeline);
  await watcher.stop();
  // The read routes, concurrently: the bench's load does not call them.
  const token = await pipeline.tokenFor('cus_bench', { expiresInSeconds: 3600 });
  const base = pipeline.apiUrl.replace(/\/$/, '');
  for (let round = 0; round < 20; round++) {
    await Promise.all(
      skus
        .slice(0, 10)
        .flatMap((sku) => [
          fetch(`${base}/inventory/${sku}`).then((r) => r.arrayBuffer()),
          fetch(`${base}/orders/ord_00000000000000000000000000`, { headers: { authorization: `Bearer ${token}` } }).then((r) =>
            r.arrayBuffer(),
          ),
        ]),
    );
  }
  await sample();
  clearInterval(sampler);
  console.log(
    `Load: ${load.orders} orders at concurrency ${concurrency}, ${load.confirmed} confirmed, ${load.ordersPerSecond} orders/s; node ${process.version} ${process.arch}`,
  );
  console.log('function      import RSS MB  heap at import MB  peak env heap MB  estimated peak MB  template MB');
  for (const [name, at] of Object.entries(atImport)) {
    const peak = peakHeap[name] === undefined ? undefined : mb(peakHeap[name]!);
    const estimate = peak === undefined ? undefined : Math.round(at.rssMb + Math.max(0, peak - at.heapMb));
    console.log(
      `${name.padEnd(12)}  ${String(at.rssMb).padStart(13)}  ${String(at.heapMb).padStart(17)}  ${String(peak ?? '-').padStart(16)}  ${String(estimate ?? '-').padStart(17)}  ${String(at.memorySize).padStart(11)}`,
    );
  }
} finally {
  clearInterval(sampler);
  await pipeline.stop();
}
