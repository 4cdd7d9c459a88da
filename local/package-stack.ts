// Runs `serverless package` for a stage into a directory and returns the CloudFormation template it
// wrote. Packaging is what a deploy does first, so the local runtime runs what would be deployed:
// the same template and the same function bundles.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PackageStackOptions {
  /** Serverless stage; `local` by default. */
  stage?: string;
  /**
   * Where the template and zips go; `.cache/package/<stage>` in the service directory by default.
   * Not under `.serverless`: osls empties that directory whenever anyone packages.
   */
  outputDir?: string;
  /** The directory holding serverless.yml; this repository by default. */
  serviceDir?: string;
  /** Package even if the inputs did not change since the last packaging into outputDir. */
  force?: boolean;
  /** `--param="key=value"` for each entry: overrides the stage's params (e.g. batchSize). */
  params?: Record<string, string>;
}

export interface PackagedStack {
  templatePath: string;
  outputDir: string;
  stage: string;
  /** `service` of serverless.yml, read back from the packaged state. */
  serviceName: string;
  /** True when an earlier packaging of the same inputs was reused. */
  reused: boolean;
}

export const REPOSITORY_ROOT = fileURLToPath(new URL('..', import.meta.url));
const TEMPLATE_FILE = 'cloudformation-template-update-stack.json';

/** Where packageStack writes a stage's template unless told otherwise. */
export function defaultTemplatePath(stage: string, serviceDir: string = REPOSITORY_ROOT): string {
  return path.join(path.resolve(serviceDir), '.cache', 'package', stage, TEMPLATE_FILE);
}
const FINGERPRINT_FILE = '.inputs.sha256';
/** What `serverless package` reads: when none of it changed, neither does its output. */
const INPUTS = ['serverless.yml', 'package.json', 'package-lock.json', 'tsconfig.json', 'resources', 'functions', 'lib', 'packaging'];

/**
 * packageStack's options for the standard or the FIFO variant (queueType=fifo) of a stage: the FIFO
 * one packaged into a directory of its own (.cache/package/<stage>-fifo), so that switching between
 * them reuses each packaging.
 */
export function variantPackaging(stage: string, queueType: 'standard' | 'fifo', serviceDir: string = REPOSITORY_ROOT): PackageStackOptions {
  if (queueType === 'standard') return { stage };
  return { stage, params: { queueType }, outputDir: path.join(path.resolve(serviceDir), '.cache', 'package', `${stage}-fifo`) };
}

export async function packageStack(options: PackageStackOptions = {}): Promise<PackagedStack> {
  const stage = options.stage ?? 'local';
  const serviceDir = path.resolve(options.serviceDir ?? REPOSITORY_ROOT);
  const outputDir = path.resolve(options.outputDir ?? path.join(serviceDir, '.cache', 'package', stage));
  const templatePath = path.join(outputDir, TEMPLATE_FILE);
  const params = Object.entries(options.params ?? {}).map(([key, value]) => `${key}=${value}`);
  const fingerprint = await fingerprintInputs(serviceDir, [stage, ...params].join('\n'));

  const release = await acquireLock(path.join(serviceDir, '.cache', 'serverless-package.lock'));
  try {
    const previous = await readFile(path.join(outputDir, FINGERPRINT_FILE), 'utf8').catch(() => undefined);
    if (!options.force && previous === fingerprint && existsSync(templatePath)) {
      return { templatePath, outputDir, stage, serviceName: (await readPackagedStack(outputDir)).serviceName, reused: true };
    }
    // Package next to the target and swap it in, so a reader never sees a half-written directory.
    // osls builds in <service>/.serverless and then copies that directory's contents to --package,
    // so the work directory must not be inside it.
    const workDir = `${outputDir}.packaging-${process.pid}`;
    if (isInside(workDir, path.join(serviceDir, '.serverless'))) throw new Error(`${outputDir} must not be inside .serverless`);
    await rm(workDir, { recursive: true, force: true });
    await runServerlessPackage(serviceDir, stage, workDir, params);
    await writeFile(path.join(workDir, FINGERPRINT_FILE), fingerprint);
    await rm(outputDir, { recursive: true, force: true });
    await mkdir(path.dirname(outputDir), { recursive: true });
    await rename(workDir, outputDir);
    return { templatePath, outputDir, stage, serviceName: (await readPackagedStack(outputDir)).serviceName, reused: false };
  } finally {
    await release();
  }
}

