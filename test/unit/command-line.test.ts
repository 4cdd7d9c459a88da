import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../bench/cli.js';
import { REPOSITORY_ROOT } from '../../local/package-stack.js';
import { freePort } from '../support/ports.js';
import { parseChaosArgs } from '../../scripts/chaos.js';
import { parseCommandLine, UsageError, wholeNumber } from '../../scripts/command-line.js';
import { parseOrderArgs } from '../../scripts/order.js';
import { parseRedriveArgs } from '../../scripts/redrive.js';
import { parseStatusArgs } from '../../scripts/status.js';
import { parseTokenArgs } from '../../scripts/token.js';

// The npm run tools refuse a command line they do not understand, naming what they refuse,
// instead of ignoring an unknown flag or reading a bad value as a number.

/** The UsageError message `parse` throws for `args`. */
function refusal(parse: (args: string[]) => unknown, args: string[]): string {
  try {
    parse(args);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`${args.join(' ')} was accepted`);
}

describe('every tool', () => {
  const tools = { chaos: parseChaosArgs, bench: parseBenchArgs, redrive: parseRedriveArgs, status: parseStatusArgs, order: parseOrderArgs };

  it.each(Object.entries(tools))('%s refuses an unknown flag, naming it', (_, parse) => {
    const queue = parse === parseRedriveArgs ? ['payment'] : [];
    expect(refusal(parse, [...queue, '--bogus'])).toBe('unknown flag --bogus');
    // A near miss is not taken for the flag it resembles.
    expect(refusal(parse, [...queue, '--dryrun'])).toBe('unknown flag --dryrun');
  });

  it('refuses a flag whose value is missing, and a value given to a switch', () => {
    expect(refusal(parseChaosArgs, ['--orders'])).toMatch(/--orders.*argument missing/);
    expect(refusal(parseChaosArgs, ['--orders', '--seed', '4'])).toMatch(/--orders.*ambiguous/);
    expect(refusal(parseStatusArgs, ['--watch=yes'])).toMatch(/--watch.*does not take an argument/);
  });

  it('refuses arguments a tool does not take', () => {
    expect(refusal(parseStatusArgs, ['payment'])).toBe('unexpected argument "payment"');
    expect(refusal(parseChaosArgs, ['500'])).toBe('unexpected argument "500"');
  });
});

describe('negative numbers', () => {
  const config = {
    options: { offset: { type: 'string' }, name: { type: 'string' }, verbose: { type: 'boolean', default: false } },
  } as const;

  it('are read after a flag the tool marks as taking one, in both forms', () => {
    expect(parseCommandLine(['--offset', '-60'], config, { negativeNumbers: ['offset'] }).values.offset).toBe('-60');
    expect(parseCommandLine(['--offset=-60'], config, { negativeNumbers: ['offset'] }).values.offset).toBe('-60');
    expect(parseCommandLine(['--offset', '-0.5', '--verbose'], config, { negativeNumbers: ['offset'] }).values).toEqual({
      offset: '-0.5',
      verbose: true,
    });
  });

  it('are still refused after any other flag, and a flag is never taken for a value', () => {
    expect(() => parseCommandLine(['--name', '-60'], config, { negativeNumbers: ['offset'] })).toThrow(/--name.*ambiguous/);
    expect(() => parseCommandLine(['--offset', '-60'], config)).toThrow(/--offset.*ambiguous/);
    expect(() => parseCommandLine(['--offset', '--verbose'], config, { negativeNumbers: ['offset'] })).toThrow(/--offset.*ambiguous/);
    expect(() => parseCommandLine(['--offset', '-x'], config, { negativeNumbers: ['offset'] })).toThrow(UsageError);
    // After `--`, nothing is a flag's value.
    expect(() => parseCommandLine(['--', '--offset', '-60'], config, { negativeNumbers: ['offset'] })).toThrow(
      /unexpected argument "--offset"/,
    );
  });

  it('are whole numbers when the lower bound is below zero, and only then', () => {
    expect(wholeNumber('--offset', '-60', { min: -100, max: 100 })).toBe(-60);
    expect(wholeNumber('--offset', '60', { min: -100, max: 100 })).toBe(60);
    expect(() => wholeNumber('--offset', '-101', { min: -100, max: 100 })).toThrow(
      '--offset must be a whole number from -100 to 100, not "-101"',
    );
    expect(() => wholeNumber('--offset', '-1', { min: 0 })).toThrow('--offset must be a whole number at least 0, not "-1"');
    for (const bad of ['-', '--1', '-1.5', '+1', '- 1']) expect(() => wholeNumber('--offset', bad, { min: -100 }), bad).toThrow(UsageError);
  });
});

