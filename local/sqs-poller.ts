// The SQS side of a Lambda event source mapping: long-polls a queue, gathers batches, invokes the
// function with them and deletes what succeeded. What fails is left alone: it reappears after the
// queue's visibility timeout and, after maxReceiveCount receives, SQS moves it to the DLQ.
//
// On a FIFO queue, as Lambda's FIFO event source: records go to the function in the order SQS
// returned them (in order within each message group), and no batch holding a group is invoked while
// another batch of that group is in flight. SQS already returns nothing of a group while any of its
// messages is in flight; the poller holds to it even when that lock lapses (a visibility timeout
// shorter than an invocation) and when it delivers a record twice on purpose.

import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { seededRandom } from '../lib/fault-injection.js';
import type { EnvironmentClass, LambdaFunction } from './lambda-environment.js';
import type { InvocationLog } from './invocation-log.js';

export interface SqsEventSourceMapping {
  function: LambdaFunction;
  queueUrl: string;
  queueArn: string;
  region: string;
  /** Records per invocation (Lambda's default 10). */
  batchSize: number;
  /** How long to keep gathering records for a batch (Lambda's default 0). */
  maximumBatchingWindowSeconds: number;
  /** Concurrent invocations this mapping may run (ScalingConfig.MaximumConcurrency). */
  maximumConcurrency: number;
  /**
   * The function's environments its invocations run in: foreground by default; background for a
   * standard lane beside an express one (lambda-environment.ts, EnvironmentClass).
   */
  environmentClass?: EnvironmentClass;
  /**
   * Lane priority, locally (LOCAL_LANE_PRIORITY): an `express` mapping holds the gate while a batch
   * of it is in hand; a `standard` one starts no batch while the gate is held (LaneGate).
   */
  laneGate?: { gate: LaneGate; lane: 'express' | 'standard' };
  /** FunctionResponseTypes includes ReportBatchItemFailures. */
  reportBatchItemFailures: boolean;
  /** The queue is a FIFO queue (its FifoQueue attribute). */
  fifo?: boolean;
  /**
   * WaitTimeSeconds of the first receive of each batch: 20 (long polling, what Lambda does) by
   * default; 0 is short polling, a naive consumer's loop (`npm run bench` compares the two).
   */
  receiveWaitTimeSeconds?: number;
  /**
   * Probability (0-1) that a record is delivered twice on purpose: the batch is invoked as usual
   * and a second invocation gets the chosen records again, as SQS's at-least-once delivery may do.
   * That invocation takes a concurrency slot like any other: it runs next to the batch's when one
   * is free, after it otherwise. Local testing only; 0 by default. The function's environment
   * variable LOCAL_DUPLICATE_DELIVERY_RATE (set through environmentOverrides) takes precedence.
   */
  duplicateDeliveryRate?: number;
  /** Seeds the duplicate choice (mixed with the function's name); the function's FAULT_SEED by default. */
  duplicateDeliverySeed?: number;
  /**
   * Largest event handed to the function, as Lambda measures it: the JSON of the SQS event in
   * UTF-8 bytes. Lambda's synchronous invocation payload limit (LAMBDA_MAX_SYNC_PAYLOAD_BYTES) by
   * default; tests set a small one, since ten SQS messages cannot reach 6 MB.
   */
  maxEventBytes?: number;
}

