import { createHash } from 'node:crypto';
import { type AttributeValue, DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeCreatedOrder } from '../support/stored-order.js';
import { clientConfig } from '../../local/emulators.js';
import type { OrderPlaced } from '../../lib/events.js';
import { startProvisionedStack, type ProvisionedStack } from '../support/provisioned-stack.js';
import { lambdaContext, sqsRecord } from '../support/sqs-events.js';
import { SAMPLE_ADDRESS } from '../../local/sample-order.js';

// Powertools idempotency as the payment consumer configures it around the provider calls
// (lib/payments.ts), on the idempotency table provisioned from the packaged template: the record
// Powertools writes expires through the TTL attribute the template names, and an in-progress
// record left by an invocation that died mid-call blocks the charge only until the Lambda deadline
// it recorded (the consumer registers the Lambda context), after which a delivery charges.

type Handler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;

let stack: ProvisionedStack;
let dynamodb: DynamoDBClient;
let handler: Handler;
let orders: typeof import('../../lib/order-store.js');
let awsClients: typeof import('../../lib/aws-clients.js');
let idempotencyTable: string;
let paymentQueueArn: string;

/** What Powertools wrote for the first event this file delivers: attribute names read from it. */
let written: { record: Record<string, AttributeValue>; startedAt: number; finishedAt: number; timeoutMs: number };

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The key a charge's record is stored under: its key prefix, then the base64 MD5 of the JSON of the
 * provider's idempotency key (the order id), as Powertools hashes the JMESPath selection. Checked
 * against the record Powertools itself writes in the first test.
 */
const keyOf = (event: OrderPlaced) => `payment-charge#${createHash('md5').update(JSON.stringify(event.orderId)).digest('base64')}`;

async function recordOf(event: OrderPlaced): Promise<Record<string, AttributeValue> | undefined> {
  return (await dynamodb.send(new GetItemCommand({ TableName: idempotencyTable, Key: { id: { S: keyOf(event) } }, ConsistentRead: true })))
    .Item;
}

/** The single attribute of a record matching a test, by name; fails if none or several match. */
function attributeWhere(record: Record<string, AttributeValue>, what: string, test: (value: AttributeValue) => boolean): string {
  const names = Object.entries(record)
    .filter(([, value]) => test(value))
    .map(([name]) => name);
  expect(names, what).toHaveLength(1);
  return names[0]!;
}

const numberIn = (low: number, high: number) => (value: AttributeValue) =>
  value.N !== undefined && Number(value.N) >= low && Number(value.N) <= high;

/** The names Powertools uses, each read from the record it wrote in beforeAll (by its value). */
const attributeName = {
  status: () => attributeWhere(written.record, 'the status attribute', (value) => value.S === 'COMPLETED'),
  /** Epoch seconds in the future (a year at most): when the record may be deleted. */
  expiry: () => attributeWhere(written.record, 'an expiry in epoch seconds', numberIn(nowSeconds(), nowSeconds() + 366 * 86_400)),
  /** Epoch milliseconds: the invocation's start plus the time it had left, from its Lambda context. */
  inProgressExpiry: () =>
    attributeWhere(
      written.record,
      'an in-progress deadline from the Lambda context',
      numberIn(written.startedAt, written.finishedAt + written.timeoutMs),
    ),
};

async function placeOrder(customer: string, token = 'tok_visa'): Promise<OrderPlaced> {
  const order = await storeCreatedOrder(
    customer,
    {
      items: [{ sku: 'SKU-IDEMPOTENCY', quantity: 1 }],
      payment: { token },
      shippingAddress: { ...SAMPLE_ADDRESS },
    },
    undefined,
  );
  return order.placedEvent;
}