describe('npm run token', () => {
  it('reads --expires-in, negative for a token already expired, in both forms', () => {
    expect(parseTokenArgs(['--customer', 'cus_1', '--expires-in', '-60'])).toEqual({
      help: false,
      customer: 'cus_1',
      expiresInSeconds: -60,
    });
    expect(parseTokenArgs(['--customer', 'cus_1', '--expires-in=-60'])).toEqual({ help: false, customer: 'cus_1', expiresInSeconds: -60 });
    expect(parseTokenArgs(['--expires-in', '600', '--customer', 'cus_1', '--api', 'http://127.0.0.1:3100'])).toEqual({
      help: false,
      customer: 'cus_1',
      expiresInSeconds: 600,
      api: 'http://127.0.0.1:3100',
    });
  });

  it('refuses an --expires-in out of bounds, and a missing customer', () => {
    expect(refusal(parseTokenArgs, ['--customer', 'cus_1', '--expires-in', '-86401'])).toBe(
      '--expires-in must be a whole number from -86400 to 86400, not "-86401"',
    );
    expect(refusal(parseTokenArgs, ['--customer', 'cus_1', '--expires-in', '1e3'])).toMatch(/^--expires-in .* not "1e3"$/);
    expect(refusal(parseTokenArgs, ['--expires-in', '-60'])).toBe('--customer is required');
  });
});

describe('npm run order', () => {
  it('places 5,000 lines unless told otherwise, express only when asked', () => {
    expect(parseOrderArgs([])).toEqual({ help: false, lines: 5000, express: false });
    expect(parseOrderArgs(['--lines', '12', '--express'])).toEqual({ help: false, lines: 12, express: true });
  });

  it('refuses a number of lines the API would refuse', () => {
    expect(refusal(parseOrderArgs, ['--lines', '0'])).toBe('--lines must be a whole number from 1 to 5000, not "0"');
    expect(refusal(parseOrderArgs, ['--lines', '5001'])).toBe('--lines must be a whole number from 1 to 5000, not "5001"');
    expect(refusal(parseOrderArgs, ['--lines', 'many'])).toBe('--lines must be a whole number from 1 to 5000, not "many"');
  });
});

describe('npm run chaos', () => {
  it('reads every flag, the two outages included, and passes only what was given', () => {
    expect(parseChaosArgs([])).toEqual({ help: false, options: {} });
    expect(
      parseChaosArgs([
        '--orders',
        '500',
        '--seed',
        '42',
        '--concurrency',
        '8',
        '--transient',
        '0.2',
        '--crash',
        '.05',
        '--timeout',
        '0',
        '--duplicate',
        '1',
        '--publish-failure',
        '0.05',
        '--poison',
        '0',
        '--max-wait',
        '120',
        '--provider-outage',
        '20',
        '--topic-outage=0',
      ]).options,
    ).toEqual({
      orders: 500,
      seed: 42,
      concurrency: 8,
      transientErrorRate: 0.2,
      crashRate: 0.05,
      timeoutRate: 0,
      duplicateRate: 1,
      publishFailureRate: 0.05,
      poisonPerQueue: 0,
      maxWaitSeconds: 120,
      providerOutageSeconds: 20,
      topicOutageSeconds: 0,
    });
    expect(parseChaosArgs(['--provider-outage', '15']).options).toEqual({ providerOutageSeconds: 15 });
    expect(parseChaosArgs(['--sweeps-per-minute', '12']).options).toEqual({ sweepsPerMinute: 12 });
    expect(parseChaosArgs(['-h']).help).toBe(true);
  });

  it('refuses a bad value, naming the flag and the value', () => {
    expect(refusal(parseChaosArgs, ['--orders', '0'])).toBe('--orders must be a whole number at least 1, not "0"');
    expect(refusal(parseChaosArgs, ['--orders', 'many'])).toBe('--orders must be a whole number at least 1, not "many"');
    expect(refusal(parseChaosArgs, ['--orders', '1e3'])).toMatch(/^--orders .* not "1e3"$/);
    expect(refusal(parseChaosArgs, ['--transient', '1.5'])).toBe('--transient must be a number at least 0 and at most 1, not "1.5"');
    expect(refusal(parseChaosArgs, ['--crash=-0.1'])).toMatch(/^--crash .* not "-0.1"$/);
    expect(refusal(parseChaosArgs, ['--duplicate='])).toMatch(/^--duplicate .* not ""$/);
    expect(refusal(parseChaosArgs, ['--provider-outage', '2.5'])).toBe('--provider-outage must be a whole number at least 0, not "2.5"');
    expect(refusal(parseChaosArgs, ['--topic-outage=-1'])).toBe('--topic-outage must be a whole number at least 0, not "-1"');
    expect(refusal(parseChaosArgs, ['--sweeps-per-minute', '0'])).toMatch(/^--sweeps-per-minute must be a whole number/);
    expect(refusal(parseChaosArgs, ['--seed', String(2 ** 32)])).toBe(
      `--seed must be a whole number from 0 to ${2 ** 32 - 1}, not "${2 ** 32}"`,
    );
  });
});