export interface EventSourceStats {
  batches: number;
  records: number;
  deleted: number;
  /** Records left on the queue by a failed, timed-out or partially failed batch. */
  failedRecords: number;
  /** Batches that failed as a whole: thrown error, timeout, invalid batch response. */
  failedBatches: number;
  /** Invocations running now, deliberate duplicate deliveries included, and the most at once. */
  running: number;
  maxConcurrent: number;
  /** Records received but handed straight back (visibility 0) because the event was full. */
  releasedRecords: number;
  /** Records delivered a second time on purpose (duplicateDeliveryRate), and the extra invocations. */
  duplicatedRecords: number;
  duplicateInvocations: number;
  /** Records received with ApproximateReceiveCount > 1: redeliveries after a failure, timeout or crash. */
  redeliveredRecords: number;
  /** FIFO: batches that waited for an earlier batch of one of their message groups to finish. */
  groupWaits: number;
  /** Standard-lane batches held back while an express batch was in hand (LaneGate). */
  laneWaits: number;
  /** Receives held back until an environment could run their batch at once (canStartNow). */
  environmentWaits: number;
  /**
   * FIFO: records reported successful although an earlier record of their group in the same batch
   * failed. Lambda deletes them as reported, and the group's order is broken: a FIFO consumer must
   * report the rest of a failed group failed (Powertools' skipGroupOnError does).
   */
  outOfOrderSuccesses: number;
}

/** SQS allows at most 10 messages per ReceiveMessage and per DeleteMessageBatch. */
const SQS_MAX_MESSAGES = 10;
/** The longest long poll SQS allows. */
const SQS_MAX_WAIT_SECONDS = 20;
/** Lambda's synchronous invocation payload limit (6 MB): an SQS event is never larger. */
export const LAMBDA_MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** `{"Records":[]}`: an event's bytes before its records; each record adds its JSON and a comma. */
const EMPTY_EVENT_BYTES = Buffer.byteLength(JSON.stringify({ Records: [] }));

/**
 * The rest of lane priority in the local runtime. Background environments (lambda-environment.ts)
 * yield the cores, but not the main thread: the emulators serve requests in arrival order, and a
 * standard backlog drained at full concurrency keeps its queue of requests long, so an express
 * order's requests wait behind it (express p95 4.9x of alone on a quiet machine). On AWS the lanes
 * share neither. So while any express batch is in hand the gate is closed: the standard lane's
 * pollers receive nothing and start no batch; the batches already running finish. It stays closed
 * at most STANDARD_LANE_MAX_WAIT_MS at a time, then opens for as long whatever the express lane
 * does, so that a steady express stream takes at most half of the standard lane's time and a burst
 * (the bench's 50 express orders) takes it only while it lasts.
 */
export class LaneGate {
  #held = 0;
  /** When the current closed period began (or begins, after an open window). */
  #closedSince = 0;
  #openUntil = 0;
  #waiting: Array<() => void> = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Whether an express batch is in hand (the gate may still be in an open window). */
  get held(): boolean {
    return this.#held > 0;
  }

