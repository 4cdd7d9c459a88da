import { describe, expect, it } from 'vitest';
import { briefLine } from '../../local/console.js';
import { parseLabArgs } from '../../scripts/lab.js';
import { parseLogLines } from '../../scripts/labs.js';

// `npm run lab`'s command line, and the log lines the labs read: a person's one-line form, and the
// JSON a check parses.

describe('npm run lab command line', () => {
  it('reads check, until and their flags', () => {
    expect(parseLabArgs(['check', '4', '--wait', '30'])).toEqual({ kind: 'check', lab: 4, waitSeconds: 30 });
    expect(parseLabArgs(['until', 'dlq', 'payment', '2'])).toEqual({
      kind: 'until',
      condition: { what: 'dlq', consumer: 'payment', count: 2 },
      timeoutSeconds: 180,
    });
    expect(parseLabArgs(['until', 'log', 'circuit is open', '--timeout', '60'])).toMatchObject({
      condition: { what: 'log', text: 'circuit is open' },
      timeoutSeconds: 60,
    });
    expect(parseLabArgs(['env'])).toEqual({ kind: 'env' });
  });

  it('refuses a lab that does not exist, an unknown command and a stray argument, naming them', () => {
    expect(() => parseLabArgs(['check', '99'])).toThrow(/check N must be a whole number from 1 to 12/);
    expect(() => parseLabArgs(['start'])).toThrow(/unknown command "start"/);
    expect(() => parseLabArgs(['list', 'extra'])).toThrow(/unexpected argument "extra"/);
    expect(() => parseLabArgs(['until', 'dlq', 'payment'])).toThrow(/until wants/);
    expect(() => parseLabArgs(['check', '1', '--later'])).toThrow(/unknown flag --later/);
  });
});

describe('log lines', () => {
  const line = JSON.stringify({
    level: 'WARN',
    message: 'Record failed; it is retried',
    correlation_id: 'ord_1',
    eventType: 'OrderPlaced',
    receiveCount: 2,
    error: { name: 'CircuitOpenError', message: 'Payment provider circuit is open: failing fast' },
  });

  it('reads as one line with the keys a workshop looks at', () => {
    expect(briefLine({ at: '2026-11-27T07:45:54.825Z', function: 'payment', line })).toBe(
      '07:45:54.825  payment      Record failed; it is retried  correlation_id=ord_1 eventType=OrderPlaced receiveCount=2 error="Payment provider circuit is open: failing fast"',
    );
    const metrics = JSON.stringify({ _aws: { CloudWatchMetrics: [{ Metrics: [{ Name: 'OrdersPlaced' }] }] }, OrdersPlaced: 1 });
    expect(briefLine({ at: '2026-11-27T07:45:54.825Z', function: 'createOrder', line: metrics })).toBe(
      '07:45:54.825  createOrder  metrics OrdersPlaced=1',
    );
  });

  it('are parsed for the checks when they are JSON, and skipped when not', () => {
    const entries = parseLogLines([
      { at: 'a', function: 'payment', line },
      { at: 'b', function: 'payment', line: 'START RequestId: 1' },
    ]);
    expect(entries).toEqual([{ at: 'a', function: 'payment', fields: expect.objectContaining({ correlation_id: 'ord_1' }) }]);
  });
});

describe('the console answers loopback names only', () => {
  it('takes 127.0.0.1, localhost and [::1] with any port, and nothing else', async () => {
    const { isLoopbackHost } = await import('../../local/http-api.js');
    for (const host of ['127.0.0.1:3000', 'localhost:3000', '[::1]:3000', 'localhost']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['rebound.example:3000', '127.0.0.1.nip.io:3000', 'localhost.example', undefined, ''])
      expect(isLoopbackHost(host), String(host)).toBe(false);
  });
});