/**
 * How `serverless package` is run, for the local runtime (async, below) and the infra tests
 * (test/infra/template.ts, synchronous): osls's own CLI under this Node, with its home directory
 * (config schema cache, telemetry id) kept inside the service's ignored .cache, telemetry off.
 */
export function serverlessPackageCommand(
  serviceDir: string,
  stage: string,
  packageDir: string,
  params: string[] = [],
): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  const require = createRequire(import.meta.url);
  const cli = path.join(path.dirname(require.resolve('osls/package.json')), 'bin', 'serverless.js');
  const home = path.join(serviceDir, '.cache', 'serverless-home');
  mkdirSync(home, { recursive: true });
  const env = {
    ...process.env,
    HOME: home,
    USERPROFILE: home,
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_CONFIG_HOME: path.join(home, '.config'),
    SLS_SCHEMA_CACHE_BASE_DIR: home,
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  return {
    file: process.execPath,
    args: [cli, 'package', '--stage', stage, '--package', packageDir, ...params.map((param) => `--param=${param}`)],
    env,
  };
}

async function runServerlessPackage(serviceDir: string, stage: string, packageDir: string, params: string[] = []): Promise<void> {
  const command = serverlessPackageCommand(serviceDir, stage, packageDir, params);
  const output: Buffer[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(command.file, command.args, {
      cwd: serviceDir,
      env: command.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    // npm start stopped while packaging exits at once (local/start.ts): the packaging goes with it.
    const stopPackaging = () => child.kill();
    process.once('exit', stopPackaging);
    child.once('error', reject);
    child.once('close', (exitCode) => {
      process.off('exit', stopPackaging);
      resolve(exitCode);
    });
  });
  if (code !== 0) {
    await rm(packageDir, { recursive: true, force: true });
    throw new Error(`serverless package --stage ${stage} failed (exit ${code}):\n${Buffer.concat(output).toString()}`);
  }
}

/** Service name and stage of a packaged stack, from the state file `serverless package` writes. */
export async function readPackagedStack(outputDir: string): Promise<{ serviceName: string; stage: string }> {
  const state = JSON.parse(await readFile(path.join(outputDir, 'serverless-state.json'), 'utf8')) as {
    service?: { service?: string | { name?: string }; provider?: { stage?: string } };
  };
  const service = state.service?.service;
  const serviceName = typeof service === 'string' ? service : service?.name;
  const stage = state.service?.provider?.stage;
  if (!serviceName || !stage) throw new Error(`No service name or stage in ${outputDir}/serverless-state.json`);
  return { serviceName, stage };
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

async function fingerprintInputs(serviceDir: string, stage: string): Promise<string> {
  const hash = createHash('sha256').update(`stage=${stage}\n`);
  const files: string[] = [];
  for (const input of INPUTS) files.push(...(await listFiles(path.join(serviceDir, input))));
  for (const file of files.sort()) {
    hash.update(`${path.relative(serviceDir, file)}\n`).update(await readFile(file));
  }
  return hash.digest('hex');
}

async function listFiles(entry: string): Promise<string[]> {
  const info = await stat(entry).catch(() => undefined);
  if (!info) return [];
  if (info.isFile()) return [entry];
  const found: string[] = [];
  for (const child of await readdir(entry)) found.push(...(await listFiles(path.join(entry, child))));
  return found;
}

/**
 * serverless-esbuild builds in the service's `.esbuild` directory, so two packagings running at once
 * (a test run and `npm start`) would overwrite each other's bundles. A directory lock serialises them.
 */
async function acquireLock(lockDir: string): Promise<() => Promise<void>> {
  await mkdir(path.dirname(lockDir), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(path.join(lockDir, 'pid'), String(process.pid));
      // Exiting while holding it (npm start stopped while packaging) releases it too.
      const releaseOnExit = () => rmSync(lockDir, { recursive: true, force: true });
      process.once('exit', releaseOnExit);
      return async () => {
        process.off('exit', releaseOnExit);
        await rm(lockDir, { recursive: true, force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (await isStale(lockDir)) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${lockDir}; delete it if no packaging is running`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function isStale(lockDir: string): Promise<boolean> {
  const pid = Number(await readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => ''));
  if (!pid) {
    // Just created by another process that has not written its pid yet, or left by a crash.
    const info = await stat(lockDir).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > 10_000;
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}