  /** An express batch is in hand. */
  hold(): void {
    if (this.#held++ === 0) this.#closedSince = Math.max(this.#now(), this.#openUntil);
  }

  release(): void {
    this.#held--;
    if (this.#held === 0) for (const wake of this.#waiting.splice(0)) wake();
  }

  /** Until when a standard poller must wait now; undefined when the gate is open. */
  closedUntil(): number | undefined {
    const now = this.#now();
    if (this.#held === 0 || now < this.#openUntil) return undefined;
    const closedEnds = this.#closedSince + STANDARD_LANE_MAX_WAIT_MS;
    if (now < closedEnds) return closedEnds;
    // Closed for its whole allowance: open as long, then closed again if express still holds it.
    this.#openUntil = now + STANDARD_LANE_MAX_WAIT_MS;
    this.#closedSince = this.#openUntil;
    return undefined;
  }

  /** Resolves once the gate is open: no express batch in hand, its closed period over, or aborted. */
  async open(signal: AbortSignal): Promise<void> {
    const until = this.closedUntil();
    if (until === undefined || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        const index = this.#waiting.indexOf(done);
        if (index >= 0) this.#waiting.splice(index, 1);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - this.#now()));
      signal.addEventListener('abort', done, { once: true });
      this.#waiting.push(done);
    });
  }
}

export const STANDARD_LANE_MAX_WAIT_MS = 2_000;

/**
 * How often a poller held back for an environment looks again by itself, besides being woken when
 * one is freed: an environment of another function becomes one that may make way with time alone.
 */
const ENVIRONMENT_RECHECK_MS = 100;

export class SqsPoller {
  readonly mapping: SqsEventSourceMapping;
  readonly #sqs: SQSClient;
  readonly #log: InvocationLog;
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  /** FIFO: each message group with a batch in flight, and that batch's end. */
  readonly #groupsInFlight = new Map<string, Promise<void>>();
  /**
   * Concurrency slots (maximumConcurrency of them): one per invocation, a deliberate duplicate's
   * included, and one held by the poller while it gathers a batch.
   */
  #slotsInUse = 0;
  readonly #pollerWaiting: Array<() => void> = [];
  readonly #duplicatesWaiting: Array<() => void> = [];
  #loop: Promise<void> | undefined;
  /** False while disabled (as UpdateEventSourceMapping Enabled: false): nothing is received. */
  #enabled = true;
  readonly #enableWaiting: Array<() => void> = [];
  readonly #stats: EventSourceStats = {
    batches: 0,
    records: 0,
    deleted: 0,
    failedRecords: 0,
    failedBatches: 0,
    running: 0,
    maxConcurrent: 0,
    releasedRecords: 0,
    duplicatedRecords: 0,
    duplicateInvocations: 0,
    redeliveredRecords: 0,
    groupWaits: 0,
    laneWaits: 0,
    environmentWaits: 0,
    outOfOrderSuccesses: 0,
  };
  #duplicateRate: number;
  readonly #random: () => number;

  constructor(mapping: SqsEventSourceMapping, sqs: SQSClient, log: InvocationLog) {
    this.mapping = mapping;
    this.#sqs = sqs;
    this.#log = log;
    const environment = mapping.function.definition?.environment ?? {};
    this.#duplicateRate = duplicateRateFrom(environment.LOCAL_DUPLICATE_DELIVERY_RATE, mapping.duplicateDeliveryRate);
    const seed = mapping.duplicateDeliverySeed ?? (Number(environment.FAULT_SEED ?? 0) || 0);
    this.#random = seededRandom(seed, `${mapping.function.name}:${mapping.queueArn}`);
  }

  /**
   * Sets the duplicate delivery rate for every record from now on, unless the function's
   * environment sets LOCAL_DUPLICATE_DELIVERY_RATE (a per-function override wins over a global one).
   */
  setDuplicateDeliveryRate(rate: number): void {
    const environment = this.mapping.function.definition?.environment ?? {};
    this.#duplicateRate = duplicateRateFrom(environment.LOCAL_DUPLICATE_DELIVERY_RATE, rate);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Stops receiving, as a mapping disabled with UpdateEventSourceMapping: batches already in hand
   * finish, and nothing more is worked on until `enable`; records stay in the queue meanwhile. A
   * long poll already waiting is not aborted (the emulator, like SQS, would still hand its messages
   * to the closed request, hidden for a visibility timeout): what it returns is handed back at once.
   */
  disable(): void {
    this.#enabled = false;
  }

  enable(): void {
    this.#enabled = true;
    for (const wake of this.#enableWaiting.splice(0)) wake();
  }

  stats(): EventSourceStats {
    return { ...this.#stats };
  }

  /** Stops receiving (aborting a long poll in progress) and waits for running invocations to settle. */
  async stop(): Promise<void> {
    this.#abort.abort();
    for (const wake of [...this.#pollerWaiting.splice(0), ...this.#duplicatesWaiting.splice(0), ...this.#enableWaiting.splice(0)]) wake();
    await this.#loop;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  get #stopped(): boolean {
    return this.#abort.signal.aborted;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (!this.#enabled) {
        await new Promise<void>((resolve) => this.#enableWaiting.push(resolve));
        continue;
      }
      // Standard lane: nothing received while an express batch is in hand (LaneGate).
      if (await this.#waitForExpressLane()) continue;
      // Receive only with a slot in hand, and when the function could run the batch at once: a
      // message held while waiting for either would burn its visibility timeout without being
      // worked on.
      if (!(await this.#acquireSlot(this.#pollerWaiting))) break;
      await this.#waitForEnvironment();
      if (this.#stopped) {
        this.#releaseSlot();
        break;
      }
      let records: SQSRecord[];
      try {
        records = await this.#gatherBatch();
      } catch (error) {
        this.#releaseSlot();
        if (this.#stopped) break;
        this.#log.error(`${this.mapping.function.name}: receiving from ${this.mapping.queueArn} failed: ${(error as Error).message}`);
        await sleep(1000, this.#abort.signal);
        continue;
      }
      if (records.length === 0) {
        this.#releaseSlot();
        continue;
      }
      // A batch gathered while an express one came in waits too, with its records in hand (their
      // visibility timeout is at least six times the function's); handed back if the poller stops
      // or is disabled meanwhile, as a receive cut short by a disable is.
      if ((await this.#waitForExpressLane()) && (this.#stopped || !this.#enabled)) {
        await this.#release(records);
        this.#releaseSlot();
        continue;
      }
      const gate = this.mapping.laneGate;
      if (gate?.lane === 'express') gate.gate.hold();
      this.#track(
        this.#process(records).finally(() => {
          if (gate?.lane === 'express') gate.gate.release();
          this.#releaseSlot();
        }),
      );
    }
  }

  /** A standard lane's poller waits while the gate is closed (LaneGate); whether it waited. */
  async #waitForExpressLane(): Promise<boolean> {
    const gate = this.mapping.laneGate;
    if (gate?.lane !== 'standard' || gate.gate.closedUntil() === undefined) return false;
    this.#stats.laneWaits++;
    await gate.gate.open(this.#abort.signal);
    return true;
  }

  /**
   * Waits until an invocation of the function would start at once (LambdaFunction.canStartNow):
   * its environments, or the local runtime's budget of them, may all be busy with other work.
   */
  async #waitForEnvironment(): Promise<void> {
    const fn = this.mapping.function;
    const environmentClass = this.mapping.environmentClass ?? 'foreground';
    if (fn.canStartNow(environmentClass)) return;
    this.#stats.environmentWaits++;
    while (!this.#stopped && !fn.canStartNow(environmentClass)) await fn.whenMightStart(ENVIRONMENT_RECHECK_MS, this.#abort.signal);
  }

  #track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((error: unknown) => this.#log.error(`${this.mapping.function.name}: ${(error as Error).message}`))
      .finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  /** Waits for a free slot and takes it; false once the poller is stopping. */
  async #acquireSlot(queue: Array<() => void>): Promise<boolean> {
    while (this.#slotsInUse >= this.mapping.maximumConcurrency && !this.#stopped) {
      await new Promise<void>((resolve) => queue.push(resolve));
    }
    if (this.#stopped) return false;
    this.#slotsInUse++;
    return true;
  }

  #releaseSlot(): void {
    this.#slotsInUse--;
    // A waiting duplicate goes first: its records are already in hand, the poller's are not.
    (this.#duplicatesWaiting.shift() ?? this.#pollerWaiting.shift())?.();
  }

  /**
   * Long-polls for a first message, then gathers more until the batch is full (batchSize records,
   * or the next record would make the event larger than maxEventBytes) or the window ends.
   * Records that do not fit are handed back at once, to come back in a later batch.
   */
  async #gatherBatch(): Promise<SQSRecord[]> {
    const { batchSize, maximumBatchingWindowSeconds } = this.mapping;
    const maxEventBytes = this.mapping.maxEventBytes ?? LAMBDA_MAX_SYNC_PAYLOAD_BYTES;
    const batch = new Map<string, { record: SQSRecord; bytes: number }>();
    let recordBytes = 0;
    let eventFull = false;
    const overflow: SQSRecord[] = [];
    const add = (messages: Message[]) => {
      for (const message of messages) {
        const record = toSqsRecord(message, this.mapping);
        // A message whose visibility timeout ran out while the batch was being gathered can be
        // received twice; only its latest receipt handle can delete it, so that receipt replaces the first.
        const earlier = batch.get(record.messageId);
        if (earlier) {
          batch.delete(record.messageId);
          recordBytes -= earlier.bytes;
        }
        const bytes = Buffer.byteLength(JSON.stringify(record));
        // The event once this record is in: `{"Records":[` + records joined by commas + `]}`.
        const eventBytes = EMPTY_EVENT_BYTES + recordBytes + bytes + batch.size;
        // A first record always goes (an SQS message is far below Lambda's limit; only a test's
        // smaller limit could refuse it, and refusing it would hand it back forever).
        if (eventFull || (eventBytes > maxEventBytes && batch.size > 0)) {
          eventFull = true;
          overflow.push(record);
          continue;
        }
        batch.set(record.messageId, { record, bytes });
        recordBytes += bytes;
      }
    };
    add(await this.#receiveFirst(Math.min(SQS_MAX_MESSAGES, batchSize), this.mapping.receiveWaitTimeSeconds ?? SQS_MAX_WAIT_SECONDS));
    if (batch.size > 0) {
      const deadline = Date.now() + maximumBatchingWindowSeconds * 1000;
      while (batch.size < batchSize && !eventFull && !this.#stopped) {
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) break;
        const waitSeconds = Math.min(SQS_MAX_WAIT_SECONDS, Math.floor(remainingMs / 1000));
        const more = await this.#receive(Math.min(SQS_MAX_MESSAGES, batchSize - batch.size), waitSeconds);
        add(more);
        // Under a second left: SQS waits in whole seconds, so check again shortly.
        if (more.length === 0 && waitSeconds === 0) await sleep(Math.min(remainingMs, 100), this.#abort.signal);
      }
    }
    await this.#release(overflow);
    return [...batch.values()].map(({ record }) => record);
  }

  /** The long poll for a batch's first message: what it brings after a disable goes back at once. */
  async #receiveFirst(maxMessages: number, waitSeconds: number): Promise<Message[]> {
    if (!this.#enabled) return [];
    const messages = await this.#receive(maxMessages, waitSeconds);
    if (this.#enabled) return messages;
    await this.#release(messages.map((message) => toSqsRecord(message, this.mapping)));
    return [];
  }

  async #receive(maxMessages: number, waitSeconds: number): Promise<Message[]> {
    const response = await this.#sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.mapping.queueUrl,
        MaxNumberOfMessages: maxMessages,
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: this.#abort.signal },
    );
    return response.Messages ?? [];
  }

  /**
   * Makes records visible again at once (visibility timeout 0), for the next batch. If that fails
   * they still come back, after the queue's visibility timeout: nothing is dropped either way.
   */
  async #release(records: SQSRecord[]): Promise<void> {
    this.#stats.releasedRecords += records.length;
    for (let start = 0; start < records.length; start += SQS_MAX_MESSAGES) {
      const chunk = records.slice(start, start + SQS_MAX_MESSAGES);
      try {
        const response = await this.#sqs.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.mapping.queueUrl,
            Entries: chunk.map((record, index) => ({ Id: String(index), ReceiptHandle: record.receiptHandle, VisibilityTimeout: 0 })),
          }),
        );
        for (const failed of response.Failed ?? []) {
          this.#log.error(
            `${this.mapping.function.name}: could not release ${chunk[Number(failed.Id)]?.messageId}: ${failed.Code} ${failed.Message ?? ''}`,
          );
        }
      } catch (error) {
        this.#log.error(`${this.mapping.function.name}: ChangeMessageVisibilityBatch failed: ${(error as Error).message}`);
      }
    }
  }

  async #process(records: SQSRecord[]): Promise<void> {
    const fifo = this.mapping.fifo === true;
    const groups = fifo ? [...new Set(records.map(groupOf))] : [];
    if (groups.some((group) => this.#groupsInFlight.has(group))) this.#stats.groupWaits++;
    for (;;) {
      const earlier = groups.map((group) => this.#groupsInFlight.get(group)).filter((batch) => batch !== undefined);
      if (earlier.length === 0) break;
      await Promise.all(earlier);
    }
    let finished = () => {};
    const batchEnd = new Promise<void>((resolve) => {
      finished = resolve;
    });
    for (const group of groups) this.#groupsInFlight.set(group, batchEnd);
    try {
      await this.#invokeBatch(records, fifo);
    } finally {
      for (const group of groups) if (this.#groupsInFlight.get(group) === batchEnd) this.#groupsInFlight.delete(group);
      finished();
    }
  }

  async #invokeBatch(records: SQSRecord[], fifo: boolean): Promise<void> {
    const { function: fn, reportBatchItemFailures } = this.mapping;
    this.#stats.batches++;
    this.#stats.records += records.length;
    this.#stats.redeliveredRecords += records.filter((record) => Number(record.attributes.ApproximateReceiveCount) > 1).length;
    // A deliberate duplicate runs as its own invocation. Standard: in a slot of its own, which it
    // waits for like any invocation, and this batch does not wait for it. FIFO: after this batch,
    // in its slot and while its groups are still held, so that it never runs beside them.
    const duplicates = this.#duplicateRate > 0 ? records.filter(() => this.#random() < this.#duplicateRate) : [];
    if (duplicates.length > 0 && !fifo) this.#track(this.#invokeDuplicate(duplicates, 'own slot'));
    this.#invocationStarted();
    try {
      const result = await fn.invoke({ Records: records }, { environmentClass: this.mapping.environmentClass ?? 'foreground' });
      const { succeeded: toDelete, outcome, wholeBatchFailed } = batchOutcome(result, records, reportBatchItemFailures);
      const failures = records.length - toDelete.length;
      if (wholeBatchFailed) this.#stats.failedBatches++;
      this.#stats.failedRecords += failures;
      if (fifo) this.#countOutOfOrderSuccesses(records, new Set(toDelete.map((record) => record.messageId)));
      await this.#delete(toDelete);
      this.#log.invocation({
        function: fn.name,
        trigger: `sqs ${queueNameOf(this.mapping.queueArn)}`,
        batchSize: records.length,
        failures,
        durationMs: result.durationMs,
        initDurationMs: result.initDurationMs,
        outcome,
      });
    } finally {
      this.#stats.running--;
    }
    if (duplicates.length > 0 && fifo) await this.#invokeDuplicate(duplicates, 'batch slot');
  }

  /** FIFO: a record deleted after an earlier record of its group failed is processed out of order. */
  #countOutOfOrderSuccesses(records: SQSRecord[], succeeded: Set<string>): void {
    const failedGroups = new Set<string>();
    for (const record of records) {
      const group = groupOf(record);
      if (!succeeded.has(record.messageId)) failedGroups.add(group);
      else if (failedGroups.has(group)) {
        this.#stats.outOfOrderSuccesses++;
        this.#log.error(
          `${this.mapping.function.name}: ${record.messageId} reported successful after an earlier record of its message group ${group} failed: the group's order is broken`,
        );
      }
    }
  }

