import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConfig, startEmulators, type Emulators } from '../../local/emulators.js';

// The emulators behind `npm start` answer on this machine only: nothing on the network (a
// workshop's Wi-Fi) can reach queues and tables that check no credentials. fauxqs keeps doing
// everything its own start did: spies, region, any free port, stop().

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
});

afterAll(async () => {
  await emulators?.stop();
});

/** This machine's own addresses other than loopback. */
function nonLoopbackAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((entry) => entry !== undefined && !entry.internal && !entry.address.startsWith('fe80:'))
    .map((entry) => entry!.address);
}

/** Whether a TCP connection to host:port is accepted (refused or no answer in 2 s: false). */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

const portOf = (endpoint: string) => Number(new URL(endpoint).port);

describe('emulators on loopback only', () => {
  it('listen on 127.0.0.1, and not on any other address of this machine', async () => {
    const sqsPort = portOf(emulators.endpoints.sqs);
    const dynamodbPort = portOf(emulators.endpoints.dynamodb);
    // Where the sockets are bound, as the operating system says.
    expect(emulators.addresses.sqs.address).toBe('127.0.0.1');
    expect(emulators.addresses.dynamodb.address).toBe('127.0.0.1');
    expect(await accepts('127.0.0.1', sqsPort)).toBe(true);
    expect(await accepts('127.0.0.1', dynamodbPort)).toBe(true);

    const others = nonLoopbackAddresses();
    // A machine with no other address has nothing to reach them from; the bound address above says it all.
    for (const address of others) {
      expect(await accepts(address, sqsPort), `SQS port on ${address}`).toBe(false);
      expect(await accepts(address, dynamodbPort), `DynamoDB port on ${address}`).toBe(false);
    }
  });

  it('keep what fauxqs’s own start gave: a free port, the region, the message spy and the server methods', async () => {
    expect(emulators.fauxqs.port).toBeGreaterThan(0);
    const sqs = new SQSClient(clientConfig(emulators.endpoints.sqs));
    try {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'loopback-test' }));
      const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'hello' }));
      expect(
        emulators.fauxqs.spy.checkForMessage({ service: 'sqs', queueName: 'loopback-test', messageId: MessageId }, 'published'),
      ).toBeDefined();
      expect(emulators.fauxqs.inspectQueue('loopback-test')).toMatchObject({ arn: 'arn:aws:sqs:us-east-1:000000000000:loopback-test' });
      expect(emulators.fauxqs.inspectQueue('loopback-test')!.messages.ready.map((message) => message.body)).toEqual(['hello']);
      const { queueArn } = emulators.fauxqs.createQueue('made-in-process');
      expect(queueArn).toBe('arn:aws:sqs:us-east-1:000000000000:made-in-process');
    } finally {
      sqs.destroy();
    }
  });

  it('free their ports on stop()', async () => {
    const own = await startEmulators({ sqsPort: 0, dynamodbPort: 0 });
    const ports = [portOf(own.endpoints.sqs), portOf(own.endpoints.dynamodb)];
    await own.stop();
    for (const port of ports) expect(await accepts('127.0.0.1', port)).toBe(false);
  });
});
