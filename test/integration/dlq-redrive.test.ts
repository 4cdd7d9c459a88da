import {
  CreateQueueCommand,
  type Message,
  PurgeQueueCommand,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { FauxqsServer } from 'fauxqs';
import { startFauxqsOnLoopback } from '../../local/fauxqs-loopback.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { redriveDeadLetters } from '../../scripts/dlq-redrive.js';
import { isOrderEventMessage, parseOrderEvent } from '../../lib/queued-message.js';
import { orderIdOf, orderPlaced } from '../support/sqs-events.js';

// scripts/dlq-redrive.ts against fauxqs through the real SDK: what arrives on the source queue is
// what was in the DLQ (body and every attribute), and an interrupted redrive duplicates a message
// at worst, never loses one.

let server: FauxqsServer;
let sqs: SQSClient;
let dlqUrl: string;
let sourceUrl: string;
let run = 0;

/** A message as a consumer sees it: the body and each attribute's type and value. */
interface Letter {
  body: string;
  attributes: Record<string, { DataType: string; value: string }>;
}
/** What was put in the DLQ before each test, in order: three order events, then a poison body. */
let letters: Letter[];
const POISON = 'poison: never an order';

/** What `npm run redrive -- --skip-invalid` selects (lib/queued-message.ts). */
const isOrderEvent = (message: Message) => isOrderEventMessage({ body: message.Body ?? '', attributes: message.MessageAttributes });

function letterOf(body: string, attributes: Record<string, MessageAttributeValue> | undefined): Letter {
  return {
    body,
    attributes: Object.fromEntries(
      Object.entries(attributes ?? {}).map(([name, value]) => [
        name,
        {
          DataType: value.DataType ?? '',
          value: value.BinaryValue !== undefined ? `binary:${Buffer.from(value.BinaryValue).toString('hex')}` : (value.StringValue ?? ''),
        },
      ]),
    ),
  };
}

const sorted = (list: Letter[]) => [...list].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

async function drain(queueUrl: string): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }),
    );
    if (!Messages?.length) return all;
    all.push(...Messages);
  }
}

/** Everything a queue holds, received (and so hidden) now: as letters. */
async function drainLetters(queueUrl: string): Promise<Letter[]> {
  return (await drain(queueUrl)).map((message) => letterOf(message.Body ?? '', message.MessageAttributes));
}

/** Everything a queue holds in any state, in flight included, without receiving it. */
function heldLetters(queueUrl: string): Letter[] {
  const state = server.inspectQueue(queueUrl.split('/').pop()!)!;
  return [...state.messages.ready, ...state.messages.delayed, ...state.messages.inflight.map((entry) => entry.message)].map((message) =>
    letterOf(
      message.body,
      Object.fromEntries(
        Object.entries(message.messageAttributes).map(([name, value]) => [
          name,
          {
            DataType: value.DataType,
            StringValue: value.StringValue,
            // fauxqs keeps binary values base64-encoded.
            BinaryValue: value.BinaryValue === undefined ? undefined : Buffer.from(String(value.BinaryValue), 'base64'),
          },
        ]),
      ),
    ),
  );
}

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** An SQS client on the same endpoint whose calls of one command fail from the nth on, as a crash there would. */
function clientFailing(commandName: 'SendMessageCommand' | 'DeleteMessageCommand', fromCall: number): SQSClient {
  const client = new SQSClient({ endpoint: server.address, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  let calls = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === commandName) {
        calls += 1;
        if (calls >= fromCall) throw new Error(`${commandName} interrupted (simulated crash)`);
      }
      return next(args);
    },
    // Before the SDK's retries: the process is gone, nothing retries.
    { step: 'initialize', name: 'simulatedCrash' },
  );
  return client;
}