  #invocationStarted(): void {
    this.#stats.running++;
    this.#stats.maxConcurrent = Math.max(this.#stats.maxConcurrent, this.#stats.running);
  }

  /**
   * The same records again, in a second invocation: what a consumer sees when SQS delivers a
   * message twice. Which records get deleted is decided by the batch's own invocation; this one is
   * counted and logged, and whatever it does must change nothing twice.
   */
  async #invokeDuplicate(records: SQSRecord[], slot: 'own slot' | 'batch slot'): Promise<void> {
    const { function: fn } = this.mapping;
    if (slot === 'own slot' && !(await this.#acquireSlot(this.#duplicatesWaiting))) return;
    this.#stats.duplicatedRecords += records.length;
    this.#stats.duplicateInvocations++;
    this.#invocationStarted();
    try {
      const result = await fn.invoke({ Records: records }, { environmentClass: this.mapping.environmentClass ?? 'foreground' });
      const { succeeded, outcome } = batchOutcome(result, records, this.mapping.reportBatchItemFailures);
      const failures = records.length - succeeded.length;
      this.#log.invocation({
        function: fn.name,
        trigger: `sqs ${queueNameOf(this.mapping.queueArn)} (duplicate delivery)`,
        batchSize: records.length,
        failures,
        durationMs: result.durationMs,
        initDurationMs: result.initDurationMs,
        outcome,
      });
    } finally {
      this.#stats.running--;
      if (slot === 'own slot') this.#releaseSlot();
    }
  }

  async #delete(records: SQSRecord[]): Promise<void> {
    for (let start = 0; start < records.length; start += SQS_MAX_MESSAGES) {
      const chunk = records.slice(start, start + SQS_MAX_MESSAGES);
      try {
        const response = await this.#sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: this.mapping.queueUrl,
            // Positions, not message ids: ids must be unique per request and short.
            Entries: chunk.map((record, index) => ({ Id: String(index), ReceiptHandle: record.receiptHandle })),
          }),
        );
        this.#stats.deleted += response.Successful?.length ?? 0;
        for (const failed of response.Failed ?? []) {
          this.#log.error(
            `${this.mapping.function.name}: could not delete ${chunk[Number(failed.Id)]?.messageId}: ${failed.Code} ${failed.Message ?? ''}`,
          );
        }
      } catch (error) {
        this.#log.error(`${this.mapping.function.name}: DeleteMessageBatch failed: ${(error as Error).message}`);
      }
    }
  }
}

