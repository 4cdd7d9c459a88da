import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  type Message,
  type MessageAttributeValue,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT } from '../../local/package-stack.js';
import { writeRuntimeState } from '../../local/runtime-state.js';
import { pointerBody } from '../../lib/claim-check.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { orderIdOf, orderPlaced } from '../support/sqs-events.js';

// `npm run redrive` as a user runs it (tsx scripts/redrive.ts, a child process), against the queues
// provisioned from the packaged template on real emulators. It finds them as it finds `npm start`:
// from SQS_PORT / SQS_ENDPOINT, or from the runtime's state file.

let stack: ProvisionedStack;
let dlqUrl: string;
let queueUrl: string;
let stateDir: string;
let orderIds: string[];
/** A big order's OrderPlaced as the publisher claim-checks it: a pointer, its type and order as attributes. */
let pointer: { orderId: string; body: string; attributes: Record<string, MessageAttributeValue> };
const POISON = 'poison: never an order';

/** What each variable a tool reads would otherwise inherit: a test's own environment, a runtime elsewhere on this machine. */
function toolEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of [
    'PORT',
    'SQS_PORT',
    'SQS_ENDPOINT',
    'LOCAL_STAGE',
    'AWS_ENDPOINT_URL',
    'AWS_ENDPOINT_URL_SQS',
    'AWS_ENDPOINT_URL_SNS',
    'AWS_ENDPOINT_URL_DYNAMODB',
  ]) {
    delete env[name];
  }
  // No state file unless a test writes one.
  return { ...env, LOCAL_RUNTIME_STATE_FILE: path.join(stateDir, 'none.json'), ...extra };
}

async function redrive(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [path.join(REPOSITORY_ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(REPOSITORY_ROOT, 'scripts/redrive.ts'), ...args],
      { cwd: REPOSITORY_ROOT, env, timeout: 30_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function drain(url: string): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const { Messages } = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }),
    );
    if (!Messages?.length) return all;
    all.push(...Messages);
  }
}

/** Bodies a queue holds in any state, without receiving them. */
const heldBodies = (url: string) => {
  const state = stack.emulators.fauxqs.inspectQueue(url.split('/').pop()!)!;
  return [...state.messages.ready, ...state.messages.delayed, ...state.messages.inflight.map((entry) => entry.message)]
    .map((m) => m.body)
    .sort();
};

beforeAll(async () => {
  stack = await startProvisionedStack();
  const payment = stack.queue('PaymentQueue');
  queueUrl = payment.url;
  dlqUrl = payment.dlqUrl!;
  stateDir = mkdtempSync(path.join(tmpdir(), 'redrive-cli-'));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

let batch = 0;
beforeEach(async () => {
  // Whatever an earlier test left goes; then three order events, a claim-checked one and a poison body in the payment DLQ.
  await stack.sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
  await stack.sqs.send(new PurgeQueueCommand({ QueueUrl: dlqUrl }));
  expect([...heldBodies(queueUrl), ...heldBodies(dlqUrl)]).toEqual([]);
  batch += 1;
  orderIds = ['a', 'b', 'c'].map((label) => orderIdOf(`cli-${batch}-${label}`));
  for (const orderId of orderIds) {
    const attributes: Record<string, MessageAttributeValue> = {
      eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
      orderId: { DataType: 'String', StringValue: orderId },
    };
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: JSON.stringify(orderPlaced(orderId)), MessageAttributes: attributes }),
    );
  }
  const bigOrderId = orderIdOf(`cli-${batch}-big`);
  pointer = {
    orderId: bigOrderId,
    body: pointerBody({ s3BucketName: 'order-pipeline-local-claim-checks', s3Key: `order-events/${bigOrderId}/OrderPlaced.json` }),
    attributes: {
      eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
      orderId: { DataType: 'String', StringValue: bigOrderId },
      ExtendedPayloadSize: { DataType: 'Number', StringValue: '300000' },
    },
  };
  await stack.sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: pointer.body, MessageAttributes: pointer.attributes }));
  await stack.sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: POISON }));
});