beforeAll(async () => {
  server = await startFauxqsOnLoopback({ port: 0, logger: false });
  sqs = new SQSClient({ endpoint: server.address, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
});

afterAll(async () => {
  await server.stop();
});

beforeEach(async () => {
  run += 1;
  dlqUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `redrive-${run}-dlq` }))).QueueUrl ?? '';
  sourceUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `redrive-${run}` }))).QueueUrl ?? '';
  letters = [];
  for (const [index, orderId] of [orderIdOf('a'), orderIdOf('b'), orderIdOf('c')].entries()) {
    const body = JSON.stringify(orderPlaced(orderId));
    // Every kind of attribute a message can carry: String, Number, Binary.
    const attributes: Record<string, MessageAttributeValue> = {
      eventType: { DataType: 'String', StringValue: 'OrderPlaced' },
      orderId: { DataType: 'String', StringValue: orderId },
      attempt: { DataType: 'Number', StringValue: String(index + 1) },
      signature: { DataType: 'Binary', BinaryValue: new Uint8Array([index, 0xff, 0x10]) },
    };
    await sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: body, MessageAttributes: attributes }));
    letters.push(letterOf(body, attributes));
  }
  await sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: POISON }));
  letters.push(letterOf(POISON, undefined));
});

const orderEvents = () => letters.filter((letter) => letter.body !== POISON);

describe('redriveDeadLetters (receive, send, delete)', () => {
  it('moves the order events back with body and attributes, leaving the poison in the DLQ', async () => {
    const report = await redriveDeadLetters({
      sqs,
      deadLetterQueueUrl: dlqUrl,
      sourceQueueUrl: sourceUrl,
      select: isOrderEvent,
      scanVisibilitySeconds: 5,
    });
    expect(report).toMatchObject({ method: 'receive-send-delete', moved: 3, skipped: 1 });
    const moved = await drainLetters(sourceUrl);
    expect(sorted(moved)).toEqual(sorted(orderEvents()));
    expect(moved.map((letter) => parseOrderEvent(letter.body).orderId).sort()).toEqual(
      [orderIdOf('a'), orderIdOf('b'), orderIdOf('c')].sort(),
    );
    expect((await drain(dlqUrl)).map((m) => m.Body)).toEqual([POISON]);
  });

  it('moves nothing on a dry run and leaves every message visible', async () => {
    const report = await redriveDeadLetters({
      sqs,
      deadLetterQueueUrl: dlqUrl,
      sourceQueueUrl: sourceUrl,
      dryRun: true,
      select: isOrderEvent,
    });
    expect(report.moved).toBe(0);
    expect(report.messages.filter((m) => m.selected)).toHaveLength(3);
    expect(await drain(sourceUrl)).toHaveLength(0);
    expect(sorted(await drainLetters(dlqUrl))).toEqual(sorted(letters));
  });

  it('stops after --max messages', async () => {
    const report = await redriveDeadLetters({
      sqs,
      deadLetterQueueUrl: dlqUrl,
      sourceQueueUrl: sourceUrl,
      max: 2,
      scanVisibilitySeconds: 5,
    });
    expect(report.moved).toBe(2);
    const moved = await drainLetters(sourceUrl);
    expect(moved).toHaveLength(2);
    const left = await drainLetters(dlqUrl);
    expect(left).toHaveLength(2);
    // The two moved arrived as they were; together with the two left, they are the four put in.
    expect(sorted([...moved, ...left])).toEqual(sorted(letters));
  });

  it('falls back from StartMessageMoveTask where the endpoint lacks it, moving everything intact', async () => {
    const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl });
    expect(report).toMatchObject({ method: 'receive-send-delete', moved: 4 });
    expect(sorted(await drainLetters(sourceUrl))).toEqual(sorted(letters));
    expect(await drain(dlqUrl)).toHaveLength(0);
  });
});