/** An SQS message as Lambda hands it to a function: the shape of `SQSRecord`. */
export function toSqsRecord(message: Message, source: { queueArn: string; region: string }): SQSRecord {
  const system: Record<string, string | undefined> = message.Attributes ?? {};
  // Lambda lists these four first, in this order, then whatever else SQS returned.
  const ordered = ['ApproximateReceiveCount', 'SentTimestamp', 'SenderId', 'ApproximateFirstReceiveTimestamp'];
  const attributes: Record<string, string> = {};
  for (const name of ordered) {
    const value = system[name];
    if (value !== undefined) attributes[name] = value;
  }
  for (const [name, value] of Object.entries(system)) if (!(name in attributes) && value !== undefined) attributes[name] = value;

  const messageAttributes: SQSRecord['messageAttributes'] = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = toRecordAttribute(value);
  }
  const record: SQSRecord = {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: attributes as unknown as SQSRecord['attributes'],
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: source.queueArn,
    awsRegion: source.region,
  };
  if (message.MD5OfMessageAttributes) {
    // Lambda sends this field when the message has attributes; keep Lambda's key order.
    const { md5OfBody, eventSource, eventSourceARN, awsRegion, ...head } = record;
    return {
      ...head,
      md5OfMessageAttributes: message.MD5OfMessageAttributes,
      md5OfBody,
      eventSource,
      eventSourceARN,
      awsRegion,
    } as SQSRecord;
  }
  return record;
}

