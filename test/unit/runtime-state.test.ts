import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultTemplatePath, REPOSITORY_ROOT } from '../../local/package-stack.js';
import {
  localTarget,
  pickRuntime,
  readRuntimeState,
  readRuntimeStates,
  removeRuntimeState,
  runtimeOnPort,
  type LocalRuntimeState,
  writeRuntimeState,
} from '../../local/runtime-state.js';

// Which local runtime `npm run status`, `redrive` and `token` talk to: environment variables, then
// the runtimes the state file lists (the one on the port a variable names, else the last started),
// then npm start's defaults.

const dir = mkdtempSync(path.join(tmpdir(), 'runtime-state-'));
let files = 0;
const stateFile = () => path.join(dir, `local-runtime-${++files}.json`);

/** Live processes standing in for runtimes other than this one. */
const sleepers: ChildProcess[] = [];
let otherPid: number;

beforeAll(() => {
  const sleeper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  sleepers.push(sleeper);
  otherPid = sleeper.pid!;
});

afterAll(() => {
  for (const sleeper of sleepers) sleeper.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const running: LocalRuntimeState = {
  pid: process.pid,
  startedAt: '2026-01-01T00:00:00.000Z',
  apiUrl: 'http://127.0.0.1:3100',
  endpoints: { sqs: 'http://127.0.0.1:4800', sns: 'http://127.0.0.1:4800', dynamodb: 'http://127.0.0.1:4801' },
  stage: 'workshop',
};

/** A second runtime, started after `running`, on other ports. */
const later = (pid: number): LocalRuntimeState => ({
  pid,
  startedAt: '2026-01-01T00:05:00.000Z',
  apiUrl: 'http://127.0.0.1:3200',
  endpoints: { sqs: 'http://127.0.0.1:4900', sns: 'http://127.0.0.1:4900', dynamodb: 'http://127.0.0.1:4901' },
  stage: 'local',
});

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

const pidsIn = (file: string) =>
  (JSON.parse(readFileSync(file, 'utf8')) as { runtimes: LocalRuntimeState[] }).runtimes.map((entry) => entry.pid);

describe('the state file', () => {
  it('is read back while its process runs', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    expect(readRuntimeState(file, {})).toEqual(running);
    expect(readRuntimeStates(file)).toEqual([running]);
  });

  it('is ignored once its process is gone, when missing, and when unreadable', () => {
    const file = stateFile();
    writeRuntimeState({ ...running, pid: deadPid() }, file);
    expect(readRuntimeState(file, {})).toBeUndefined();
    expect(readRuntimeState(path.join(dir, 'none.json'), {})).toBeUndefined();
    const garbled = stateFile();
    writeFileSync(garbled, '{"pid": ');
    expect(readRuntimeState(garbled, {})).toBeUndefined();
  });

  it('is removed only by the process that wrote it', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    removeRuntimeState(process.pid + 1, file);
    expect(existsSync(file)).toBe(true);
    removeRuntimeState(process.pid, file);
    expect(existsSync(file)).toBe(false);
  });

  it('lists every runtime running; each removes only its own entry, and the last one the file', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    writeRuntimeState(later(otherPid), file);
    // The one started last first, and the one a tool picks with no port named.
    expect(readRuntimeStates(file)).toEqual([later(otherPid), running]);
    expect(readRuntimeState(file, {})?.pid).toBe(otherPid);

    // The later one stops: the earlier one, still running, is still found.
    removeRuntimeState(otherPid, file);
    expect(readRuntimeStates(file)).toEqual([running]);
    expect(readRuntimeState(file, {})).toEqual(running);
    removeRuntimeState(process.pid, file);
    expect(existsSync(file)).toBe(false);
  });

  it('drops entries whose process is gone: readers skip them, and the next writer leaves them out', () => {
    const file = stateFile();
    const dead = { ...later(deadPid()), startedAt: '2026-01-01T01:00:00.000Z' };
    writeFileSync(file, JSON.stringify({ runtimes: [running, dead] }));
    // The dead one started last, and is not picked.
    expect(readRuntimeState(file, {})).toEqual(running);
    writeRuntimeState(later(otherPid), file);
    expect(pidsIn(file)).toEqual([process.pid, otherPid]);
    // A runtime that writes again (same pid) replaces its entry.
    writeRuntimeState({ ...running, stage: 'again' }, file);
    expect(pidsIn(file)).toEqual([otherPid, process.pid]);
    expect(readRuntimeStates(file).find((entry) => entry.pid === process.pid)?.stage).toBe('again');
  });

  it('still reads a file from before the list (one runtime), and keeps that runtime when another adds itself', () => {
    const file = stateFile();
    writeFileSync(file, JSON.stringify(running));
    expect(readRuntimeState(file, {})).toEqual(running);
    writeRuntimeState(later(otherPid), file);
    expect(pidsIn(file)).toEqual([process.pid, otherPid]);
    removeRuntimeState(otherPid, file);
    expect(readRuntimeStates(file)).toEqual([running]);
    // And one that removes itself from an old file removes the file.
    const old = stateFile();
    writeFileSync(old, JSON.stringify(running));
    removeRuntimeState(process.pid, old);
    expect(existsSync(old)).toBe(false);
  });

  it('keeps every entry when several runtimes add and remove themselves at once', async () => {
    const file = stateFile();
    const script = path.join(dir, 'runtime.mts');
    // Adds itself, says so, waits for its stdin to close, then removes itself.
    writeFileSync(
      script,
      `const { writeRuntimeState, removeRuntimeState } = await import(${JSON.stringify(path.join(REPOSITORY_ROOT, 'local/runtime-state.ts'))});
const port = 5000 + Number(process.argv[2]);
const url = 'http://127.0.0.1:' + port;
writeRuntimeState({ pid: process.pid, startedAt: new Date().toISOString(), apiUrl: url, endpoints: { sqs: url, sns: url, dynamodb: url }, stage: 'local' }, ${JSON.stringify(file)});
process.stdout.write('added\\n');
process.stdin.resume();
process.stdin.on('end', () => { removeRuntimeState(process.pid, ${JSON.stringify(file)}); process.exit(0); });
`,
    );
    const children = Array.from({ length: 6 }, (_, index) =>
      spawn(process.execPath, ['--import', 'tsx', script, String(index)], { cwd: REPOSITORY_ROOT, stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    sleepers.push(...children);
    await Promise.all(children.map((child) => new Promise((resolve) => child.stdout!.once('data', resolve))));
    expect(
      readRuntimeStates(file)
        .map((entry) => entry.pid)
        .sort(),
    ).toEqual(children.map((child) => child.pid).sort());

    await Promise.all(
      children.map((child) => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.stdin!.end();
        return exited;
      }),
    );
    expect(existsSync(file)).toBe(false);
  }, 30_000);
});

describe('runtimeOnPort', () => {
  it('is the listed runtime with any of its ports on that one', () => {
    const states = [later(otherPid), running];
    expect(runtimeOnPort(3100, states)).toBe(running);
    expect(runtimeOnPort(4900, states)?.pid).toBe(otherPid);
    expect(runtimeOnPort(4801, states)).toBe(running);
    expect(runtimeOnPort(3300, states)).toBeUndefined();
  });
});

describe('pickRuntime', () => {
  // Built when the tests run: otherPid is set in beforeAll.
  let states: LocalRuntimeState[];
  beforeAll(() => {
    states = [later(otherPid), running];
  });

  it('is the one started last with no port named', () => {
    expect(pickRuntime(states, {})?.pid).toBe(otherPid);
    expect(pickRuntime([], {})).toBeUndefined();
  });

  it('is the one on the port PORT, SQS_ENDPOINT or SQS_PORT names, and none if no listed one is there', () => {
    expect(pickRuntime(states, { PORT: '3100' })).toBe(running);
    expect(pickRuntime(states, { SQS_PORT: '4800' })).toBe(running);
    expect(pickRuntime(states, { SQS_ENDPOINT: 'http://127.0.0.1:4800/' })).toBe(running);
    expect(pickRuntime(states, { PORT: '3300' })).toBeUndefined();
  });
});

describe('localTarget', () => {
  it('is where the running npm start listens, when no variable says otherwise', () => {
    expect(localTarget({}, [running])).toMatchObject({
      apiUrl: 'http://127.0.0.1:3100',
      sqsEndpoint: 'http://127.0.0.1:4800',
      stage: 'workshop',
    });
  });

  it('is the runtime started last of several, or the one on the PORT given', () => {
    expect(localTarget({}, [later(otherPid), running])).toMatchObject({
      apiUrl: 'http://127.0.0.1:3200',
      sqsEndpoint: 'http://127.0.0.1:4900',
      stage: 'local',
    });
    expect(localTarget({ PORT: '3100' }, [later(otherPid), running])).toMatchObject({
      apiUrl: 'http://127.0.0.1:3100',
      sqsEndpoint: 'http://127.0.0.1:4800',
      stage: 'workshop',
    });
  });

  it('lets PORT, SQS_PORT, SQS_ENDPOINT and LOCAL_STAGE win over the state file', () => {
    expect(localTarget({ PORT: '3200', SQS_PORT: '4900', LOCAL_STAGE: 'local' }, [running])).toMatchObject({
      apiUrl: 'http://127.0.0.1:3200',
      sqsEndpoint: 'http://127.0.0.1:4900',
      stage: 'local',
    });
    expect(localTarget({ SQS_ENDPOINT: 'http://127.0.0.1:5000', SQS_PORT: '4900' }, [running]).sqsEndpoint).toBe('http://127.0.0.1:5000');
    // A PORT the file does not list: nothing of another runtime is mixed in.
    expect(localTarget({ PORT: '3300' }, [running])).toMatchObject({
      apiUrl: 'http://127.0.0.1:3300',
      sqsEndpoint: 'http://127.0.0.1:4566',
      stage: 'local',
    });
  });

  it('is npm start’s defaults with neither', () => {
    expect(localTarget({}, [])).toMatchObject({ apiUrl: 'http://127.0.0.1:3000', sqsEndpoint: 'http://127.0.0.1:4566', stage: 'local' });
  });

  it('reads the consumers from the template the runtime runs, or from where npm start packages the stage', () => {
    const packaged = { ...running, templatePath: '/somewhere/cloudformation-template-update-stack.json' };
    expect(localTarget({}, [packaged]).templatePath).toBe(packaged.templatePath);
    // Another stage than the runtime's, or a file from before the field: the stage's default package.
    expect(localTarget({ LOCAL_STAGE: 'other' }, [packaged]).templatePath).toBe(defaultTemplatePath('other'));
    expect(localTarget({}, [running]).templatePath).toBe(defaultTemplatePath('workshop'));
    expect(defaultTemplatePath('workshop')).toBe(
      path.join(REPOSITORY_ROOT, '.cache/package/workshop/cloudformation-template-update-stack.json'),
    );
  });

  it('reads the file LOCAL_RUNTIME_STATE_FILE names', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    expect(localTarget({ LOCAL_RUNTIME_STATE_FILE: file }).sqsEndpoint).toBe('http://127.0.0.1:4800');
  });
});