describe('npm run redrive, against the emulators', () => {
  it('found by SQS_PORT: --dry-run lists the DLQ and moves nothing', async () => {
    const port = new URL(stack.emulators.endpoints.sqs).port;
    const result = await redrive(['payment', '--dry-run'], toolEnvironment({ SQS_PORT: port }));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      `Dry run: redriving order-pipeline-local-payment-dlq → order-pipeline-local-payment (local runtime at http://127.0.0.1:${port}, stage local)`,
    );
    for (const orderId of orderIds) expect(result.stdout).toMatch(new RegExp(`would move\\s+\\S+\\s+OrderPlaced ${orderId}`));
    // The claim-checked event is named from its attributes, like any order event (no S3 read).
    expect(result.stdout).toMatch(new RegExp(`would move\\s+\\S+\\s+OrderPlaced ${pointer.orderId} \\(claim-checked\\)`));
    expect(result.stdout).toMatch(/would move\s+\S+\s+not an order event/);
    expect(result.stdout).toContain('Would move 5 message(s); 0 left in the DLQ.');
    expect(heldBodies(queueUrl)).toEqual([]);
    expect(heldBodies(dlqUrl)).toHaveLength(5);
  });

  it('found by the runtime state file: --skip-invalid moves the order events back and leaves the poison', async () => {
    const stateFile = path.join(stateDir, 'local-runtime.json');
    // A state file as `npm start` writes it, naming a live process (this one).
    writeRuntimeState(
      {
        pid: process.pid,
        startedAt: new Date().toISOString(),
        apiUrl: 'http://127.0.0.1:1',
        endpoints: stack.emulators.endpoints,
        stage: 'local',
      },
      stateFile,
    );
    const before = heldBodies(dlqUrl);
    const result = await redrive(['payment', '--skip-invalid'], toolEnvironment({ LOCAL_RUNTIME_STATE_FILE: stateFile }));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`(local runtime at ${stack.emulators.endpoints.sqs}, stage local)`);
    expect(result.stdout).toContain('Moved 4 message(s) via receive-send-delete; 1 left in the DLQ.');
    for (const orderId of [...orderIds, pointer.orderId])
      expect(result.stdout).toMatch(new RegExp(`moved\\s+\\S+\\s+OrderPlaced ${orderId}`));
    expect(result.stdout).toMatch(/left\s+\S+\s+not an order event/);

    // On the payment queue: the three events and the pointer exactly as they were, attributes included.
    const moved = await drain(queueUrl);
    expect(moved.map((m) => m.Body).sort()).toEqual(before.filter((body) => body !== POISON));
    const movedPointer = moved.find((message) => message.Body === pointer.body);
    expect(movedPointer?.MessageAttributes).toEqual(pointer.attributes);
    for (const message of moved.filter((m) => m !== movedPointer)) {
      const { orderId } = JSON.parse(message.Body!) as { orderId: string };
      expect(message.MessageAttributes).toMatchObject({
        eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
        orderId: { DataType: 'String', StringValue: orderId },
      });
    }
    // And the poison, alone, still in the DLQ.
    expect(heldBodies(dlqUrl)).toEqual([POISON]);
  });

  it('--max 2 moves two and leaves the rest', async () => {
    const before = heldBodies(dlqUrl);
    const result = await redrive(['payment', '--max', '2'], toolEnvironment({ SQS_ENDPOINT: stack.emulators.endpoints.sqs }));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Moved 2 message(s) via receive-send-delete; 3 left in the DLQ.');
    const moved = heldBodies(queueUrl);
    const left = heldBodies(dlqUrl);
    expect(moved).toHaveLength(2);
    expect(left).toHaveLength(3);
    expect([...moved, ...left].sort()).toEqual(before);
  });

  it('a stage with no such queues fails with a message and exit code 1, moving nothing', async () => {
    const result = await redrive(['payment'], toolEnvironment({ SQS_ENDPOINT: stack.emulators.endpoints.sqs, LOCAL_STAGE: 'nosuchstage' }));
    expect(result.code).toBe(1);
    expect(result.stderr).not.toBe('');
    expect(heldBodies(dlqUrl)).toHaveLength(5);
    expect(heldBodies(queueUrl)).toEqual([]);
  });
});