describe('an interrupted redrive', () => {
  it('sent but not deleted: the message is in both queues, duplicated, and a second run loses nothing', async () => {
    // The second delete fails: the first message moved, the second sent and still in the DLQ.
    const crashing = clientFailing('DeleteMessageCommand', 2);
    await expect(
      redriveDeadLetters({ sqs: crashing, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl, scanVisibilitySeconds: 1 }),
    ).rejects.toThrow(/DeleteMessageCommand interrupted/);
    crashing.destroy();

    const inSource = heldLetters(sourceUrl);
    const inDlq = heldLetters(dlqUrl);
    expect(inSource).toHaveLength(2);
    // Nothing lost: every letter is in one queue or the other, exactly as it was put in.
    expect(
      sorted(
        [...inSource, ...inDlq].filter(
          (letter, index, all) => all.findIndex((other) => JSON.stringify(other) === JSON.stringify(letter)) === index,
        ),
      ),
    ).toEqual(sorted(letters));
    // One duplicated: the one sent and not deleted, in both queues.
    const duplicated = inSource.filter((letter) => inDlq.some((other) => JSON.stringify(other) === JSON.stringify(letter)));
    expect(duplicated).toHaveLength(1);
    expect(inDlq).toHaveLength(letters.length - 1);

    // Run again once the scan's hold on the DLQ has lapsed: everything ends up on the source
    // queue, the interrupted one twice (the consumers are idempotent), nothing anywhere else.
    // (fauxqs returns an expired message to the queue on the next receive.)
    await until('the DLQ messages visible again', () =>
      server.inspectQueue(dlqUrl.split('/').pop()!)!.messages.inflight.every((entry) => entry.visibilityDeadline <= Date.now()),
    );
    const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl, scanVisibilitySeconds: 5 });
    expect(report.moved).toBe(letters.length - 1);
    expect(sorted(await drainLetters(sourceUrl))).toEqual(sorted([...letters, duplicated[0]!]));
    expect(await drain(dlqUrl)).toHaveLength(0);
  });

  it('a send that fails leaves its message in the DLQ: nothing deleted that was not sent', async () => {
    // The second send fails: the first message moved, the second never left the DLQ.
    const crashing = clientFailing('SendMessageCommand', 2);
    await expect(
      redriveDeadLetters({ sqs: crashing, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl, scanVisibilitySeconds: 1 }),
    ).rejects.toThrow(/SendMessageCommand interrupted/);
    crashing.destroy();

    const inSource = heldLetters(sourceUrl);
    const inDlq = heldLetters(dlqUrl);
    expect(inSource).toHaveLength(1);
    expect(inDlq).toHaveLength(letters.length - 1);
    // Each letter in exactly one of the two queues.
    expect(sorted([...inSource, ...inDlq])).toEqual(sorted(letters));
  });
});

describe('redriving a FIFO dead-letter queue (queueType=fifo)', () => {
  it("sends each message back with its order's message group, in order, and a deduplication id of its own, so that the event's first delivery does not swallow it", async () => {
    run += 1;
    const name = `redrive-fifo-${run}`;
    const fifoDlq = (await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq.fifo`, Attributes: { FifoQueue: 'true' } })))
      .QueueUrl!;
    const fifoSource = (
      await sqs.send(
        new CreateQueueCommand({
          QueueName: `${name}.fifo`,
          Attributes: { FifoQueue: 'true', DeduplicationScope: 'messageGroup', FifoThroughputLimit: 'perMessageGroupId' },
        }),
      )
    ).QueueUrl!;
    const orderId = orderIdOf('redrive-fifo');
    const events = [
      orderPlaced(orderId),
      {
        ...orderPlaced(orderId),
        eventType: 'OrderCancelled',
        eventId: `${orderId}:OrderCancelled`,
        data: { reason: 'CUSTOMER_CANCELLED' },
      },
    ];
    for (const event of events) {
      // The events reached the source queue once already, under their event ids: it remembers them for five minutes.
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: fifoSource,
          MessageBody: 'first delivery',
          MessageGroupId: orderId,
          MessageDeduplicationId: event.eventId,
        }),
      );
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: fifoDlq,
          MessageBody: JSON.stringify(event),
          MessageGroupId: orderId,
          MessageDeduplicationId: event.eventId,
        }),
      );
    }
    // Handled and gone; the queue still remembers their deduplication ids.
    await sqs.send(new PurgeQueueCommand({ QueueUrl: fifoSource }));

    const report = await redriveDeadLetters({
      sqs,
      deadLetterQueueUrl: fifoDlq,
      sourceQueueUrl: fifoSource,
      max: 10,
      scanVisibilitySeconds: 5,
    });
    expect(report.moved).toBe(2);
    const back = server.inspectQueue(`${name}.fifo`)!.messages.ready;
    expect(back.map((message) => (JSON.parse(message.body) as { eventType: string }).eventType)).toEqual(['OrderPlaced', 'OrderCancelled']);
    expect(back.map((message) => message.messageGroupId)).toEqual([orderId, orderId]);
    expect(await drain(fifoDlq)).toHaveLength(0);
  });
});