describe('npm run bench', () => {
  it('reads its flags', () => {
    expect(parseBenchArgs([])).toEqual({
      help: false,
      coldStartOnly: false,
      memoryOnly: false,
      backlog: false,
      backlogOptions: {},
      options: { quick: false },
    });
    expect(
      parseBenchArgs([
        '--quick',
        '--orders',
        '2000',
        '--concurrency',
        '16, 64',
        '--ceiling-orders',
        '300',
        '--warmup-orders',
        '0',
        '--idle-seconds',
        '2.5',
        '--cold-start-runs',
        '3',
      ]),
    ).toEqual({
      help: false,
      coldStartOnly: false,
      memoryOnly: false,
      backlog: false,
      backlogOptions: {},
      options: {
        quick: true,
        orders: 2000,
        concurrency: [16, 64],
        ceilingOrders: 300,
        warmupOrders: 0,
        idleSeconds: 2.5,
        coldStartRuns: 3,
      },
    });
  });

  it('reads --cold-start-only, with the number of runs', () => {
    expect(parseBenchArgs(['--cold-start-only', '--cold-start-runs', '9'])).toEqual({
      help: false,
      coldStartOnly: true,
      memoryOnly: false,
      backlog: false,
      backlogOptions: {},
      options: { quick: false, coldStartRuns: 9 },
    });
  });

  it('reads --memory-only, and refuses it with --cold-start-only', () => {
    expect(parseBenchArgs(['--memory-only'])).toMatchObject({ coldStartOnly: false, memoryOnly: true, backlog: false });
    expect(refusal(parseBenchArgs, ['--memory-only', '--cold-start-only'])).toBe('--cold-start-only and --memory-only: choose one');
  });

  it('reads --backlog with its counts and --compare-lane-priority, and refuses them without it', () => {
    expect(parseBenchArgs(['--backlog'])).toMatchObject({ backlog: true, backlogOptions: {} });
    expect(parseBenchArgs(['--backlog', '--standard-orders', '300', '--express-orders', '10'])).toMatchObject({
      backlog: true,
      backlogOptions: { standardOrders: 300, expressOrders: 10 },
    });
    expect(parseBenchArgs(['--backlog', '--compare-lane-priority'])).toMatchObject({
      backlog: true,
      backlogOptions: { compareLanePriority: true },
    });
    expect(refusal(parseBenchArgs, ['--express-orders', '10'])).toBe(
      '--standard-orders, --express-orders and --compare-lane-priority go with --backlog',
    );
    expect(refusal(parseBenchArgs, ['--compare-lane-priority'])).toBe(
      '--standard-orders, --express-orders and --compare-lane-priority go with --backlog',
    );
    expect(refusal(parseBenchArgs, ['--backlog', '--memory-only'])).toBe('--memory-only and --backlog: choose one');
  });

  it('refuses a bad value, naming the flag and the value', () => {
    expect(refusal(parseBenchArgs, ['--concurrency', '16,x'])).toBe(
      '--concurrency must be whole numbers of at least 1 separated by commas, not "16,x"',
    );
    expect(refusal(parseBenchArgs, ['--concurrency', '16,,64'])).toMatch(/^--concurrency .* not "16,,64"$/);
    expect(refusal(parseBenchArgs, ['--idle-seconds', '0'])).toBe('--idle-seconds must be a number above 0, not "0"');
    expect(refusal(parseBenchArgs, ['--quick=false'])).toMatch(/--quick.*does not take an argument/);
  });
});

