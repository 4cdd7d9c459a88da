import {
  CreateQueueCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { FauxqsServer } from 'fauxqs';
import { startFauxqsOnLoopback } from '../../local/fauxqs-loopback.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { redriveDeadLetters } from '../../lib/dlq-redrive.js';
import { parseOrderEvent } from '../../lib/queue-consumer.js';
import { orderIdOf, orderPlaced } from '../support/sqs-events.js';

let server: FauxqsServer;
let sqs: SQSClient;
let dlqUrl: string;
let sourceUrl: string;
let run = 0;

const isOrderEvent = (message: Message) => {
  try {
    parseOrderEvent(message.Body ?? '');
    return true;
  } catch {
    return false;
  }
};

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
  for (const orderId of [orderIdOf('a'), orderIdOf('b'), orderIdOf('c')]) {
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: dlqUrl,
        MessageBody: JSON.stringify(orderPlaced(orderId)),
        MessageAttributes: { eventType: { DataType: 'String', StringValue: 'OrderPlaced' } },
      }),
    );
  }
  await sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: 'poison: never an order' }));
});

describe('redriveDeadLetters (receive, send, delete)', () => {
  it('moves the order events back with body and attributes, leaving the poison in the DLQ', async () => {
    const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl, select: isOrderEvent, scanVisibilitySeconds: 5 });
    expect(report).toMatchObject({ method: 'receive-send-delete', moved: 3, skipped: 1 });
    const moved = await drain(sourceUrl);
    expect(moved.map((m) => parseOrderEvent(m.Body ?? '').orderId).sort()).toEqual([orderIdOf('a'), orderIdOf('b'), orderIdOf('c')].sort());
    expect(moved.every((m) => m.MessageAttributes?.eventType?.StringValue === 'OrderPlaced')).toBe(true);
    expect((await drain(dlqUrl)).map((m) => m.Body)).toEqual(['poison: never an order']);
  });

  it('moves nothing on a dry run and leaves every message visible', async () => {
    const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl, dryRun: true, select: isOrderEvent });
    expect(report.moved).toBe(0);
    expect(report.messages.filter((m) => m.selected)).toHaveLength(3);
    expect(await drain(sourceUrl)).toHaveLength(0);
    expect(await drain(dlqUrl)).toHaveLength(4);
  });

  it('stops after --max messages', async () => {
    const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl, max: 2, scanVisibilitySeconds: 5 });
    expect(report.moved).toBe(2);
    expect(await drain(sourceUrl)).toHaveLength(2);
    expect(await drain(dlqUrl)).toHaveLength(2);
  });

  it('falls back from StartMessageMoveTask where the endpoint lacks it, moving everything', async () => {
    const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: dlqUrl, sourceQueueUrl: sourceUrl });
    expect(report).toMatchObject({ method: 'receive-send-delete', moved: 4 });
    expect(await drain(dlqUrl)).toHaveLength(0);
  });
});
