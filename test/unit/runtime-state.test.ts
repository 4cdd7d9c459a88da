import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { localTarget, readRuntimeState, removeRuntimeState, type LocalRuntimeState, writeRuntimeState } from '../../local/runtime-state.js';

// Which local runtime `npm run status` and `npm run redrive` talk to: environment variables, then
// the state file of a running `npm start`, then npm start's defaults.

const dir = mkdtempSync(path.join(tmpdir(), 'runtime-state-'));
let files = 0;
const stateFile = () => path.join(dir, `local-runtime-${++files}.json`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const running: LocalRuntimeState = {
  pid: process.pid,
  startedAt: '2026-01-01T00:00:00.000Z',
  apiUrl: 'http://127.0.0.1:3100',
  endpoints: { sqs: 'http://127.0.0.1:4800', sns: 'http://127.0.0.1:4800', dynamodb: 'http://127.0.0.1:4801' },
  stage: 'workshop',
};

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('the state file', () => {
  it('is read back while its process runs', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    expect(readRuntimeState(file)).toEqual(running);
  });

  it('is ignored once its process is gone, when missing, and when unreadable', () => {
    const file = stateFile();
    writeRuntimeState({ ...running, pid: deadPid() }, file);
    expect(readRuntimeState(file)).toBeUndefined();
    expect(readRuntimeState(path.join(dir, 'none.json'))).toBeUndefined();
    const garbled = stateFile();
    writeFileSync(garbled, '{"pid": ');
    expect(readRuntimeState(garbled)).toBeUndefined();
  });

  it('is removed only by the process that wrote it', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    removeRuntimeState(process.pid + 1, file);
    expect(existsSync(file)).toBe(true);
    removeRuntimeState(process.pid, file);
    expect(existsSync(file)).toBe(false);
  });
});

describe('localTarget', () => {
  it('is where the running npm start listens, when no variable says otherwise', () => {
    expect(localTarget({}, running)).toEqual({ apiUrl: 'http://127.0.0.1:3100', sqsEndpoint: 'http://127.0.0.1:4800', stage: 'workshop' });
  });

  it('lets PORT, SQS_PORT, SQS_ENDPOINT and LOCAL_STAGE win over the state file', () => {
    expect(localTarget({ PORT: '3200', SQS_PORT: '4900', LOCAL_STAGE: 'local' }, running)).toEqual({
      apiUrl: 'http://127.0.0.1:3200',
      sqsEndpoint: 'http://127.0.0.1:4900',
      stage: 'local',
    });
    expect(localTarget({ SQS_ENDPOINT: 'http://127.0.0.1:5000', SQS_PORT: '4900' }, running).sqsEndpoint).toBe('http://127.0.0.1:5000');
  });

  it('is npm start’s defaults with neither', () => {
    expect(localTarget({}, undefined)).toEqual({ apiUrl: 'http://127.0.0.1:3000', sqsEndpoint: 'http://127.0.0.1:4566', stage: 'local' });
  });

  it('reads the file LOCAL_RUNTIME_STATE_FILE names', () => {
    const file = stateFile();
    writeRuntimeState(running, file);
    expect(localTarget({ LOCAL_RUNTIME_STATE_FILE: file }).sqsEndpoint).toBe('http://127.0.0.1:4800');
  });
});
