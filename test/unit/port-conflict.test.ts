import { describe, expect, it } from 'vitest';
import { alternativePorts, portInUseMessage, suggestedCommand } from '../../local/port-conflict.js';
import type { LocalRuntimeState } from '../../local/runtime-state.js';

// What `npm start` says when a port it wants is taken: an npm start named only when the state file
// lists one on that very port, and a command that moves that port and keeps the others set.

const holder: LocalRuntimeState = {
  pid: 4242,
  startedAt: '2026-01-01T00:00:00.000Z',
  apiUrl: 'http://127.0.0.1:3000',
  endpoints: { sqs: 'http://127.0.0.1:4566', sns: 'http://127.0.0.1:4566', dynamodb: 'http://127.0.0.1:4567' },
  stage: 'local',
};

describe('suggestedCommand', () => {
  it('moves the port and keeps every other port variable the user set, in their usual order', () => {
    expect(suggestedCommand('PORT', 3310, { PORT: '3300', SQS_PORT: '4800' })).toBe('PORT=3310 SQS_PORT=4800 npm start');
    expect(suggestedCommand('SQS_PORT', 4810, { DYNAMODB_PORT: '4801', SQS_PORT: '4800', PORT: '3100' })).toBe(
      'PORT=3100 SQS_PORT=4810 DYNAMODB_PORT=4801 npm start',
    );
    expect(suggestedCommand('DYNAMODB_PORT', 0, { PORT: '0' })).toBe('PORT=0 DYNAMODB_PORT=0 npm start');
  });

  it('adds nothing the user did not set', () => {
    expect(suggestedCommand('PORT', 3010, {})).toBe('PORT=3010 npm start');
    expect(suggestedCommand('PORT', 3010, { SQS_PORT: '', HOME: '/home/ada' })).toBe('PORT=3010 npm start');
  });
});

describe('alternativePorts', () => {
  it('are 10 apart, nearest first, and never another port this start wants', () => {
    expect(alternativePorts(3000, [4566, 4567], 3)).toEqual([3010, 3020, 3030]);
    expect(alternativePorts(4556, [4566, 4567], 2)).toEqual([4576, 4586]);
  });

  it('go down near the top of the range, and stay within it', () => {
    expect(alternativePorts(65530, [], 2)).toEqual([65520, 65510]);
    for (const port of [1, 5, 65535]) for (const candidate of alternativePorts(port, [])) expect(candidate).toBeGreaterThanOrEqual(1);
  });
});

describe('portInUseMessage', () => {
  it('names the npm start the state file lists on that port', () => {
    expect(portInUseMessage({ variable: 'PORT', port: 3000, holder, alternative: 3010, env: {} })).toBe(
      'port 3000 (PORT, HTTP API) is already in use by another npm start (pid 4242, running since 2026-01-01T00:00:00.000Z). Stop it, or set PORT to another port: PORT=3010 npm start',
    );
  });

  it('says only that another process holds it when no npm start is listed there', () => {
    const message = portInUseMessage({
      variable: 'PORT',
      port: 3300,
      holder: undefined,
      alternative: 3310,
      env: { PORT: '3300', SQS_PORT: '4800' },
    });
    expect(message).toBe(
      'port 3300 (PORT, HTTP API) is already in use by another process. Stop it, or set PORT to another port: PORT=3310 SQS_PORT=4800 npm start',
    );
    expect(message).not.toContain('pid');
  });
});
