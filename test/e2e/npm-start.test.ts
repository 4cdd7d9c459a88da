import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { canListenOn, freePort } from '../support/ports.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT } from '../../local/package-stack.js';
import type { LocalRuntimeState } from '../../local/runtime-state.js';

// `npm start` as a user runs it, as a child process (`npx tsx local/start.ts`, on free ports; the
// stack packaged by test/global-setup.ts is reused): where it says it listens, the tools finding
// it there, a second one refused in one line, and every way it is stopped freeing every port.

const dir = mkdtempSync(path.join(tmpdir(), 'npm-start-'));
let runs = 0;
const started: Array<{ child: ChildProcess }> = [];

afterEach(() => {
  // Whatever a failed test left running: each run is a process group of its own.
  for (const { child } of started.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The runtimes the state file lists, as written: every one that runs, oldest first. */
function readStates(file: string): LocalRuntimeState[] {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { runtimes: LocalRuntimeState[] }).runtimes : [];
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The environment of a run: its own ports and state file, none of the caller's port variables. */
async function runEnvironment(): Promise<
  NodeJS.ProcessEnv & { PORT: string; SQS_PORT: string; DYNAMODB_PORT: string; LOCAL_RUNTIME_STATE_FILE: string }
> {
  const { PORT: _, SQS_PORT: __, DYNAMODB_PORT: ___, SQS_ENDPOINT: ____, ...inherited } = process.env;
  return {
    ...inherited,
    PORT: String(await freePort()),
    SQS_PORT: String(await freePort()),
    DYNAMODB_PORT: String(await freePort()),
    LOCAL_RUNTIME_STATE_FILE: path.join(dir, `local-runtime-${++runs}.json`),
  };
}

/** `npx tsx local/start.ts` (or the command given), spawned; resolves once it says it is ready. */
async function npmStart(
  env: Awaited<ReturnType<typeof runEnvironment>>,
  command: [string, ...string[]] = ['npx', 'tsx', 'local/start.ts'],
) {
  const child = spawn(command[0], command.slice(1), { cwd: REPOSITORY_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  started.push({ child });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await until('npm start to be ready', () => output.includes('Order Pipeline is ready') || child.exitCode !== null, 90_000);
  if (!output.includes('Order Pipeline is ready')) throw new Error(`npm start did not start:\n${output}`);
  const state = readStates(env.LOCAL_RUNTIME_STATE_FILE).find((entry) => entry.apiUrl === `http://127.0.0.1:${env.PORT}`)!;
  const ports = [env.PORT, env.SQS_PORT, env.DYNAMODB_PORT].map(Number);
  return { child, exited, state, ports, output: () => output };
}

/** Every port free again, the runtime process gone and its state file removed. */
async function expectFullyStopped(run: Awaited<ReturnType<typeof npmStart>>, stateFile: string): Promise<void> {
  await until('the runtime process to exit', () => !alive(run.state.pid), 15_000);
  for (const port of run.ports) expect(await canListenOn(port), `port ${port} free`).toBe(true);
  expect(existsSync(stateFile)).toBe(false);
}

const tool = (script: string, args: string[], env: NodeJS.ProcessEnv) =>
  promisify(execFile)(process.execPath, [path.join(REPOSITORY_ROOT, 'node_modules/tsx/dist/cli.mjs'), script, ...args], {
    cwd: REPOSITORY_ROOT,
    env,
    timeout: 30_000,
  });

describe('npm start', () => {
  it('records where it listens, and npm run status and redrive find it there with no port given', async () => {
    const env = await runEnvironment();
    const run = await npmStart(env);

    expect(run.state).toMatchObject({
      pid: expect.any(Number),
      apiUrl: `http://127.0.0.1:${env.PORT}`,
      endpoints: {
        sqs: `http://127.0.0.1:${env.SQS_PORT}`,
        sns: `http://127.0.0.1:${env.SQS_PORT}`,
        dynamodb: `http://127.0.0.1:${env.DYNAMODB_PORT}`,
      },
      stage: 'local',
    });
    expect(alive(run.state.pid)).toBe(true);
    expect(Date.now() - Date.parse(run.state.startedAt)).toBeLessThan(120_000);

    // The tools get the state file, not the ports.
    const { PORT: _, SQS_PORT: __, DYNAMODB_PORT: ___, ...toolEnv } = env;
    const status = await tool('scripts/status.ts', [], toolEnv);
    expect(status.stdout).toContain(`local runtime at http://127.0.0.1:${env.PORT}`);
    expect(status.stdout).toMatch(/order-pipeline-local-payment\s+0\s+0\s+0/);
    const redrive = await tool('scripts/redrive.ts', ['payment', '--dry-run'], toolEnv);
    expect(redrive.stdout).toContain(`local runtime at http://127.0.0.1:${env.SQS_PORT}, stage local`);
    expect(redrive.stdout).toContain('Would move 0 message(s)');

    // A port variable still wins over the file: nothing listens there, and the tool says where it tried.
    const elsewhere = await freePort();
    const redriveElsewhere = await tool('scripts/redrive.ts', ['payment', '--dry-run'], { ...toolEnv, SQS_PORT: String(elsewhere) }).then(
      () => undefined,
      (error: { stdout: string; stderr: string }) => error,
    );
    expect(redriveElsewhere, 'redrive to a port nothing listens on failed').toBeDefined();
    expect(redriveElsewhere!.stderr).toContain(`127.0.0.1:${elsewhere}`);

    process.kill(run.state.pid, 'SIGTERM');
    expect(await run.exited).toBe(0);
    await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
  }, 180_000);

  it('runs twice at once on other ports, and the tools still find the first once the second stops', async () => {
    const firstEnv = await runEnvironment();
    // The same state file, as two npm starts in one checkout share .cache/local-runtime.json.
    const secondEnv = { ...(await runEnvironment()), LOCAL_RUNTIME_STATE_FILE: firstEnv.LOCAL_RUNTIME_STATE_FILE };
    const stateFile = firstEnv.LOCAL_RUNTIME_STATE_FILE;
    const first = await npmStart(firstEnv);
    const second = await npmStart(secondEnv);
    expect(readStates(stateFile).map((entry) => entry.pid)).toEqual([first.state.pid, second.state.pid]);

    const { PORT: _, SQS_PORT: __, DYNAMODB_PORT: ___, ...toolEnv } = firstEnv;
    // Both running: with no port named, the one started last; PORT names the other, and its SQS comes with it.
    expect((await tool('scripts/status.ts', [], toolEnv)).stdout).toContain(`local runtime at http://127.0.0.1:${secondEnv.PORT}`);
    const redriveFirst = await tool('scripts/redrive.ts', ['payment', '--dry-run'], { ...toolEnv, PORT: firstEnv.PORT });
    expect(redriveFirst.stdout).toContain(`local runtime at http://127.0.0.1:${firstEnv.SQS_PORT}, stage local`);

    process.kill(second.state.pid, 'SIGTERM');
    expect(await second.exited).toBe(0);
    await until('the second runtime to exit', () => !alive(second.state.pid), 15_000);
    // Its entry gone, the first's left: status, redrive and token find the first with no port given.
    expect(readStates(stateFile).map((entry) => entry.pid)).toEqual([first.state.pid]);
    expect((await tool('scripts/status.ts', [], toolEnv)).stdout).toContain(`local runtime at http://127.0.0.1:${firstEnv.PORT}`);
    expect((await tool('scripts/redrive.ts', ['payment', '--dry-run'], toolEnv)).stdout).toContain(
      `local runtime at http://127.0.0.1:${firstEnv.SQS_PORT}, stage local`,
    );
    const token = (await tool('scripts/token.ts', ['--customer', 'cus_1'], toolEnv)).stdout.trim();
    // A token the first runtime's issuer signed: past its authorizer, to a 404 for an order nobody placed.
    const unknownOrder = await fetch(`${first.state.apiUrl}/orders/ord_${'0'.repeat(32)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(unknownOrder.status).toBe(404);

    process.kill(first.state.pid, 'SIGTERM');
    expect(await first.exited).toBe(0);
    await expectFullyStopped(first, stateFile);
  }, 240_000);

  it('prints curls that work as pasted (with a token for cus_1), and npm run token makes one for anyone else', async () => {
    const env = await runEnvironment();
    const run = await npmStart(env);
    const lines = run
      .output()
      .split('\n')
      .map((line) => line.trim());
    const post = lines.find((line) => /^curl .*-X POST .*\/orders'? /.test(line));
    const get = lines.find((line) => line.startsWith('curl ') && line.includes('/orders/<orderId>'))?.replace(/#.*$/, '');
    expect(post, 'the banner has a POST curl').toBeDefined();
    expect(get, 'the banner has a GET curl').toBeDefined();
    expect(post).toContain("-H 'authorization: Bearer ");
    // As a newcomer pastes them into a shell.
    const shell = (command: string) => promisify(execFile)('bash', ['-c', command], { timeout: 30_000 });
    const placed = JSON.parse((await shell(post!)).stdout) as { orderId: string; status: string };
    expect(placed).toMatchObject({ orderId: expect.stringMatching(/^ord_[0-9a-f]{32}$/), status: 'PENDING' });
    const view = await until(
      'the pasted order to be confirmed',
      async () => {
        const order = JSON.parse((await shell(get!.replace('<orderId>', placed.orderId))).stdout) as { status: string; customerId: string };
        return order.status !== 'PENDING' && order;
      },
      30_000,
    );
    expect(view).toMatchObject({ status: 'CONFIRMED', customerId: 'cus_1' });
    // The GET pasted before filling the id in, comment and all: bash does not take <orderId> for an
    // input redirect ("orderId: No such file or directory"), and the API says what is wrong (400).
    const getLine = lines.find((line) => line.startsWith('curl ') && line.includes('/orders/<orderId>'))!;
    expect(getLine).toContain(`'${run.state.apiUrl}/orders/<orderId>'`);
    expect(post).toContain(`'${run.state.apiUrl}/orders'`);
    const unfilled = await shell(getLine).then(
      ({ stdout, stderr }) => ({ stdout, stderr }),
      (error: { stdout: string; stderr: string }) => error,
    );
    expect(unfilled.stderr).toBe('');
    expect(JSON.parse(unfilled.stdout)).toMatchObject({ error: 'ValidationError', message: expect.stringMatching(/^orderId: /) });
    const bearer = /-H 'authorization: Bearer ([^']+)'/.exec(getLine)![1]!;
    const unfilledStatus = await fetch(`${run.state.apiUrl}/orders/<orderId>`, { headers: { authorization: `Bearer ${bearer}` } });
    expect(unfilledStatus.status).toBe(400);

    // Another customer's token, from the tool: a valid token, and still not cus_1's order.
    const { PORT: _, SQS_PORT: __, DYNAMODB_PORT: ___, ...toolEnv } = env;
    const token = (await tool('scripts/token.ts', ['--customer', 'cus_2'], toolEnv)).stdout.trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const asOther = await fetch(`${run.state.apiUrl}/orders/${placed.orderId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(asOther.status).toBe(404);
    const without = await fetch(`${run.state.apiUrl}/orders/${placed.orderId}`);
    expect(without.status).toBe(401);
    // An expired one, as the README shows it: a negative --expires-in, after a space or an `=`.
    for (const expiresIn of [['--expires-in', '-60'], ['--expires-in=-60']]) {
      const expired = (await tool('scripts/token.ts', ['--customer', 'cus_1', ...expiresIn], toolEnv)).stdout.trim();
      const asExpired = await fetch(`${run.state.apiUrl}/orders/${placed.orderId}`, { headers: { authorization: `Bearer ${expired}` } });
      expect(asExpired.status).toBe(401);
    }

    process.kill(run.state.pid, 'SIGTERM');
    await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
  }, 180_000);

  it('refuses, in one line naming the port, its variable and what holds it, to start on a port already taken', async () => {
    const env = await runEnvironment();
    const run = await npmStart(env);

    // A second npm start on the same ports: one line, and a non-zero exit.
    const second = await tool('local/start.ts', [], env).then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(second, 'the second npm start failed').toBeDefined();
    expect(second!.code).not.toBe(0);
    expect(second!.stdout).toBe('');
    const lines = second!.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const holder = `another npm start (pid ${run.state.pid}, running since ${run.state.startedAt})`;
    expect(lines[0]).toContain(`port ${env.PORT} (PORT, HTTP API) is already in use by ${holder}.`);
    // The command it suggests moves PORT and keeps the other port variables that were set.
    expect(lines[0]).toMatch(
      new RegExp(`set PORT to another port: PORT=\\d+ SQS_PORT=${env.SQS_PORT} DYNAMODB_PORT=${env.DYNAMODB_PORT} npm start$`),
    );
    // The same for the next port, when the first is moved.
    const movedPort = String(await freePort());
    const third = await tool('local/start.ts', [], { ...env, PORT: movedPort }).then(
      () => ({ stderr: 'started' }),
      (error: { stderr: string }) => error,
    );
    expect(third.stderr.trim()).toMatch(
      new RegExp(
        `^npm start: port ${env.SQS_PORT} \\(SQS_PORT, SNS and SQS\\) is already in use by another npm start \\(pid ${run.state.pid}, `,
      ),
    );
    const suggested = new RegExp(`: PORT=${movedPort} SQS_PORT=(\\d+) DYNAMODB_PORT=${env.DYNAMODB_PORT} npm start$`).exec(
      third.stderr.trim(),
    );
    expect(suggested, third.stderr).not.toBeNull();
    expect(await canListenOn(Number(suggested![1])), 'the suggested port is free').toBe(true);

    // A port held by something that is not an npm start (a `python3 -m http.server`), while an npm
    // start the state file lists runs on other ports: that npm start is not named.
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const squatted = (squatter.address() as AddressInfo).port;
    const [sqsPort, dynamodbPort] = [String(await freePort()), String(await freePort())];
    const fourth = await tool('local/start.ts', [], { ...env, PORT: String(squatted), SQS_PORT: sqsPort, DYNAMODB_PORT: dynamodbPort })
      .then(
        () => ({ stderr: 'started' }),
        (error: { stderr: string }) => error,
      )
      .finally(() => squatter.close());
    expect(fourth.stderr.trim().split('\n')).toHaveLength(1);
    expect(fourth.stderr).toContain(`port ${squatted} (PORT, HTTP API) is already in use by another process.`);
    expect(fourth.stderr).not.toContain('pid');
    expect(fourth.stderr.trim()).toMatch(
      new RegExp(`set PORT to another port: PORT=\\d+ SQS_PORT=${sqsPort} DYNAMODB_PORT=${dynamodbPort} npm start$`),
    );
    // The refused ones left the first alone, and its state file.
    expect(alive(run.state.pid)).toBe(true);
    expect(readStates(env.LOCAL_RUNTIME_STATE_FILE).map((entry) => entry.pid)).toEqual([run.state.pid]);

    process.kill(run.state.pid, 'SIGINT');
    await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
  }, 120_000);

  it.each(['SIGINT', 'SIGHUP'] as const)(
    'stops fully on %s',
    async (signal) => {
      const env = await runEnvironment();
      const run = await npmStart(env);
      process.kill(run.state.pid, signal);
      expect(await run.exited).toBe(0);
      expect(run.output()).toContain(`${signal}: stopping`);
      await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
    },
    120_000,
  );

  it('stops fully on a signal while it is still starting, and says so', async () => {
    const env = await runEnvironment();
    // local/launch.mjs (what npm start runs) in this process: the signal reaches the runtime itself.
    const child = spawn(process.execPath, ['local/launch.mjs'], {
      cwd: REPOSITORY_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    started.push({ child });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (code, signal) => resolve([code, signal])),
    );
    // The emulators listen first; provisioning, seeding and the Lambda environments come after.
    await until('the emulators to listen', async () => !(await canListenOn(Number(env.SQS_PORT))) || child.exitCode !== null, 60_000);
    expect(child.exitCode, output).toBeNull();
    process.kill(child.pid!, 'SIGTERM');
    const [code, signal] = await exited;
    // Handled, not the default death (signal SIGTERM, no code) that skips the stopping.
    expect(signal, output).toBeNull();
    expect(output).toContain('SIGTERM: stopping');
    // Usually still starting (exit 128 + 15); on a slow machine it may have become ready first.
    expect(code).toBe(output.includes('Order Pipeline is ready') ? 0 : 143);
    for (const port of [env.PORT, env.SQS_PORT, env.DYNAMODB_PORT]) expect(await canListenOn(Number(port)), `port ${port} free`).toBe(true);
    expect(readStates(env.LOCAL_RUNTIME_STATE_FILE).map((entry) => entry.pid)).not.toContain(child.pid);
  }, 120_000);

  it('stops fully when npm, which started it, is killed', async () => {
    const env = await runEnvironment();
    const run = await npmStart(env);
    // npx is `npm exec`: killed outright, it tells nobody.
    run.child.kill('SIGKILL');
    await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
    expect(run.output()).toMatch(/npm \(pid \d+\) exited: stopping/);
  }, 120_000);

  it('runs as `npm start` with plain node, no tsx, and stops fully when that npm is killed', async () => {
    const env = await runEnvironment();
    const run = await npmStart(env, ['npm', 'start']);
    // npm -> sh -c -> node local/launch.mjs, which runs the bundle it built in this very process.
    const command = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    const parent = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    if (process.platform === 'linux') {
      expect(command(run.state.pid)).toMatch(/^node .*local\/launch\.mjs$/);
      const shell = parent(run.state.pid);
      expect(command(shell)).toMatch(/\bsh -c /);
      expect(command(parent(shell))).toMatch(/^npm/);
    }
    expect(existsSync(path.join(REPOSITORY_ROOT, 'local', 'start.bundle.mjs'))).toBe(true);
    expect(run.output()).toContain('Order Pipeline is ready');
    // npm killed outright tells nobody; the runtime notices.
    run.child.kill('SIGKILL');
    await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
    expect(run.output()).toMatch(/npm \(pid \d+\) exited: stopping/);
  }, 120_000);

  it('stops fully when its parent process is killed', async () => {
    const env = await runEnvironment();
    const run = await npmStart(env);
    const { stdout } = await promisify(execFile)('ps', ['-o', 'ppid=', '-p', String(run.state.pid)]);
    // tsx's wrapper process, which starts node with its loader.
    process.kill(Number(stdout.trim()), 'SIGKILL');
    await expectFullyStopped(run, env.LOCAL_RUNTIME_STATE_FILE);
  }, 120_000);
});