function toRecordAttribute(value: MessageAttributeValue): SQSRecord['messageAttributes'][string] {
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  const attribute: SQSRecord['messageAttributes'][string] = {
    stringListValues: value.StringListValues ?? [],
    binaryListValues: (value.BinaryListValues ?? []).map(base64),
    dataType: value.DataType ?? 'String',
  };
  // Lambda puts the value first, then the lists and the type.
  if (value.BinaryValue !== undefined) return { binaryValue: base64(value.BinaryValue), ...attribute };
  if (value.StringValue !== undefined) return { stringValue: value.StringValue, ...attribute };
  return attribute;
}

export type BatchResponse = { valid: true; failedIds: Set<string> } | { valid: false; reason: string };

/**
 * Reads a function's partial batch response the way Lambda does. Success: no response, an empty
 * object, or batchItemFailures null or empty. Anything malformed — a non-object, batchItemFailures
 * not a list, an entry without a non-empty itemIdentifier naming a record of the batch — fails
 * the whole batch.
 */
export function parseBatchResponse(payload: unknown, records: Array<{ messageId: string }>): BatchResponse {
  if (payload === null || payload === undefined) return { valid: true, failedIds: new Set() };
  if (typeof payload !== 'object' || Array.isArray(payload))
    return { valid: false, reason: `response is ${describe(payload)}, not an object` };
  const failures = (payload as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === null || failures === undefined) return { valid: true, failedIds: new Set() };
  if (!Array.isArray(failures)) return { valid: false, reason: `batchItemFailures is ${describe(failures)}, not a list` };
  const ids = new Set(records.map((record) => record.messageId));
  const failedIds = new Set<string>();
  for (const failure of failures as unknown[]) {
    if (typeof failure !== 'object' || failure === null || Array.isArray(failure)) {
      return { valid: false, reason: `batchItemFailures entry is ${describe(failure)}, not an object` };
    }
    const id = (failure as { itemIdentifier?: unknown }).itemIdentifier;
    if (typeof id !== 'string' || id === '') return { valid: false, reason: `itemIdentifier is ${describe(id)}` };
    if (!ids.has(id)) return { valid: false, reason: `itemIdentifier ${id} is not a message of the batch` };
    failedIds.add(id);
  }
  return { valid: true, failedIds };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === '') return 'an empty string';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'string' ? `the string ${JSON.stringify(value)}` : `${typeof value} ${JSON.stringify(value)}`;
}