/** One delivery of the event to the payment consumer, as Lambda invokes it; the ids of the failed records. */
async function deliver(event: OrderPlaced, timeoutMs = 10_000, receiveCount = 1): Promise<string[]> {
  const record = sqsRecord(event, { eventSourceARN: paymentQueueArn }, receiveCount);
  const response = await handler({ Records: [record] }, lambdaContext('order-pipeline-local-payment', timeoutMs));
  return response.batchItemFailures.map((failure) => failure.itemIdentifier);
}

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeAll(async () => {
  stack = await startProvisionedStack();
  idempotencyTable = stack.table('IdempotencyTable');
  paymentQueueArn = stack.queue('PaymentQueue').arn;
  dynamodb = new DynamoDBClient(clientConfig(stack.emulators.endpoints.dynamodb));
  Object.assign(process.env, {
    RETRY_BACKOFF_BASE_SECONDS: '0',
    POWERTOOLS_LOG_LEVEL: process.env.DEBUG_LOG ?? 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  [orders, awsClients] = await Promise.all([import('../../lib/order-store.js'), import('../../lib/aws-clients.js')]);
  handler = (await import('../../functions/payment.js')).handler;

  // One ordinary delivery, to see the record Powertools writes.
  const event = await placeOrder('cus_idem_first');
  const timeoutMs = 10_000;
  const startedAt = Date.now();
  expect(await deliver(event, timeoutMs)).toEqual([]);
  const finishedAt = Date.now();
  const record = await recordOf(event);
  if (!record) throw new Error(`No idempotency record under ${keyOf(event)}: has the key layout changed?`);
  written = { record, startedAt, finishedAt, timeoutMs };
}, 120_000);

afterAll(async () => {
  dynamodb?.destroy();
  await stack?.stop();
});

describe('the idempotency records Powertools writes', () => {
  it('expire through the TTL attribute the template declares, in epoch seconds', () => {
    const ttl = stack.properties('IdempotencyTable').TimeToLiveSpecification as { AttributeName: string; Enabled: boolean };
    expect(ttl).toMatchObject({ Enabled: true });
    // The attribute Powertools wrote the expiry to, found by its value, not by its name.
    const expiry = attributeName.expiry();
    expect(ttl.AttributeName).toBe(expiry);
    // DynamoDB TTL ignores anything but a Number of epoch seconds.
    expect(written.record[expiry]).toEqual({ N: expect.stringMatching(/^\d{10}$/) });
  });

  it('carry an in-progress deadline: the invocation start plus the time its Lambda context gave it', () => {
    const inProgressExpiry = attributeName.inProgressExpiry();
    expect(Number(written.record[inProgressExpiry]!.N)).toBeGreaterThanOrEqual(written.startedAt + written.timeoutMs - 1000);
  });
});

describe('an in-progress record left by a crash', () => {
  it('written with its in-progress deadline still ahead, blocks the event; once that deadline has passed, the work runs', async () => {
    const [status, expiry, inProgressExpiry] = [attributeName.status(), attributeName.expiry(), attributeName.inProgressExpiry()];
    const event = await placeOrder('cus_idem_written');
    // What an invocation killed mid-work leaves: INPROGRESS, its deadline a minute ahead.
    await dynamodb.send(
      new PutItemCommand({
        TableName: idempotencyTable,
        Item: {
          id: { S: keyOf(event) },
          [status]: { S: 'INPROGRESS' },
          [expiry]: { N: String(nowSeconds() + 3600) },
          [inProgressExpiry]: { N: String(Date.now() + 60_000) },
        },
      }),
    );

    // Before the deadline: the record is reported failed (retried later, not deleted), and no charge is made.
    const blocked = await deliver(event);
    expect(blocked).toHaveLength(1);
    expect((await orders.findOrder(event.orderId))?.stages.payment.status).toBe('PENDING');

    // The deadline passes (the crashed invocation's Lambda timeout).
    await dynamodb.send(
      new UpdateItemCommand({
        TableName: idempotencyTable,
        Key: { id: { S: keyOf(event) } },
        UpdateExpression: 'SET #deadline = :past',
        ExpressionAttributeNames: { '#deadline': inProgressExpiry },
        ExpressionAttributeValues: { ':past': { N: String(Date.now() - 1000) } },
      }),
    );
    expect(await deliver(event, 10_000, 2)).toEqual([]);
    expect((await orders.findOrder(event.orderId))?.payment).toMatchObject({ outcome: 'SUCCEEDED' });
    expect((await recordOf(event))?.[status]).toEqual({ S: 'COMPLETED' });
  });

  it("left by an invocation that timed out mid-work, blocks the event until that invocation's deadline, then the work runs", async () => {
    const status = attributeName.status();
    // A flaky card: the simulated provider stores its attempts, so its call can be frozen.
    const event = await placeOrder('cus_idem_crashed', 'tok_flaky');
    // The "crash": the provider call never returns, so the invocation times out there, after
    // Powertools wrote its in-progress record and before any charge.
    let frozen = false;
    const stackOfClient = awsClients.dynamoDbClient().middlewareStack;
    stackOfClient.add(
      (next) => async (args) => {
        const input = args.input as { TableName?: string };
        if (!frozen && input.TableName === stack.table('PaymentsTable') && JSON.stringify(args.input).includes(event.orderId)) {
          frozen = true;
          return new Promise<never>(() => {});
        }
        return next(args);
      },
      { step: 'initialize', name: 'freezeOneOrderRead' },
    );
    try {
      const timeoutMs = 3000;
      const startedAt = Date.now();
      // The invocation times out there: Lambda would stop it at its deadline. In process nothing
      // stops it (the handler has no early timeout, lib/lambda-invocation.ts), so the test stops waiting.
      const dead = Promise.race([
        deliver(event, timeoutMs).then(
          () => 'returned',
          () => 'failed',
        ),
        new Promise((resolve) => setTimeout(() => resolve('timed out'), timeoutMs)),
      ]);
      await until('the invocation to reach the provider call', () => frozen);
      const record = (await recordOf(event))!;
      expect(record[status]).toEqual({ S: 'INPROGRESS' });
      // The deadline it recorded: the invocation's start plus its timeout, in epoch milliseconds.
      const deadline = Number(record[attributeWhere(record, 'the in-progress deadline', numberIn(startedAt, Date.now() + timeoutMs))]!.N);
      expect(deadline).toBeGreaterThanOrEqual(startedAt + timeoutMs - 200);

      // Redelivered before that deadline: refused as in progress, the provider not called.
      expect(await deliver(event, 10_000, 2)).toHaveLength(1);
      const attempts = async () =>
        (
          await dynamodb.send(
            new GetItemCommand({
              TableName: stack.table('PaymentsTable'),
              Key: { orderId: { S: event.orderId }, entryId: { S: 'SIMULATOR#ATTEMPTS' } },
            }),
          )
        ).Item;
      expect(await attempts()).toBeUndefined();

      // After it: the work runs.
      expect(await dead).toBe('timed out');
      await until("the dead invocation's deadline", () => Date.now() > deadline);
      // After it: the charge is tried again; the flaky card fails twice (each failure clears the
      // in-progress record, so the next delivery may call again), then is charged.
      const failures: number[] = [];
      for (let receive = 3; receive < 6; receive += 1) failures.push((await deliver(event, 10_000, receive)).length);
      expect(failures).toEqual([1, 1, 0]);
      expect(await attempts()).toMatchObject({ attempts: { N: '3' } });
      expect((await orders.findOrder(event.orderId))?.payment).toMatchObject({ outcome: 'SUCCEEDED' });
      expect((await recordOf(event))?.[status]).toEqual({ S: 'COMPLETED' });
    } finally {
      stackOfClient.remove('freezeOneOrderRead');
    }
  });
});

describe('a charge and a refund at once, in one execution environment', () => {
  it('each keeps its own record: the refund is made, not answered with the charge', async () => {
    const { onceEach } = await import('../../lib/payments.js');
    const [charged, refunded] = [await placeOrder('cus_idem_both_charge'), await placeOrder('cus_idem_both_refund')];
    const calls: string[] = [];
    let refundStarted: () => void = () => undefined;
    const refundHasStarted = new Promise<void>((resolve) => {
      refundStarted = resolve;
    });
    // The charge is still at the provider when the refund, another record of the same batch, begins.
    const provider = {
      charge: async (request: { idempotencyKey: string }) => {
        calls.push(`charge ${request.idempotencyKey}`);
        await refundHasStarted;
        return { status: 'succeeded' as const, chargeId: `ch_${request.idempotencyKey}` };
      },
      refund: async (request: { idempotencyKey: string }) => {
        calls.push(`refund ${request.idempotencyKey}`);
        refundStarted();
        return { status: 'refunded' as const, refundId: `re_${request.idempotencyKey}` };
      },
    };
    const guarded = onceEach(provider);
    const [charge, refund] = await Promise.all([
      guarded.charge({ idempotencyKey: charged.orderId, token: 'tok_visa', amount: 1000 }),
      guarded.refund({ idempotencyKey: refunded.orderId, chargeId: `ch_${refunded.orderId}`, amount: 1000 }),
    ]);
    expect(charge).toEqual({ status: 'succeeded', chargeId: `ch_${charged.orderId}` });
    expect(refund).toEqual({ status: 'refunded', refundId: `re_${refunded.orderId}` });

    // Each stored under its own operation's prefix, COMPLETED: a retry is answered from it.
    const status = attributeName.status();
    const stored = async (prefix: string, orderId: string) =>
      (
        await dynamodb.send(
          new GetItemCommand({
            TableName: idempotencyTable,
            Key: { id: { S: `${prefix}#${createHash('md5').update(JSON.stringify(orderId)).digest('base64')}` } },
            ConsistentRead: true,
          }),
        )
      ).Item?.[status];
    expect(await stored('payment-charge', charged.orderId)).toEqual({ S: 'COMPLETED' });
    expect(await stored('payment-refund', refunded.orderId)).toEqual({ S: 'COMPLETED' });
    expect(await stored('payment-refund', charged.orderId)).toBeUndefined();
    // The charged order's refund, later: made at the provider, not answered with its charge.
    expect(await guarded.refund({ idempotencyKey: charged.orderId, chargeId: `ch_${charged.orderId}`, amount: 1000 })).toEqual({
      status: 'refunded',
      refundId: `re_${charged.orderId}`,
    });
    expect(calls).toEqual([`charge ${charged.orderId}`, `refund ${refunded.orderId}`, `refund ${charged.orderId}`]);
  });
});
