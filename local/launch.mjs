// `npm start`: local/start.ts run by plain node, in this very process. tsx would add a wrapper
// process (~48 MB resident) and a loader thread in this one (~18 MB) for the whole session, and the
// runtime needs neither once it is JavaScript (docs/decisions.md, "Local runtime memory"). So
// esbuild (a dependency already) bundles local/start.ts and what it imports from local/ and lib/
// (packages stay imports of node_modules) into local/start.bundle.mjs, which is ignored by git,
// and this file imports it. Bundling takes a fraction of a second, and is done at every start, so
// the bundle is never older than its sources. The bundle sits in local/ because the code in it
// finds files next to itself (new URL('./seed-data.json', import.meta.url), ./lambda-worker.ts,
// the repository root as '..'). `npx tsx local/start.ts` runs the same program from the sources.
// package.json runs this file with V8's --optimize-for-size, for every isolate of the process (the
// main thread and each execution environment): heaps grown least and compacted more, 1 MB
// semi-spaces; GC timing only (docs/decisions.md, "Local runtime memory").

import { renameSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

// esbuild's synchronous API (local/lambda-environment.ts compiles the worker's entry with
// transformSync when it changed) would otherwise start a worker thread and an esbuild process that
// stay for the whole session (~10 MB); with this it runs a short-lived esbuild per call. It is read
// when esbuild is loaded, and taken out again so that nothing this process starts inherits it.
process.env.ESBUILD_WORKER_THREADS = '0';
const esbuild = await import('esbuild');
delete process.env.ESBUILD_WORKER_THREADS;

const entry = fileURLToPath(new URL('./start.ts', import.meta.url));
const bundle = fileURLToPath(new URL('./start.bundle.mjs', import.meta.url));

let code;
try {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Stack traces name the TypeScript files and lines (source maps are enabled below).
    sourcemap: 'inline',
    sourcesContent: false,
    outfile: bundle,
    write: false,
    logLevel: 'silent',
  });
  code = result.outputFiles[0].contents;
} catch (error) {
  // A syntax or type-stripping error in local/ or lib/: esbuild's own messages say where.
  const messages = error.errors
    ? esbuild.formatMessagesSync(error.errors, { kind: 'error', color: process.stderr.isTTY })
    : [String(error)];
  process.stderr.write(`npm start: local/start.ts does not build:\n${messages.join('')}`);
  process.exit(1);
} finally {
  // esbuild's service process is not needed again.
  await esbuild.stop();
}

// Written only when it changed, and renamed into place: another npm start (on other ports)
// importing the bundle at the same moment never reads half a file.
let current;
try {
  current = readFileSync(bundle);
} catch {
  current = undefined;
}
if (!current || !Buffer.from(code).equals(current)) {
  const temporary = `${bundle}.${process.pid}.tmp`;
  writeFileSync(temporary, code);
  renameSync(temporary, bundle);
}

process.setSourceMapsEnabled(true);
await import(pathToFileURL(bundle).href);
