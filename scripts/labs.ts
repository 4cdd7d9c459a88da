import { readFileSync } from 'node:fs';
import type { ConsoleState } from '../local/console.js';
import type { RecentLine } from '../local/invocation-log.js';
import { isOrderEventMessage, type QueuedMessage, type QueuedMessageAttribute } from '../lib/queued-message.js';

// The workshop's labs (docs/workshop/): each one's page and its check, which looks at the running
// pipeline (the local runtime's console state, its handlers' recent log lines, fauxqs's
// non-destructive view of a queue) and says, criterion by criterion, whether it is in the state
// the lab leads to. `npm run lab -- check N` prints it; test/e2e/workshop.test.ts runs every
// lab's steps from its page and then its check.

/** A handler's log line as JSON (Powertools Logger), with the function that wrote it. */
export interface LogEntry {
  function: string;
  at: string;
  fields: Record<string, unknown>;
}

/** A message as fauxqs shows it: its attributes in the SQS API's spelling. */
export interface InspectedMessage {
  body: string;
  approximateReceiveCount: number;
  messageAttributes?: Record<string, QueuedMessageAttribute>;
}

/** What fauxqs shows of a queue at GET /_fauxqs/queues/<name>, without receiving anything. */
export interface InspectedQueue {
  name: string;
  attributes: Record<string, string>;
  messages: {
    ready: InspectedMessage[];
    delayed: InspectedMessage[];
    inflight: Array<{ message: InspectedMessage }>;
  };
}

/** What a check reads of the running pipeline. */
export interface LabContext {
  state(): Promise<ConsoleState>;
  logs(): Promise<LogEntry[]>;
  /** undefined when there is no such queue. */
  queue(name: string): Promise<InspectedQueue | undefined>;
  /** The packaged template the runtime runs. */
  template(): Record<string, { Type: string; Properties?: Record<string, unknown> }>;
}

export interface Finding {
  ok: boolean;
  /** What holds (or should). */
  what: string;
  /** What is missing, and what to do, when it does not. */
  missing?: string;
}

export interface Lab {
  number: number;
  title: string;
  /** The pipeline the lab runs on: `npm start` (standard), or `npm start -- --fifo`. */
  queueType: 'standard' | 'fifo';
  /** Under docs/workshop/. */
  file: string;
  check(context: LabContext): Promise<Finding[]>;
}

const finding = (ok: boolean, what: string, missing: string): Finding => (ok ? { ok, what } : { ok, what, missing });

export function parseLogLines(lines: RecentLine[]): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const { line, function: fn, at } of lines) {
    if (!line.startsWith('{')) continue;
    try {
      const fields = JSON.parse(line) as unknown;
      if (typeof fields === 'object' && fields !== null) entries.push({ function: fn, at, fields: fields as Record<string, unknown> });
    } catch {
      // not a JSON line
    }
  }
  return entries;
}

const forOrder = (logs: LogEntry[], orderId: string) => logs.filter((entry) => entry.fields.correlation_id === orderId);
const handled = (logs: LogEntry[], consumer: string, eventType?: string) =>
  logs.filter(
    (entry) =>
      entry.fields.message === 'Handling event' &&
      entry.fields.consumer === consumer &&
      (eventType === undefined || entry.fields.eventType === eventType),
  );
const failedRecords = (logs: LogEntry[], consumer: string) =>
  logs.filter((entry) => entry.fields.consumer === consumer && String(entry.fields.message).startsWith('Record failed'));
/** A consumer's standard queue (its express one, when the stack has the lane, is `lane: 'express'`). */
const consumerOf = (state: ConsoleState, name: string) => {
  const consumer = state.consumers.find((c) => c.name === name && c.lane === 'standard');
  if (!consumer) throw new Error(`The running stack has no consumer ${name}`);
  return consumer;
};
const undecided = (state: ConsoleState) => state.orders.filter((order) => order.status === 'PENDING');
/** Every message a queue holds, in any state, as lib/queued-message.ts reads one (a claim-checked event is an order event too). */
export const queuedMessages = (queue: InspectedQueue | undefined): QueuedMessage[] =>
  queue
    ? [...queue.messages.ready, ...queue.messages.delayed, ...queue.messages.inflight.map((entry) => entry.message)].map((m) => ({
        body: m.body,
        attributes: m.messageAttributes,
      }))
    : [];