function duplicateRateFrom(variable: string | undefined, fallback: number | undefined): number {
  const rate = variable !== undefined && variable !== '' ? Number(variable) : (fallback ?? 0);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1)
    throw new Error(`Duplicate delivery rate must be between 0 and 1, not ${variable ?? fallback}`);
  return rate;
}

/** A FIFO record's message group, as SQS reports it. */
function groupOf(record: SQSRecord): string {
  return record.attributes.MessageGroupId ?? '';
}

function queueNameOf(arn: string): string {
  return arn.slice(arn.lastIndexOf(':') + 1);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * What an invocation made of its batch, as Lambda reads it: every record succeeded, or those not
 * listed in a valid `batchItemFailures` response; none when the invocation failed, timed out or
 * answered a response Lambda cannot read (then the whole batch failed).
 */
function batchOutcome(
  result: Awaited<ReturnType<LambdaFunction['invoke']>>,
  records: SQSRecord[],
  reportBatchItemFailures: boolean,
): { succeeded: SQSRecord[]; outcome: string; wholeBatchFailed: boolean } {
  if (!result.ok) {
    const outcome = result.timedOut ? `timeout: ${result.errorMessage}` : `error: ${result.errorType}: ${result.errorMessage}`;
    return { succeeded: [], outcome, wholeBatchFailed: true };
  }
  if (!reportBatchItemFailures) return { succeeded: records, outcome: 'ok', wholeBatchFailed: false };
  const response = parseBatchResponse(result.payload, records);
  if (!response.valid)
    return { succeeded: [], outcome: `invalid batch response (whole batch failed): ${response.reason}`, wholeBatchFailed: true };
  const succeeded = records.filter((record) => !response.failedIds.has(record.messageId));
  return { succeeded, outcome: response.failedIds.size > 0 ? 'partial' : 'ok', wholeBatchFailed: false };
}