describe('npm run redrive', () => {
  it('reads the consumer and its flags', () => {
    expect(
      parseRedriveArgs(['payment', '--max', '5', '--dry-run', '--skip-invalid', '--aws', '--stage', 'dev', '--region', 'eu-west-1']),
    ).toEqual({
      help: false,
      consumer: 'payment',
      lane: 'standard',
      max: 5,
      dryRun: true,
      skipInvalid: true,
      target: { aws: true, stage: 'dev', region: 'eu-west-1' },
    });
    expect(parseRedriveArgs(['inventory'])).toMatchObject({ consumer: 'inventory', max: undefined, dryRun: false, target: { aws: false } });
    // The express lane's dead-letter queue, back to the express queue.
    expect(parseRedriveArgs(['inventory', '--express'])).toMatchObject({ consumer: 'inventory', lane: 'express' });
    expect(parseRedriveArgs(['--help']).help).toBe(true);
  });

  // Which consumers there are is the stack's template's to say: a missing or unknown one is
  // refused once it is read (consumerNamed, test/unit/queue-consumers.test.ts).
  it('refuses a second consumer and a bad --max', () => {
    expect(refusal(parseRedriveArgs, ['payment', 'shipping'])).toBe('unexpected argument "shipping": one consumer at a time');
    expect(refusal(parseRedriveArgs, ['payment', '--max', '0'])).toBe('--max must be a whole number at least 1, not "0"');
    expect(refusal(parseRedriveArgs, ['payment', '--stage', ''])).toBe('--stage needs a value');
  });
});

describe('npm run status', () => {
  it('reads its flags', () => {
    expect(parseStatusArgs(['--watch', '--api', 'http://127.0.0.1:3100/'])).toEqual({
      help: false,
      watch: true,
      api: 'http://127.0.0.1:3100',
      target: { aws: false, stage: undefined, region: undefined },
    });
    expect(parseStatusArgs(['--aws', '--stage', 'prod']).target).toEqual({ aws: true, stage: 'prod', region: undefined });
  });

  it('refuses an --api that is not an http URL', () => {
    expect(refusal(parseStatusArgs, ['--api', '3100'])).toBe('--api must be a URL such as http://127.0.0.1:3000, not "3100"');
    expect(refusal(parseStatusArgs, ['--api', 'ftp://127.0.0.1'])).toBe('--api must be an http or https URL, not "ftp://127.0.0.1"');
  });

  it('as a command: exits non-zero on an unknown flag, naming it and printing its usage', async () => {
    const run = promisify(execFile)('npx', ['tsx', 'scripts/status.ts', '--bogus'], { cwd: REPOSITORY_ROOT, timeout: 30_000 });
    const failure = await run.then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failure).toBeDefined();
    expect(failure!.code).toBe(2);
    expect(failure!.stderr).toContain('unknown flag --bogus');
    expect(failure!.stderr).toContain('usage: npm run status');
    // Refused before doing anything: no status printed, no stack trace.
    expect(failure!.stdout).toBe('');
    expect(failure!.stderr).not.toMatch(/\n\s+at /);
  }, 40_000);
});

describe('with no local runtime running', () => {
  /** The tool run as `npm run` runs it, against ports nothing listens on, and with no state file. */
  async function runAlone(script: string, args: string[]) {
    // Without the variable vitest sets: the tool must quiet the AWS SDK itself.
    const { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _, SQS_ENDPOINT: __, LOCAL_STAGE: ___, ...inherited } = process.env;
    const [port, sqsPort] = [await freePort(), await freePort()];
    const env = {
      ...inherited,
      PORT: String(port),
      SQS_PORT: String(sqsPort),
      LOCAL_RUNTIME_STATE_FILE: path.join(tmpdir(), `no-runtime-${process.pid}.json`),
    };
    const failure = await promisify(execFile)('npx', ['tsx', script, ...args], { cwd: REPOSITORY_ROOT, env, timeout: 30_000 }).then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failure, `${script} failed`).toBeDefined();
    return { ...failure!, port, sqsPort };
  }

  it('npm run status says no runtime answers, where, and how to start or name one; no SDK warning', async () => {
    const { code, stdout, stderr, port } = await runAlone('scripts/status.ts', []);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(`No local runtime answers at http://127.0.0.1:${port}`);
    expect(stderr).toContain('npm start');
    expect(stderr).toContain('--api');
    expect(stderr).not.toContain('NodeVersionSupportWarning');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  }, 40_000);

  it('npm run redrive says no runtime answers, where, and how to start or name one; no SDK warning', async () => {
    const { code, stdout, stderr, sqsPort } = await runAlone('scripts/redrive.ts', ['payment', '--dry-run']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(`No local runtime answers at http://127.0.0.1:${sqsPort}`);
    expect(stderr).toContain('npm start');
    expect(stderr).toContain('SQS_PORT');
    expect(stderr).not.toContain('NodeVersionSupportWarning');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  }, 40_000);
});