const short = (orderId: string) => `${orderId.slice(0, 16)}…`;

export const LABS: Lab[] = [
  {
    number: 1,
    title: 'The pipeline: fan-out and filter policies',
    queueType: 'standard',
    file: '01-pipeline.md',
    async check({ state, logs }) {
      const s = await state();
      const order = s.orders.find((o) => o.status === 'CONFIRMED' && o.stages.shipping?.timeline.some((t) => t.what === 'dispatched'));
      const findings = [
        finding(
          order !== undefined,
          'an order is CONFIRMED, each participant SUCCEEDED, its parcel dispatched',
          `no such order among the latest ${s.orders.length} (${s.orders.map((o) => o.status).join(', ') || 'none'}): place one with \`place\` and wait a few seconds`,
        ),
      ];
      if (!order) return findings;
      const entries = forOrder(await logs(), order.orderId);
      for (const consumer of s.consumers.filter((c) => c.lane === 'standard')) {
        for (const eventType of ['OrderPlaced', 'OrderConfirmed']) {
          const wanted = consumer.eventTypes.includes(eventType);
          const got = handled(entries, consumer.name, eventType).length > 0;
          findings.push(
            finding(
              wanted === got,
              `${consumer.name} ${wanted ? 'received' : 'never received'} ${eventType} for ${short(order.orderId)} (its filter: ${consumer.eventTypes.join(', ')})`,
              got
                ? `${consumer.name} handled ${eventType}, which its filter policy should keep out`
                : `no log line of ${consumer.name} handling it yet`,
            ),
          );
        }
      }
      return findings;
    },
  },
  {
    number: 2,
    title: 'Visibility timeout and at-least-once delivery',
    queueType: 'standard',
    file: '02-visibility-timeout.md',
    async check({ queue }) {
      const q = await queue('workshop-visibility');
      if (!q) return [finding(false, 'the queue workshop-visibility exists', 'create it (step 1)')];
      const messages = [...q.messages.ready, ...q.messages.inflight.map((entry) => entry.message)];
      const most = Math.max(0, ...messages.map((m) => m.approximateReceiveCount));
      return [
        finding(true, 'the queue workshop-visibility exists', ''),
        finding(
          q.attributes.VisibilityTimeout === '5',
          'its visibility timeout is 5 seconds',
          `it is ${q.attributes.VisibilityTimeout} s: create it with VisibilityTimeout 5`,
        ),
        finding(
          most >= 2,
          `a message was received, not deleted, and delivered again (received ${most} times)`,
          messages.length === 0
            ? 'it holds no message: send one (step 2), or it was deleted'
            : `its messages were received at most ${most} time(s): receive again after 5 s`,
        ),
      ];
    },
  },
  {
    number: 3,
    title: 'Partial batch responses',
    queueType: 'standard',
    file: '03-partial-batch-responses.md',
    async check({ state, logs, queue }) {
      const s = await state();
      const payment = consumerOf(s, 'payment');
      const entries = await logs();
      // One invocation (one request id) in which some records failed and the others did not.
      const byInvocation = new Map<string, { handled: number; failed: number }>();
      for (const entry of handled(entries, 'payment')) {
        const id = String(entry.fields.function_request_id);
        byInvocation.set(id, { handled: (byInvocation.get(id)?.handled ?? 0) + 1, failed: byInvocation.get(id)?.failed ?? 0 });
      }
      for (const entry of failedRecords(entries, 'payment')) {
        const id = String(entry.fields.function_request_id);
        const counts = byInvocation.get(id);
        if (counts) counts.failed++;
      }
      const partial = [...byInvocation.values()].find((counts) => counts.failed > 0 && counts.handled > counts.failed);
      const realEventsInDlq = queuedMessages(payment.queue.dlq ? await queue(payment.queue.dlq.name) : undefined).filter(
        isOrderEventMessage,
      ).length;
      return [
        finding(!s.switches.faults.payment, "payment's faults are switched off again", 'switch them off (last step)'),
        finding(
          partial !== undefined,
          partial
            ? `a payment batch of ${partial.handled} record(s) had ${partial.failed} failed: only those came back`
            : 'a payment batch had some records fail and the rest succeed',
          'no such batch in the recent log: switch payment faults on and place several orders at once',
        ),
        finding(
          payment.records.redelivered > 0,
          `failed records were received again (${payment.records.redelivered} redeliveries)`,
          'no payment record was received twice yet',
        ),
        finding(
          undecided(s).length === 0 && realEventsInDlq === 0,
          'every recent order is decided anyway, none of their events in the payment DLQ',
          `${undecided(s).length} recent order(s) still PENDING, ${realEventsInDlq} order event(s) in the payment DLQ: wait for the retries (npm run lab -- until quiet)`,
        ),
      ];
    },
  },
  {
    number: 4,
    title: 'Dead-letter queues, maxReceiveCount and redrive',
    queueType: 'standard',
    file: '04-dead-letter-queues.md',
    async check({ state, logs, queue }) {
      const s = await state();
      const payment = consumerOf(s, 'payment');
      const source = await queue(payment.queue.name);
      const redrivePolicy = JSON.parse(source?.attributes.RedrivePolicy ?? '{}') as { maxReceiveCount?: number | string };
      const bodies = queuedMessages(payment.queue.dlq ? await queue(payment.queue.dlq.name) : undefined);
      const events = bodies.filter(isOrderEventMessage);
      const entries = await logs();
      // An order whose payment record failed its 5 receives, went to the DLQ, and came back.
      const redriven = s.orders.find(
        (order) =>
          order.status === 'CONFIRMED' &&
          failedRecords(forOrder(entries, order.orderId), 'payment').length >= Number(redrivePolicy.maxReceiveCount ?? 5),
      );
      return [
        finding(
          Number(redrivePolicy.maxReceiveCount) > 0,
          `the payment queue moves a message to its DLQ after ${redrivePolicy.maxReceiveCount} receives`,
          'the payment queue has no redrive policy',
        ),
        finding(
          bodies.length > events.length,
          `the payment DLQ holds the poison message, its body intact (${bodies.length - events.length} poison)`,
          'no poison message in the payment DLQ: send one and wait for its receives (npm run lab -- until dlq payment 1)',
        ),
        finding(
          events.length === 0,
          'no real order event is left in the payment DLQ',
          `${events.length} order event(s) still there: fix the cause (switch payment faults off), then npm run redrive -- payment --skip-invalid`,
        ),
        finding(
          redriven !== undefined,
          redriven
            ? `order ${short(redriven.orderId)} failed all its payment receives, was redriven and is CONFIRMED`
            : 'an order whose payment event was dead-lettered is CONFIRMED after the redrive',
          'no such order among the latest: follow steps 4 to 6',
        ),
      ];
    },
  },
  {
    number: 5,
    title: 'Idempotency and duplicate deliveries',
    queueType: 'standard',
    file: '05-idempotency.md',
    async check({ state, logs }) {
      const s = await state();
      const entries = await logs();
      const duplicated = s.consumers.reduce((sum, c) => sum + c.records.duplicated, 0);
      const replayed = entries.some((entry) => entry.fields.message === 'Order accepted' && entry.fields.replayed === true);
      // An order whose OrderPlaced reached payment more than once, charged once.
      const twice = s.orders.find(
        (order) =>
          handled(forOrder(entries, order.orderId), 'payment', 'OrderPlaced').filter((e) => Number(e.fields.receiveCount) === 1).length >=
          2,
      );
      const charges = twice
        ? forOrder(entries, twice.orderId).filter((entry) => entry.fields.message === 'Simulated provider: charged').length
        : 0;
      return [
        finding(
          replayed,
          'a POST /orders replayed with the same Idempotency-Key answered the same order',
          'send the same request twice with one Idempotency-Key (step 1)',
        ),
        finding(!s.switches.duplicates, 'duplicate deliveries are switched off again', 'switch them off (last step)'),
        finding(
          duplicated > 0,
          `records were delivered twice on purpose (${duplicated})`,
          'switch duplicate deliveries on and place an order',
        ),
        finding(
          twice !== undefined && twice.status === 'CONFIRMED' && charges === 1,
          twice
            ? `order ${short(twice.orderId)}: OrderPlaced delivered twice to payment, charged ${charges} time(s), ${twice.status}`
            : 'an order delivered twice is CONFIRMED and charged once',
          twice ? `it is ${twice.status} with ${charges} charge(s)` : 'no order among the latest was delivered twice to payment',
        ),
      ];
    },
  },
  {
    number: 6,
    title: 'Long polling and batching',
    queueType: 'standard',
    file: '06-long-polling-and-batching.md',
    async check({ logs, queue }) {
      const q = await queue('workshop-polling');
      const entries = await logs();
      const batchSizes = new Map<string, number>();
      for (const entry of entries.filter((e) => e.fields.message === 'Handling event' && e.fields.consumer === 'inventory')) {
        const id = String(entry.fields.function_request_id);
        batchSizes.set(id, (batchSizes.get(id) ?? 0) + 1);
      }
      const largest = Math.max(0, ...batchSizes.values());
      return [
        finding(
          Number(q?.attributes.ReceiveMessageWaitTimeSeconds ?? 0) > 0,
          `the queue workshop-polling long-polls by default (ReceiveMessageWaitTimeSeconds ${q?.attributes.ReceiveMessageWaitTimeSeconds})`,
          q ? 'its ReceiveMessageWaitTimeSeconds is 0: set it (step 2)' : 'create the queue workshop-polling (step 2)',
        ),
        finding(
          largest >= 3,
          `one inventory invocation handled a batch of ${largest} records`,
          `the largest inventory batch in the recent log has ${largest} record(s): place a burst of orders at once (step 4)`,
        ),
      ];
    },
  },
  {
    number: 7,
    title: 'Backpressure with maximum concurrency',
    queueType: 'standard',
    file: '07-backpressure.md',
    async check({ state }) {
      const s = await state();
      const payment = consumerOf(s, 'payment');
      const ceiling = payment.maximumConcurrency ?? 0;
      return [
        finding(!s.switches.faults.payment, "payment's latency is switched off again", 'switch it off (last step)'),
        finding(
          ceiling > 0 && payment.maxConcurrent === ceiling,
          `payment ran ${payment.maxConcurrent} invocations at once, its ceiling (MaximumConcurrency ${ceiling}), never more`,
          `payment ran at most ${payment.maxConcurrent} at once: place a bigger burst while its latency is on`,
        ),
        finding(
          payment.queue.visible === 0 && payment.queue.inFlight === 0 && undecided(s).length === 0,
          'the backlog drained: the payment queue is empty, every recent order decided',
          `${payment.queue.visible} visible, ${payment.queue.inFlight} in flight, ${undecided(s).length} order(s) PENDING: wait (npm run lab -- until quiet)`,
        ),
      ];
    },
  },
  {
    number: 8,
    title: 'The circuit breaker during a provider outage',
    queueType: 'standard',
    file: '08-circuit-breaker.md',
    async check({ state, logs, queue }) {
      const s = await state();
      const entries = await logs();
      const failingFast = failedRecords(entries, 'payment').filter((entry) => JSON.stringify(entry.fields).includes('circuit is open'));
      const orders = [...new Set(failingFast.map((entry) => String(entry.fields.correlation_id)))];
      const decided = orders.map((id) => s.orders.find((order) => order.orderId === id));
      const payment = consumerOf(s, 'payment');
      const events = queuedMessages(payment.queue.dlq ? await queue(payment.queue.dlq.name) : undefined).filter(isOrderEventMessage);
      return [
        finding(!s.switches.outages.provider, 'the provider outage is over', 'switch it off (step 4)'),
        finding(
          failingFast.length > 0,
          `the breaker opened: ${failingFast.length} payment record(s) failed fast without calling the provider`,
          'no record failed on an open circuit yet: place orders during the outage and wait about 10 s',
        ),
        finding(
          decided.length > 0 && decided.every((order) => order?.status === 'CONFIRMED'),
          `the orders caught by the outage are CONFIRMED (${orders.length})`,
          `${decided.filter((order) => order?.status !== 'CONFIRMED').length} of them not yet: wait for their retries (npm run lab -- until quiet)`,
        ),
        finding(events.length === 0, 'none of them ended in the payment DLQ', `${events.length} order event(s) in the payment DLQ`),
      ];
    },
  },
  {
    number: 9,
    title: 'Observability: correlation ids, metrics, alarms, npm run status',
    queueType: 'standard',
    file: '09-observability.md',
    async check({ state, logs, template }) {
      const s = await state();
      const entries = await logs();
      const order = s.orders.find((o) => o.status === 'CONFIRMED');
      const writers = order ? new Set(forOrder(entries, order.orderId).map((entry) => entry.function)) : new Set<string>();
      const expected = ['createOrder', ...new Set(s.consumers.map((c) => c.name))];
      const metrics = entries.some((entry) => {
        const aws = entry.fields._aws as { CloudWatchMetrics?: Array<{ Metrics?: Array<{ Name?: string }> }> } | undefined;
        return aws?.CloudWatchMetrics?.some((m) => m.Metrics?.some((metric) => metric.Name === 'OrdersPlaced')) === true;
      });
      const alarms = Object.values(template()).filter(
        (resource) => resource.Type === 'AWS::CloudWatch::Alarm' && String(resource.Properties?.AlarmName ?? '').endsWith('-dlq-not-empty'),
      ).length;
      return [
        finding(
          order !== undefined && expected.every((fn) => writers.has(fn)),
          order
            ? `order ${short(order.orderId)}: log lines with its correlation_id from ${[...writers].sort().join(', ')}`
            : "a CONFIRMED order's log lines carry its id",
          order ? `none yet from ${expected.filter((fn) => !writers.has(fn)).join(', ')}` : 'place an order (step 1)',
        ),
        finding(metrics, 'the metric OrdersPlaced was emitted (an EMF line in the log)', 'place an order (step 1)'),
        finding(
          alarms === s.consumers.length,
          `the stack declares one dlq-not-empty alarm per consumer queue (${alarms})`,
          `${alarms} dlq-not-empty alarm(s) for ${s.consumers.length} consumer(s)`,
        ),
      ];
    },
  },
  {
    number: 10,
    title: 'FIFO versus standard',
    queueType: 'fifo',
    file: '10-fifo.md',
    async check({ state, logs, queue }) {
      const s = await state();
      const q = await queue('workshop-order.fifo');
      const messages = q
        ? [
            ...q.messages.ready.map((m) => ({ ...m, inFlight: false })),
            ...q.messages.inflight.map((entry) => ({ ...entry.message, inFlight: true })),
          ]
        : [];
      const group = (m: object) => (m as { messageGroupId?: string }).messageGroupId;
      const groupA = messages.filter((m) => group(m) === 'ord_A');
      const entries = await logs();
      const order = s.orders.find((o) => o.status === 'CONFIRMED');
      const shipping = order ? handled(forOrder(entries, order.orderId), 'shipping').map((e) => String(e.fields.eventType)) : [];
      return [
        finding(
          s.queueType === 'fifo',
          'the pipeline runs on FIFO queues (npm start -- --fifo)',
          'it runs on standard queues: restart it with npm start -- --fifo',
        ),
        finding(
          q?.attributes.FifoQueue === 'true' && messages.filter((m) => m.body.startsWith('A1')).length === 1,
          'workshop-order.fifo kept the event sent twice with one deduplication id once',
          q
            ? `it holds ${messages.filter((m) => m.body.startsWith('A1')).length} copies of A1`
            : 'create the queue workshop-order.fifo (step 2)',
        ),
        finding(
          groupA.some((m) => m.inFlight) && groupA.some((m) => !m.inFlight) && messages.some((m) => group(m) === 'ord_B' && m.inFlight),
          "ord_A's later messages wait while its first is in flight, and ord_B's was delivered meanwhile",
          'receive as in step 3 (within the 60 s visibility timeout; send the messages again if it ran out)',
        ),
        finding(
          order !== undefined &&
            shipping.indexOf('OrderPlaced') >= 0 &&
            shipping.indexOf('OrderPlaced') < shipping.indexOf('OrderConfirmed'),
          order
            ? `order ${short(order.orderId)}: shipping handled ${shipping.join(', then ')}`
            : 'an order is CONFIRMED on the FIFO pipeline',
          order ? 'shipping has not handled both of its events yet' : 'place one (step 4)',
        ),
      ];
    },
  },
  {
    number: 11,
    title: 'Claim-check for big orders',
    queueType: 'standard',
    file: '11-claim-check.md',
    async check({ state, logs }) {
      const s = await state();
      const big = s.orders.find((order) => order.lines >= 1000);
      const entries = big ? forOrder(await logs(), big.orderId) : [];
      const deleted = entries.some((entry) => String(entry.fields.message).includes('its claim-check object is deleted'));
      const handledBy = new Set(entries.filter((e) => e.fields.message === 'Handling event').map((e) => String(e.fields.consumer)));
      return [
        finding(
          big?.status === 'CONFIRMED',
          big ? `order ${short(big.orderId)} of ${big.lines} lines is ${big.status}` : 'an order of thousands of lines is CONFIRMED',
          big ? 'wait for its decision (npm run lab -- until quiet)' : 'place one: npm run order -- --lines 5000',
        ),
        finding(
          big !== undefined && ['inventory', 'payment', 'shipping'].every((name) => handledBy.has(name)),
          `every participant handled its OrderPlaced from the pointer (${[...handledBy].sort().join(', ')})`,
          'not every participant has logged handling it yet',
        ),
        finding(
          deleted,
          'its stored event was deleted once every participant was done',
          'no deletion of its claim-check object in the log yet',
        ),
      ];
    },
  },
  {
    number: 12,
    title: 'The express lane',
    queueType: 'standard',
    file: '12-express-lane.md',
    async check({ state }) {
      const s = await state();
      const express = s.orders.find((order) => order.express);
      const lanes = s.consumers.filter((c) => c.lane === 'express');
      // Among the latest orders, the standard ones placed before it and decided after it: the backlog it overtook.
      const before = express ? s.orders.filter((order) => !order.express && order.createdAt < express.createdAt) : [];
      const overtaken = before.filter(
        (order) => express?.decidedAt !== undefined && (order.decidedAt === undefined || order.decidedAt > express.decidedAt),
      ).length;
      return [
        finding(!s.switches.faults.payment, "payment's latency is switched off again", 'switch it off (step 4)'),
        finding(
          express?.status === 'CONFIRMED',
          express ? `express order ${short(express.orderId)} is ${express.status}` : 'an express order is CONFIRMED',
          express ? 'wait for its decision' : 'place one with "shippingSpeed": "express" (step 3)',
        ),
        finding(
          lanes.length > 0 && lanes.every((c) => c.records.received > 0),
          `every express queue delivered records (${lanes.map((c) => `${c.key}: ${c.records.received}`).join(', ')})`,
          lanes.length === 0 ? 'this stack has no express queues' : 'an express queue has delivered nothing yet',
        ),
        finding(
          overtaken > 0,
          `it was decided before ${overtaken} of the ${before.length} latest standard orders placed before it`,
          'it overtook no standard order among the latest: queue the backlog first (step 2), then place it at once',
        ),
      ];
    },
  },
];

/** A lab's page, for the test that runs its steps. */
export function labPage(lab: Lab): string {
  return readFileSync(new URL(`../docs/workshop/${lab.file}`, import.meta.url), 'utf8');
}
