// The chaos run behind `npm run chaos` (scripts/chaos.ts) and test/e2e/chaos.test.ts: the local
// pipeline with faults on in every consumer (transient record errors, crashed and timed-out
// invocations, deliberate duplicate deliveries), poison messages on every consumer's queue, and
// optional outages (the payment provider, the topic) that start mid-run. The pipeline must heal by
// itself: every invariant is checked before any redrive. Then the DLQs are redriven, and the same
// invariants must still hold, with nothing changed by the redriven messages.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { redriveDeadLetters } from '../scripts/dlq-redrive.js';
import { markersLeft } from '../lib/inventory.js';
import { seededRandom, sleep, writeOutages } from '../lib/fault-injection.js';
import { missingFollowUps, type OrderRecord, type StoredOrder, toOrderRecord } from '../lib/order-store.js';
import { describeQueuedMessage } from '../lib/queued-message.js';
import { clientConfig } from './emulators.js';
import { packageStack, REPOSITORY_ROOT } from './package-stack.js';
import { queueLabel } from './queue-consumers.js';
import { startLocalPipeline, type LocalPipeline, type LocalPipelineOptions } from './runtime.js';
import { SAMPLE_ADDRESS } from './sample-order.js';

export interface ChaosOptions {
  orders?: number;
  /** Seeds the order mix, the consumers' faults and the duplicate choice: the same seed replays the same decisions. */
  seed?: number;
  /** Orders placed at once through the HTTP API. */
  concurrency?: number;
  /** Per record, in every consumer. */
  transientErrorRate?: number;
  /** Per invocation, in every consumer. */
  crashRate?: number;
  timeoutRate?: number;
  /** Per record: delivered twice on purpose by the local poller. */
  duplicateRate?: number;
  /** Per publish of the order API (the client retries a 503 with the same Idempotency-Key). */
  publishFailureRate?: number;
  /** Poison messages written straight to each consumer's queue. */
  poisonPerQueue?: number;
  /** Every charge and refund fails for this long, starting when half the orders are placed. */
  providerOutageSeconds?: number;
  /** Every publish to the order events topic fails for this long, starting when half the orders are placed. */
  topicOutageSeconds?: number;
  /** Longest wait for the pipeline to heal (every order finished, the queues quiet), each time. */
  maxWaitSeconds?: number;
  /** Runs of the sweep per minute of wall time (the local schedule sped up); 6 by default. */
  sweepsPerMinute?: number;
  /** Progress lines. */
  onProgress?: (line: string) => void;
  /** Passed to startLocalPipeline (ports, templatePath ...). */
  pipeline?: Partial<LocalPipelineOptions>;
}

export interface OrderCounts {
  placed: number;
  CONFIRMED: number;
  CANCELLED: number;
  PENDING: number;
}

export interface DlqAccount {
  /** The queue consumer whose dead-letter queue this is. */
  consumer: string;
  messages: number;
  poisonSent: number;
  poison: number;
  /** Real order events that ran out of receives: `eventType orderId`. */
  realEvents: string[];
}

export interface ChaosCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface StockAccount {
  sku: string;
  initial: number;
  available: number;
  /** Stock markers left on the SKU's item, each with its order: changes not recorded or not tidied. */
  markers: Array<{ orderId: string; marker: string }>;
  /** The confirmed orders' units of this SKU: what must have left the stock. */
  soldExpected: number;
}

/** Everything the run accounts for at one moment: before the redrive, and again after it. */
export interface ChaosAccount {
  orders: OrderCounts;
  dlqs: DlqAccount[];
  quiet: boolean;
  waitedSeconds: number;
  ledger: { standingCharges: number; refunds: number; chargesOnCancelled: string[]; confirmedWithoutCharge: string[] };
  stock: StockAccount[];
  shipments: { dispatched: number; cancelled: number; confirmedNotDispatched: string[]; cancelledNotCancelled: string[] };
  /** Decided orders with a follow-up missing, as `orderId stage:entry`. */
  missingFollowUps: string[];
  /** Orders still in the sweep's index of unfinished orders. */
  unfinished: number;
  /** A digest of every order's status and timeline, the ledger, the stock and the shipments: equal digests, nothing changed. */
  digest: string;
}

export interface ChaosResult {
  seed: number;
  options: Required<Omit<ChaosOptions, 'onProgress' | 'pipeline' | 'seed'>>;
  wallSeconds: number;
  placement: { accepted: number; retriedAfter503: number; leftToTheSweep: number; failed: number };
  outages: { provider?: { fromSecond: number; untilSecond: number }; topic?: { fromSecond: number; untilSecond: number } };
  /** Before any redrive: what the pipeline did by itself. */
  beforeRedrive: ChaosAccount;
  redriven: number;
  /** After the DLQs were redriven and the pipeline went quiet again. */
  final: ChaosAccount;
  sweep: { republished: number; stuckReports: number };
  /** The faults that actually fired in the consumers, so a run that injected nothing cannot pass for one that survived. */
  faultsFired: { crashedInvocations: number; timedOutInvocations: number; failedRecords: number; publish503s: number };
  duplicates: {
    deliberate: number;
    redelivered: number;
    idempotencyHits: number;
    /** Per queue consumer, by name. */
    byConsumer: Record<string, { deliberate: number; redelivered: number; idempotencyHits: number }>;
  };
  logLines: number;
  clearTokenLines: number;
  /**
   * For each stock marker left at the end: the marker, what its order records of its stock, and
   * the order's log lines. A marker left is a change to stock that no attempt settled; this is
   * what it takes to find out which one, from a failed CI run's output alone.
   */
  markerStories: string[];
  checks: ChaosCheck[];
  passed: boolean;
}

const TOKENS = ['tok_visa', 'tok_decline', 'tok_flaky'] as const;

type OrderItems = Array<{ sku: string; quantity: number }>;

/** An order the run will place: its Idempotency-Key, its lines, its card token and whether it ships express. */
interface OrderPlan {
  key: string;
  items: OrderItems;
  token: string;
  express: boolean;
}

interface PlacedOrder {
  orderId: string;
  items: OrderItems;
  token: string;
}

/**
 * A queue consumer's queue as the pipeline's template has it (each consumer has a standard and an
 * express one), with the dead-letter queue the run accounts for.
 */
interface ChaosConsumer {
  /** The function's name: what its log lines are counted under. */
  name: string;
  /** The queue's: `inventory`, `inventory express`. */
  label: string;
  url: string;
  dlqUrl: string;
  queueName: string;
}

/** The run's settings and the running pipeline with its clients: what `startPipeline` starts and `stopPipeline` stops. */
interface ChaosLab {
  startedAt: number;
  seed: number;
  options: ChaosResult['options'];
  progress: (line: string) => void;
  /** In the run's SKUs, Idempotency-Keys and poison, so that runs against one pipeline never meet. */
  runId: string;
  /** Where the outages are switched on (`writeOutages`). */
  outagesFile: string;
  outagesDir: string;
  pipeline: LocalPipeline;
  sqs: SQSClient;
  db: DynamoDBDocumentClient;
}

/** What every step after the set-up works with. */
interface ChaosRun extends ChaosLab {
  consumers: ChaosConsumer[];
  tables: { orders: string; inventory: string };
  /** Units per SKU at the start. */
  initialStock: Map<string, number>;
  plans: OrderPlan[];
  poisonBodies: Set<string>;
}

interface PlacedOrders {
  orders: PlacedOrder[];
  /** The order ids the client holds: what the run accounts for. */
  ids: Set<string>;
  placement: ChaosResult['placement'];
  outages: ChaosResult['outages'];
}

/** How a wait for the pipeline to heal ended. */
interface Healing {
  quiet: boolean;
  waitedSeconds: number;
}

/** Everything the result holds but the checks, which are made from it. */
type ChaosFigures = Omit<ChaosResult, 'checks' | 'passed'>;

/** Set up, place, drain, account; redrive, drain, account again; check. The pipeline is stopped whatever fails after it started. */
export async function runChaos(input: ChaosOptions = {}): Promise<ChaosResult> {
  const logs = new LogWatch();
  const lab = await startPipeline(input, logs.write);
  try {
    const run = await setUp(lab);
    const placed = await placeOrders(run);

    // First the pipeline on its own: no redrive until every invariant has been checked.
    const beforeRedrive = await account(run, placed, await drain(run, placed, 'healing'));

    // Then the operator's tool: redrive the real events that ran out of receives (poison stays).
    // They are duplicates of work the sweep already finished, so they must change nothing.
    const redriven = await redriveRealEvents(run);
    const final = await account(
      run,
      placed,
      redriven > 0 ? await drain(run, placed, 'after redrive') : { quiet: beforeRedrive.quiet, waitedSeconds: 0 },
    );

    const figures: ChaosFigures = {
      seed: run.seed,
      options: run.options,
      wallSeconds: Math.round((Date.now() - run.startedAt) / 1000),
      placement: placed.placement,
      outages: placed.outages,
      beforeRedrive,
      redriven,
      final,
      sweep: logs.sweep,
      ...accountFaultsAndDuplicates(run, logs, placed.placement),
      logLines: logs.logLines,
      clearTokenLines: logs.clearTokenLines,
      markerStories: await markerStories(run, final, logs),
    };
    const checks = checkRun(figures, logs);
    return { ...figures, checks, passed: checks.every((c) => c.ok) };
  } finally {
    await stopPipeline(lab);
  }
}

/**
 * What the run learns from the handlers' log lines, every one of which passes through `write`:
 * duplicates absorbed by idempotency are counted from the consumers' own log line (one per stored
 * result returned), the sweep's work from its lines, and no line may hold a token. Counted per
 * function (handler lines arrive as `  <function> | <line>`); which functions are the consumers,
 * the pipeline's template says.
 */
class LogWatch {
  logLines = 0;
  clearTokenLines = 0;
  readonly clearTokenSamples: string[] = [];
  readonly idempotencyHits = new Map<string, number>();
  readonly sweep = { republished: 0, stuckReports: 0 };
  // The consumers' injected faults, counted where they happen: a crash ends its invocation with
  // the InjectedFault (the runtime's invocation line says so); a timeout is announced by the
  // handler before it hangs, and the runtime stops its worker at the function's timeout.
  crashes = 0;
  readonly timeouts = new Map<string, number>();
  // The last failure logged for each order (consumer, error name and message): named in the report
  // for a real event that ends in a DLQ after the redrive, so that a failing run says why.
  readonly lastFailure = new Map<string, string>();
  // Each order's handler lines (the JSON ones carry `orderId`), kept to explain a stock marker left.
  readonly linesByOrder = new Map<string, string[]>();

  readonly write = (line: string): void => {
    this.logLines++;
    if (TOKENS.some((token) => line.includes(token))) {
      this.clearTokenLines++;
      if (this.clearTokenSamples.length < 3) this.clearTokenSamples.push(line.slice(0, 300));
    }
    const orderId = /"orderId":"([^"]+)"/.exec(line)?.[1];
    if (orderId) {
      const lines = this.linesByOrder.get(orderId) ?? [];
      if (lines.length < MAX_LINES_PER_ORDER) lines.push(line.slice(0, 400));
      this.linesByOrder.set(orderId, lines);
    }
    if (line.includes('Duplicate delivery: the work was recorded earlier')) countPerFunction(this.idempotencyHits, line);
    if (line.includes('Sweep: published again')) this.sweep.republished++;
    if (line.startsWith('λ ') && line.includes('InjectedFault: Injected crash after')) this.crashes++;
    if (line.includes('"message":"Injected timeout with')) countPerFunction(this.timeouts, line);
    if (line.includes('Orders stuck:')) this.sweep.stuckReports++;
    if (line.includes('"message":"Record failed')) {
      try {
        const entry = JSON.parse(line.slice(line.indexOf('{'))) as {
          orderId?: string;
          consumer?: string;
          error?: { name?: string; message?: string };
        };
        if (entry.orderId)
          this.lastFailure.set(
            entry.orderId,
            `${entry.consumer ?? '?'}: ${entry.error?.name ?? 'Error'}: ${entry.error?.message ?? ''}`.slice(0, 300),
          );
      } catch {
        // Not a JSON line after all: nothing to learn from it.
      }
    }
  };
}

/** Lines kept per order: an order's whole story under chaos is a few dozen. */
const MAX_LINES_PER_ORDER = 300;

function countPerFunction(counts: Map<string, number>, line: string): void {
  const fn = /^ {2}(\S+) \| /.exec(line)?.[1];
  if (fn) counts.set(fn, (counts.get(fn) ?? 0) + 1);
}

// ---------------------------------------------------------------------------------------------
// Set up: the pipeline, the stock, the orders to place, the poison

function withDefaults(input: ChaosOptions): ChaosResult['options'] {
  return {
    orders: input.orders ?? 2000,
    concurrency: input.concurrency ?? 16,
    transientErrorRate: input.transientErrorRate ?? 0.1,
    crashRate: input.crashRate ?? 0.01,
    timeoutRate: input.timeoutRate ?? 0.01,
    duplicateRate: input.duplicateRate ?? 0.05,
    publishFailureRate: input.publishFailureRate ?? 0.01,
    poisonPerQueue: input.poisonPerQueue ?? 3,
    providerOutageSeconds: input.providerOutageSeconds ?? 0,
    topicOutageSeconds: input.topicOutageSeconds ?? 0,
    maxWaitSeconds: input.maxWaitSeconds ?? 300,
    sweepsPerMinute: input.sweepsPerMinute ?? 6,
  };
}

/** The local pipeline with the faults on in every consumer, every handler line going to `write`. */
async function startPipeline(input: ChaosOptions, write: (line: string) => void): Promise<ChaosLab> {
  const startedAt = Date.now();
  const seed = (input.seed ?? Math.floor(Math.random() * 2 ** 31)) >>> 0;
  const options = withDefaults(input);
  const progress = input.onProgress ?? (() => {});
  const runId = `${seed.toString(36).toUpperCase()}-${Date.now().toString(36).toUpperCase()}`;

  // Outages are switched on mid-run through a file every execution environment reads.
  const outagesDir = mkdtempSync(path.join(tmpdir(), 'chaos-outages-'));
  const outagesFile = path.join(outagesDir, 'outages.json');
  writeOutages(outagesFile, {});
  const faults = {
    FAULT_TRANSIENT_ERROR_RATE: String(options.transientErrorRate),
    FAULT_CRASH_RATE: String(options.crashRate),
    FAULT_TIMEOUT_RATE: String(options.timeoutRate),
    FAULT_SEED: String(seed),
    FAULT_OUTAGES_FILE: outagesFile,
    RETRY_BACKOFF_BASE_SECONDS: '1',
    LOCAL_DUPLICATE_DELIVERY_RATE: String(options.duplicateRate),
  };
  progress(`chaos: seed ${seed} (replay with --seed ${seed}), ${options.orders} orders`);
  // The run's orders have a few lines, and its injected timeouts each last a function timeout and
  // come back after the queue's visibility timeout: the inventory consumer gets the other
  // consumers' local clocks (serverless.yml), not its own, which are sized for 5,000-line orders.
  const templatePath =
    input.pipeline?.templatePath ??
    (
      await packageStack({
        stage: 'local',
        params: { inventoryTimeoutSeconds: '5', inventoryQueueVisibilityTimeoutSeconds: '31' },
        outputDir: path.join(REPOSITORY_ROOT, '.cache', 'package', 'local-chaos'),
      })
    ).templatePath;
  const pipeline = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    seed: false,
    templatePath,
    // The sweep runs every minute on AWS; here `sweepsPerMinute` times a minute, so that a run
    // heals in minutes. Its thresholds are the `local` stage's (serverless.yml params).
    scheduleScale: options.sweepsPerMinute,
    ...input.pipeline,
    quiet: false,
    write,
    // Faults in every queue consumer, whichever the template has.
    consumerEnvironmentOverrides: { ...faults, ...input.pipeline?.consumerEnvironmentOverrides },
    environmentOverrides: {
      createOrder: {
        FAULT_PUBLISH_FAILURE_RATE: String(options.publishFailureRate),
        FAULT_SEED: String(seed),
        FAULT_OUTAGES_FILE: outagesFile,
      },
      sweepOrders: { FAULT_OUTAGES_FILE: outagesFile },
      ...input.pipeline?.environmentOverrides,
    },
  });
  return {
    startedAt,
    seed,
    options,
    progress,
    runId,
    outagesFile,
    outagesDir,
    pipeline,
    sqs: new SQSClient(clientConfig(pipeline.endpoints.sqs)),
    db: DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(pipeline.endpoints.dynamodb))),
  };
}

async function stopPipeline(lab: ChaosLab): Promise<void> {
  lab.sqs.destroy();
  lab.db.destroy();
  await lab.pipeline.stop();
  rmSync(lab.outagesDir, { recursive: true, force: true });
}

/** Set up: the consumers and tables from the template, the run's stock, the orders to place, poison on every queue. */
async function setUp(lab: ChaosLab): Promise<ChaosRun> {
  const table = (id: string) => {
    const name = lab.pipeline.resources.tables[id];
    if (!name) throw new Error(`No ${id}`);
    return name;
  };
  // The queue consumers, as the pipeline's template has them; each with a dead-letter queue.
  const consumers = lab.pipeline.consumers.map((consumer): ChaosConsumer => {
    if (!consumer.deadLetterQueueUrl) throw new Error(`${consumer.name}: its queue has no dead-letter queue`);
    return {
      name: consumer.name,
      label: queueLabel(consumer),
      url: consumer.queueUrl,
      dlqUrl: consumer.deadLetterQueueUrl,
      queueName: consumer.queueName,
    };
  });
  const tables = { orders: table('OrdersTable'), inventory: table('InventoryTable') };

  // Stock: three SKUs that never run out, one that does (so some orders are cancelled for it).
  const plentiful = ['A', 'B', 'C'].map((letter) => `CHAOS-${lab.runId}-${letter}`);
  const scarce = `CHAOS-${lab.runId}-SCARCE`;
  const { orders } = lab.options;
  const initialStock = new Map<string, number>([
    ...plentiful.map((sku) => [sku, orders * 3 + 10] as const),
    [scarce, Math.max(3, Math.round(orders * 0.04))],
  ]);
  for (const [sku, available] of initialStock) {
    await lab.db.send(new PutCommand({ TableName: tables.inventory, Item: { sku, name: `Chaos ${sku}`, available, applying: {} } }));
  }

  const plans = planOrders(lab, plentiful, scarce);
  const poisonBodies = await sendPoison(lab, consumers);
  return { ...lab, consumers, tables, initialStock, plans, poisonBodies };
}

/** Mostly tok_visa, some declined, some flaky; one or two plentiful lines, sometimes the scarce one. Drawn from the seed. */
function planOrders(lab: ChaosLab, plentiful: string[], scarce: string): OrderPlan[] {
  const random = seededRandom(lab.seed);
  return Array.from({ length: lab.options.orders }, (_, index) => {
    const roll = random();
    const token = roll < 0.08 ? 'tok_decline' : roll < 0.13 ? 'tok_flaky' : 'tok_visa';
    const first = Math.floor(random() * plentiful.length);
    const skus = [plentiful[first]!];
    if (random() < 0.4) skus.push(plentiful[(first + 1) % plentiful.length]!);
    if (random() < 0.08) skus.push(scarce);
    const items = skus.map((sku) => ({ sku, quantity: sku === scarce ? 1 : 1 + Math.floor(random() * 3) }));
    // Every fifth order ships express, so the express lanes' queues take faults too (not drawn:
    // the seed's other decisions stay what they were).
    return { key: `chaos-${lab.runId}-${index}`, items, token, express: index % 5 === 4 };
  });
}

/** Poison: bodies no consumer can ever process, straight onto each consumer's queue. Returns the bodies sent. */
async function sendPoison(lab: ChaosLab, consumers: ChaosConsumer[]): Promise<Set<string>> {
  const poisonBodies = new Set<string>();
  for (const consumer of consumers) {
    for (let index = 0; index < lab.options.poisonPerQueue; index++) {
      const marker = `chaos-poison-${lab.runId}-${consumer.label.replace(' ', '-')}-${index}`;
      const variants = [
        `${marker}: not JSON at all`,
        JSON.stringify({ chaosPoison: marker, eventType: 'OrderPlaced' }),
        JSON.stringify({ chaosPoison: marker, eventType: 'OrderShredded', orderId: 'ord_00000000000000000000000000000000' }),
      ];
      const body = variants[index % variants.length]!;
      poisonBodies.add(body);
      await lab.sqs.send(new SendMessageCommand({ QueueUrl: consumer.url, MessageBody: body }));
    }
  }
  return poisonBodies;
}

// ---------------------------------------------------------------------------------------------
// Place

/**
 * Place: the orders through the HTTP API, `concurrency` at a time, the outages switched on when
 * half of them are placed. An order whose publish never succeeded is the sweep's to finish, and
 * the client keeps the order id the 503 gave it.
 */
async function placeOrders(run: ChaosRun): Promise<PlacedOrders> {
  const { options, plans, progress } = run;
  const orders: PlacedOrder[] = [];
  const placement = { accepted: 0, retriedAfter503: 0, leftToTheSweep: 0, failed: 0 };
  let outages: ChaosResult['outages'] = {};
  let next = 0;
  let outagesStarted = false;
  const progressTimer = setInterval(
    () => progress(`chaos: placed ${placement.accepted + placement.leftToTheSweep}/${options.orders}`),
    5000,
  );
  const api = {
    baseUrl: run.pipeline.apiUrl.replace(/\/$/, ''),
    // The run's customer, authenticated as every customer is: a token from the local issuer.
    authorization: `Bearer ${await run.pipeline.tokenFor(`chaos_${run.seed.toString(36)}`, { expiresInSeconds: 6 * 3600 })}`,
  };
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= plans.length) return;
      if (!outagesStarted && index >= plans.length / 2) {
        outagesStarted = true;
        outages = startOutages(run);
      }
      const plan = plans[index]!;
      const answer = await postOrder(api, plan, progress);
      placement.retriedAfter503 += answer.retriedAfter503;
      if (answer.orderId) {
        placement.accepted++;
        orders.push({ orderId: answer.orderId, items: plan.items, token: plan.token });
      } else if (answer.storedId) {
        placement.leftToTheSweep++;
        orders.push({ orderId: answer.storedId, items: plan.items, token: plan.token });
      } else placement.failed++;
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    // Also when placing fails: a timer left running would keep the process alive.
    clearInterval(progressTimer);
  }
  progress(
    `chaos: placed ${orders.length}/${options.orders} (${placement.retriedAfter503} retries after a 503, ${placement.leftToTheSweep} left to the sweep) in ${Math.round((Date.now() - run.startedAt) / 1000)} s`,
  );
  return { orders, ids: new Set(orders.map((order) => order.orderId)), placement, outages };
}

/**
 * One order through POST /orders, up to 6 tries. A 503 (stored, not yet published) is retried with
 * the same Idempotency-Key, as a client should. Returns the accepted order id, or else the id a 503
 * gave (the order stored, its publish left to the sweep), or neither.
 */
async function postOrder(
  api: { baseUrl: string; authorization: string },
  plan: OrderPlan,
  progress: (line: string) => void,
): Promise<{ orderId?: string; storedId?: string; retriedAfter503: number }> {
  const body = JSON.stringify({
    items: plan.items,
    payment: { token: plan.token },
    shippingAddress: { ...SAMPLE_ADDRESS },
    ...(plan.express ? { shippingSpeed: 'express' } : {}),
  });
  let orderId: string | undefined;
  let storedId: string | undefined;
  let retriedAfter503 = 0;
  for (let attempt = 1; attempt <= 6 && !orderId; attempt++) {
    try {
      const response = await fetch(`${api.baseUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': plan.key, authorization: api.authorization },
        body,
      });
      const answer = (await response.json()) as { orderId?: string };
      if (response.status === 202 && answer.orderId) orderId = answer.orderId;
      else if (response.status === 503) {
        retriedAfter503++;
        storedId = answer.orderId ?? storedId;
      } else throw new Error(`POST /orders answered ${response.status}: ${JSON.stringify(answer)}`);
    } catch (error) {
      if (attempt === 6) progress(`chaos: order ${plan.key} failed: ${(error as Error).message}`);
    }
    if (!orderId) await sleep(200 * attempt);
  }
  return { orderId, storedId, retriedAfter503 };
}

/** Switches the outages on, from now; returns their windows in seconds of the run, for the report. */
function startOutages(run: ChaosRun): ChaosResult['outages'] {
  const { options, progress } = run;
  const now = Date.now();
  const window = (seconds: number) => ({ from: now, until: now + seconds * 1000 });
  const second = (at: number) => Math.round((at - run.startedAt) / 1000);
  const windows = {
    ...(options.providerOutageSeconds > 0 ? { provider: window(options.providerOutageSeconds) } : {}),
    ...(options.topicOutageSeconds > 0 ? { topic: window(options.topicOutageSeconds) } : {}),
  };
  const outages: ChaosResult['outages'] = {};
  if (!windows.provider && !windows.topic) return outages;
  writeOutages(run.outagesFile, windows);
  for (const [target, w] of Object.entries(windows)) {
    outages[target as 'provider' | 'topic'] = { fromSecond: second(w.from), untilSecond: second(w.until) };
    progress(`chaos: ${target} outage from second ${second(w.from)} to ${second(w.until)}`);
  }
  return outages;
}

// ---------------------------------------------------------------------------------------------
// Drain

/**
 * Drain: wait until healed, or `maxWaitSeconds`. Healed: every order of the run has left the
 * sweep's index of unfinished orders (decided, its outcome published, every follow-up done), the
 * consumers' queues hold nothing, visible or in flight, and no batch runs, for 3 s in a row. A DLQ
 * may still hold real events: that is the point, the pipeline must not need them.
 */
async function drain(run: ChaosRun, placed: PlacedOrders, label: string): Promise<Healing> {
  const { consumers, progress } = run;
  const waitStarted = Date.now();
  let quietFor = 0;
  let lastShown = 0;
  for (;;) {
    const depths = await Promise.all(consumers.map((consumer) => queueDepth(run.sqs, consumer.url)));
    const running = Object.values(run.pipeline.invocationStats().eventSources).reduce((sum, source) => sum + source.running, 0);
    const busy = depths.reduce((sum, d) => sum + d.visible + d.inFlight, 0) + running;
    let orders: Map<string, OrderRecord> | undefined;
    const waited = Math.round((Date.now() - waitStarted) / 1000);
    const show = Date.now() - lastShown > 5000;
    if (busy === 0 || show) orders = await readOrders(run, placed.ids);
    const unfinished = orders ? [...orders.values()].filter((order) => order.sweepShard !== undefined).length : undefined;
    quietFor = busy === 0 && unfinished === 0 && orders?.size === placed.ids.size ? quietFor + 1 : 0;
    if (show && orders) {
      lastShown = Date.now();
      const counts = countOrders(placed.ids, orders);
      progress(
        `chaos: ${label} ${waited} s: CONFIRMED ${counts.CONFIRMED}, CANCELLED ${counts.CANCELLED}, PENDING ${counts.PENDING}, unfinished ${unfinished}; ` +
          consumers.map((consumer, i) => `${consumer.label} ${depths[i]!.visible} visible/${depths[i]!.inFlight} in flight`).join(', '),
      );
    }
    if (quietFor >= 3) return { quiet: true, waitedSeconds: waited };
    if (waited >= run.options.maxWaitSeconds) return { quiet: false, waitedSeconds: waited };
    await sleep(1000);
  }
}

async function queueDepth(sqs: SQSClient, url: string): Promise<{ visible: number; inFlight: number }> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'],
    }),
  );
  return {
    visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) + Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0),
  };
}

// ---------------------------------------------------------------------------------------------
// Redrive

/** Redrives the real events from every DLQ (poison stays); returns how many moved. */
async function redriveRealEvents(run: ChaosRun): Promise<number> {
  let redriven = 0;
  for (const consumer of run.consumers) {
    const report = await redriveDeadLetters({
      sqs: run.sqs,
      deadLetterQueueUrl: consumer.dlqUrl,
      sourceQueueUrl: consumer.url,
      select: (message) => !run.poisonBodies.has(message.Body ?? ''),
      scanVisibilitySeconds: 10,
    });
    redriven += report.moved;
  }
  if (redriven > 0) run.progress(`chaos: redrove ${redriven} real order event(s) from the DLQs`);
  return redriven;
}

// ---------------------------------------------------------------------------------------------
// Account: gather the figures

/** The run's orders as stored, by id. */
async function readOrders(run: ChaosRun, ids: Set<string>): Promise<Map<string, OrderRecord>> {
  const items: Array<Record<string, unknown>> = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await run.db.send(new ScanCommand({ TableName: run.tables.orders, ExclusiveStartKey: startKey, ConsistentRead: true }));
    items.push(...(page.Items ?? []).filter((item) => ids.has(String(item.orderId))));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return new Map(items.map((item) => [String(item.orderId), toOrderRecord(item as unknown as StoredOrder)]));
}

/** An order not (yet) stored counts as PENDING. */
function countOrders(ids: Set<string>, orders: Map<string, OrderRecord>): OrderCounts {
  const counts: OrderCounts = { placed: ids.size, CONFIRMED: 0, CANCELLED: 0, PENDING: 0 };
  for (const id of ids) counts[orders.get(id)?.status ?? 'PENDING']++;
  return counts;
}

/** Account: every order, charge, unit of stock, shipment and dead letter of the run, as they stand now. */
async function account(run: ChaosRun, placed: PlacedOrders, healing: Healing): Promise<ChaosAccount> {
  const orders = await readOrders(run, placed.ids);
  const counts = countOrders(placed.ids, orders);
  const dlqs = await accountDlqs(run);
  const ordersOf = (keep: (order: OrderRecord) => boolean) =>
    [...placed.ids].filter((id) => {
      const order = orders.get(id);
      return order !== undefined && keep(order);
    });
  const confirmed = ordersOf((order) => order.status === 'CONFIRMED');
  const cancelled = ordersOf((order) => order.status === 'CANCELLED');

  // The ledger: each order's charge and refund, as recorded on it.
  const charges = new Set(ordersOf((order) => order.payment?.outcome === 'SUCCEEDED'));
  const refunds = new Set(ordersOf((order) => order.refund !== undefined));
  const standing = new Set([...charges].filter((id) => !refunds.has(id)));
  const chargesOnCancelled = [...standing].filter((id) => orders.get(id)?.status !== 'CONFIRMED');
  const confirmedWithoutCharge = confirmed.filter((id) => !standing.has(id));

  const stock = await accountStock(run, placed.orders, new Set(confirmed));

  // Shipments: a confirmed order's parcel dispatched, a cancelled order's shipment cancelled.
  const confirmedNotDispatched = confirmed.filter((id) => !orders.get(id)?.dispatchedAt);
  const cancelledNotCancelled = cancelled.filter(
    (id) => orders.get(id)?.shipping?.outcome === 'SUCCEEDED' && !orders.get(id)?.shipmentCancelledAt,
  );

  const missing = [...orders.values()].flatMap((order) => missingFollowUps(order).map((what) => `${order.orderId} ${what}`));
  const unfinished = [...orders.values()].filter((order) => order.sweepShard !== undefined).length;
  return {
    orders: counts,
    dlqs,
    ...healing,
    ledger: { standingCharges: standing.size, refunds: refunds.size, chargesOnCancelled, confirmedWithoutCharge },
    stock,
    shipments: {
      dispatched: ordersOf((order) => order.dispatchedAt !== undefined).length,
      cancelled: ordersOf((order) => order.shipmentCancelledAt !== undefined).length,
      confirmedNotDispatched,
      cancelledNotCancelled,
    },
    missingFollowUps: missing,
    unfinished,
    digest: digestOf(orders, charges, refunds, stock),
  };
}

/** What each DLQ holds, read without moving anything: the run's poison, and real order events. */
async function accountDlqs(run: ChaosRun): Promise<DlqAccount[]> {
  const accounts: DlqAccount[] = [];
  for (const consumer of run.consumers) {
    const report = await redriveDeadLetters({
      sqs: run.sqs,
      deadLetterQueueUrl: consumer.dlqUrl,
      sourceQueueUrl: consumer.url,
      dryRun: true,
      scanVisibilitySeconds: 10,
    });
    const account: DlqAccount = {
      consumer: consumer.label,
      messages: report.messages.length,
      poisonSent: run.options.poisonPerQueue,
      poison: 0,
      realEvents: [],
    };
    for (const message of report.messages) {
      if (run.poisonBodies.has(message.body)) {
        account.poison++;
        continue;
      }
      // An order event in its body or claim-checked (a pointer: its type and order from its attributes).
      const description = describeQueuedMessage(message);
      account.realEvents.push(
        description.kind === 'invalid' ? `unknown body ${message.body.slice(0, 60)}` : `${description.eventType} ${description.orderId}`,
      );
    }
    accounts.push(account);
  }
  return accounts;
}

/** Each SKU as stored, next to the confirmed orders' units of it: what must have left the stock. */
async function accountStock(run: ChaosRun, placed: PlacedOrder[], confirmed: Set<string>): Promise<StockAccount[]> {
  const soldExpected = new Map<string, number>();
  for (const order of placed) {
    if (!confirmed.has(order.orderId)) continue;
    for (const item of order.items) soldExpected.set(item.sku, (soldExpected.get(item.sku) ?? 0) + item.quantity);
  }
  const stock: StockAccount[] = [];
  const markers = await markersLeft(run.db, run.tables.inventory, run.initialStock.keys());
  for (const [sku, start] of run.initialStock) {
    const { Item } = await run.db.send(new GetCommand({ TableName: run.tables.inventory, Key: { sku }, ConsistentRead: true }));
    stock.push({
      sku,
      initial: start,
      available: Number(Item?.available),
      markers: Object.entries(markers.get(sku) ?? {}).map(([orderId, marker]) => ({ orderId, marker })),
      soldExpected: soldExpected.get(sku) ?? 0,
    });
  }
  return stock;
}

/** Each marker left at the end, with its order's stock records and log lines (ChaosResult.markerStories). */
async function markerStories(run: ChaosRun, final: ChaosAccount, logs: LogWatch): Promise<string[]> {
  const stories: string[] = [];
  for (const st of final.stock) {
    for (const { orderId, marker } of st.markers) {
      const { Item } = await run.db.send(new GetCommand({ TableName: run.tables.orders, Key: { orderId }, ConsistentRead: true }));
      const records = { status: Item?.status, inventory: Item?.inventory, release: Item?.release, cancel: Item?.cancel };
      stories.push(
        [
          `marker left on ${st.sku} by order ${orderId}: ${marker}; the order records ${JSON.stringify(records)}`,
          ...(logs.linesByOrder.get(orderId) ?? []).map((line) => `    ${line}`),
        ].join('\n'),
      );
    }
  }
  return stories;
}

/** Every order's status and timeline, the ledger, the stock and the shipments, as one string: equal digests, nothing changed. */
function digestOf(orders: Map<string, OrderRecord>, charges: Set<string>, refunds: Set<string>, stock: StockAccount[]): string {
  return JSON.stringify({
    orders: [...orders.values()]
      .map((o) => [
        o.orderId,
        o.status,
        o.reason ?? '',
        ...Object.values(o.stages).map((st) => `${st.status}:${st.timeline.map((e) => e.what).join('|')}`),
      ])
      .sort(),
    ledger: [...[...charges].map((id) => `${id}:CHARGE`), ...[...refunds].map((id) => `${id}:REFUND`)].sort(),
    stock: stock.map((st) => [st.sku, st.available, st.markers.length]),
  });
}

/** The faults that fired and the duplicates delivered, from the runtime's counts and the log lines. */
function accountFaultsAndDuplicates(
  run: ChaosRun,
  logs: LogWatch,
  placement: ChaosResult['placement'],
): Pick<ChaosResult, 'faultsFired' | 'duplicates'> {
  const { consumers } = run;
  const { eventSources } = run.pipeline.invocationStats();
  // Counted per function (its log lines), whichever of its queues the invocation came from.
  const functionNames = [...new Set(consumers.map((consumer) => consumer.name))];
  const faultsFired = {
    crashedInvocations: logs.crashes,
    timedOutInvocations: functionNames.reduce((sum, name) => sum + (logs.timeouts.get(name) ?? 0), 0),
    failedRecords: consumers.reduce((sum, consumer) => sum + (eventSources[consumer.queueName]?.failedRecords ?? 0), 0),
    publish503s: placement.retriedAfter503,
  };
  const byConsumer = Object.fromEntries(
    functionNames.map((name) => {
      const sources = consumers.filter((consumer) => consumer.name === name).map((consumer) => eventSources[consumer.queueName]);
      const sum = (pick: (source: (typeof sources)[number]) => number | undefined) =>
        sources.reduce((total, source) => total + (pick(source) ?? 0), 0);
      return [
        name,
        {
          deliberate: sum((source) => source?.duplicatedRecords),
          redelivered: sum((source) => source?.redeliveredRecords),
          idempotencyHits: logs.idempotencyHits.get(name) ?? 0,
        },
      ];
    }),
  );
  const total = (pick: (counts: (typeof byConsumer)[string]) => number) =>
    Object.values(byConsumer).reduce((sum, counts) => sum + pick(counts), 0);
  return {
    faultsFired,
    duplicates: {
      deliberate: total((counts) => counts.deliberate),
      redelivered: total((counts) => counts.redelivered),
      idempotencyHits: total((counts) => counts.idempotencyHits),
      byConsumer,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Check: the figures against the invariants

const sampleOf = (ids: string[]) => (ids.length ? `: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}` : '');

/** Check: the run's figures against the invariants, in the order the report lists them. */
function checkRun(figures: ChaosFigures, logs: LogWatch): ChaosCheck[] {
  const { options, placement, beforeRedrive, final, redriven, faultsFired, duplicates } = figures;
  const checks: ChaosCheck[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const placed = beforeRedrive.orders.placed;
  check(
    'every order placed',
    placement.failed === 0 && placed === options.orders,
    `${placed} of ${options.orders} placed (${placement.leftToTheSweep} after 503s only), ${placement.failed} failed`,
  );
  checks.push(...checkAccount('before redrive', beforeRedrive), ...checkAccount('after redrive', final));
  const unchanged = final.digest === beforeRedrive.digest;
  check(
    'the redrive changed nothing',
    unchanged,
    `${redriven} message(s) redriven; orders, ledger, stock and shipments ${unchanged ? 'unchanged' : 'CHANGED'}`,
  );
  const why = (event: string) => {
    const failure = logs.lastFailure.get(event.slice(event.lastIndexOf(' ') + 1));
    return failure ? `${event} (last failure: ${failure})` : event;
  };
  for (const dlq of final.dlqs) {
    check(
      `${dlq.consumer} DLQ holds exactly its poison after the redrive`,
      dlq.poison === dlq.poisonSent && dlq.realEvents.length === 0,
      `${dlq.poison} of ${dlq.poisonSent} poison, ${dlq.realEvents.length} real event(s)${dlq.realEvents.length ? `: ${dlq.realEvents.map(why).join(', ')}` : ''}`,
    );
  }
  const { clearTokenLines, logLines } = figures;
  check(
    'no card token in clear in any log line',
    clearTokenLines === 0,
    `${clearTokenLines} of ${logLines} lines${logs.clearTokenSamples.length ? `, e.g. ${logs.clearTokenSamples[0]}` : ''}`,
  );
  // A run whose faults never fired proves nothing: each fault asked for must have fired at least once.
  if (options.crashRate > 0 || options.timeoutRate > 0 || options.transientErrorRate > 0) {
    check(
      'the injected faults fired',
      (options.crashRate === 0 || faultsFired.crashedInvocations > 0) &&
        (options.timeoutRate === 0 || faultsFired.timedOutInvocations > 0) &&
        (options.transientErrorRate === 0 || faultsFired.failedRecords > 0),
      `${faultsFired.crashedInvocations} crashed and ${faultsFired.timedOutInvocations} timed-out invocation(s), ${faultsFired.failedRecords} failed record(s), ${faultsFired.publish503s} 503(s) from the order API`,
    );
  }
  if (options.duplicateRate > 0) {
    check(
      'duplicates delivered and absorbed',
      duplicates.deliberate > 0 && duplicates.idempotencyHits > 0,
      `${duplicates.deliberate} deliberate + ${duplicates.redelivered} redelivered, ${duplicates.idempotencyHits} idempotency hit(s)`,
    );
  }
  return checks;
}

/** The invariants one account must meet, each check named after the moment (`label`). */
function checkAccount(label: string, account: ChaosAccount): ChaosCheck[] {
  const checks: ChaosCheck[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name: `${label}: ${name}`, ok, detail });
  const { orders, ledger, stock, shipments } = account;
  check(
    'healed: the queues went quiet with every order finished',
    account.quiet,
    `${account.quiet ? 'quiet' : 'not quiet'} after ${account.waitedSeconds} s`,
  );
  check('PENDING = 0', orders.PENDING === 0, `${orders.PENDING} pending`);
  check(
    'charges standing = CONFIRMED',
    ledger.standingCharges === orders.CONFIRMED && ledger.chargesOnCancelled.length === 0 && ledger.confirmedWithoutCharge.length === 0,
    `${ledger.standingCharges} standing charge(s) (CHARGE without REFUND), ${orders.CONFIRMED} confirmed; on non-confirmed orders: ${ledger.chargesOnCancelled.length}${sampleOf(ledger.chargesOnCancelled)}, confirmed without: ${ledger.confirmedWithoutCharge.length}${sampleOf(ledger.confirmedWithoutCharge)}`,
  );
  const markersLeftCount = stock.reduce((sum, st) => sum + st.markers.length, 0);
  check('no stock marker left', markersLeftCount === 0, `${markersLeftCount} marker(s) left`);
  check(
    'stock = initial - confirmed units, never negative',
    stock.every((st) => st.available >= 0 && st.available === st.initial - st.soldExpected),
    stock.map((st) => `${st.sku.slice(st.sku.lastIndexOf('-') + 1)}: ${st.available} = ${st.initial} - ${st.soldExpected}`).join('; '),
  );
  check(
    'every CONFIRMED parcel dispatched, every CANCELLED shipment cancelled',
    shipments.confirmedNotDispatched.length === 0 && shipments.cancelledNotCancelled.length === 0,
    `not dispatched: ${shipments.confirmedNotDispatched.length}${sampleOf(shipments.confirmedNotDispatched)}; not cancelled: ${shipments.cancelledNotCancelled.length}${sampleOf(shipments.cancelledNotCancelled)}`,
  );
  check(
    'every order has its follow-ups',
    account.missingFollowUps.length === 0 && account.unfinished === 0,
    `${account.missingFollowUps.length} missing${sampleOf(account.missingFollowUps)}; ${account.unfinished} order(s) still unfinished`,
  );
  return checks;
}

const pad = (value: unknown, width: number) => String(value).padStart(width);

/** The table `npm run chaos` prints. */
export function formatChaosReport(result: ChaosResult): string {
  const o = result.options;
  const lines: string[] = [];
  const outage = (name: string, w?: { fromSecond: number; untilSecond: number }) =>
    w ? `; ${name} outage from second ${w.fromSecond} to ${w.untilSecond}` : '';
  lines.push(
    `Chaos run: seed ${result.seed}, ${o.orders} orders at concurrency ${o.concurrency}; faults per consumer: ${o.transientErrorRate * 100}% transient record errors, ` +
      `${o.crashRate * 100}% crashed and ${o.timeoutRate * 100}% timed-out invocations, ${o.duplicateRate * 100}% records delivered twice; ` +
      `${o.publishFailureRate * 100}% order publishes failed; ${o.poisonPerQueue} poison message(s) per consumer queue` +
      `${outage('payment provider', result.outages.provider)}${outage('topic', result.outages.topic)}. Sweep ${o.sweepsPerMinute} times a minute. Wall time ${result.wallSeconds} s.`,
  );
  lines.push(
    `Placed: ${result.placement.accepted} accepted, ${result.placement.retriedAfter503} retries after a 503, ${result.placement.leftToTheSweep} left to the sweep (still 503 after 6 tries), ${result.placement.failed} failed.`,
  );
  const f = result.faultsFired;
  lines.push(
    `Fired: ${f.crashedInvocations} crashed and ${f.timedOutInvocations} timed-out invocations, ${f.failedRecords} failed records in the consumers; ${f.publish503s} 503s from the order API.`,
  );
  lines.push('');
  lines.push(
    `${''.padEnd(30)}${pad('placed', 8)}${pad('CONFIRMED', 11)}${pad('CANCELLED', 11)}${pad('PENDING', 9)}${pad('unfinished', 12)}${pad('standing', 10)}${pad('refunds', 9)}${pad('dispatched', 12)}${pad('ship.canc.', 12)}`,
  );
  const row = (label: string, a: ChaosAccount) =>
    `${label.padEnd(30)}${pad(a.orders.placed, 8)}${pad(a.orders.CONFIRMED, 11)}${pad(a.orders.CANCELLED, 11)}${pad(a.orders.PENDING, 9)}${pad(a.unfinished, 12)}` +
    `${pad(a.ledger.standingCharges, 10)}${pad(a.ledger.refunds, 9)}${pad(a.shipments.dispatched, 12)}${pad(a.shipments.cancelled, 12)}`;
  lines.push(row(`before redrive (healed in ${result.beforeRedrive.waitedSeconds} s)`, result.beforeRedrive));
  lines.push(row(`after redrive (${result.final.waitedSeconds} s)`, result.final));
  lines.push(
    `(standing: charges without a refund; unfinished: orders still in the sweep's index. The sweep published an event again ${result.sweep.republished} time(s); it reported stuck orders ${result.sweep.stuckReports} time(s).)`,
  );
  lines.push('');
  lines.push(
    `${'DLQ'.padEnd(30)}${pad('messages', 10)}${pad('poison', 8)}${pad('(sent)', 8)}${pad('real', 6)}   real order events (out of receives)`,
  );
  const dlqRow = (label: string, dlq: DlqAccount) =>
    `${label.padEnd(30)}${pad(dlq.messages, 10)}${pad(dlq.poison, 8)}${pad(`(${dlq.poisonSent})`, 8)}${pad(dlq.realEvents.length, 6)}   ${dlq.realEvents.slice(0, 4).join(', ') || '-'}${dlq.realEvents.length > 4 ? ', ...' : ''}`;
  for (const dlq of result.beforeRedrive.dlqs) lines.push(dlqRow(`${dlq.consumer} (before redrive)`, dlq));
  lines.push(`redriven (poison left): ${result.redriven}`);
  for (const dlq of result.final.dlqs) lines.push(dlqRow(`${dlq.consumer} (after redrive)`, dlq));
  lines.push('');
  lines.push(
    `stock: sold = the confirmed orders' units per SKU, which must equal initial - available; markers = stock changes left unrecorded or untidied on the SKU's item (lib/inventory.ts)`,
  );
  lines.push(`${'sku'.padEnd(30)}${pad('initial', 9)}${pad('available', 11)}${pad('sold', 7)}${pad('markers', 9)}`);
  for (const s of result.final.stock) {
    lines.push(`${s.sku.padEnd(30)}${pad(s.initial, 9)}${pad(s.available, 11)}${pad(s.soldExpected, 7)}${pad(s.markers.length, 9)}`);
  }
  for (const story of result.markerStories) lines.push(story);
  const d = result.duplicates;
  const share = (hits: number, of: number) => (of === 0 ? '-' : `${Math.round((hits / of) * 100)}%`);
  lines.push('');
  lines.push(
    `${'duplicate deliveries'.padEnd(24)}${pad('deliberate', 11)}${pad('redelivered', 13)}${pad('idempotency hits', 18)}${pad('share', 7)}`,
  );
  for (const [consumer, s] of Object.entries(d.byConsumer)) {
    lines.push(
      `${consumer.padEnd(24)}${pad(s.deliberate, 11)}${pad(s.redelivered, 13)}${pad(s.idempotencyHits, 18)}${pad(share(s.idempotencyHits, s.deliberate + s.redelivered), 7)}`,
    );
  }
  lines.push(
    `${'total'.padEnd(24)}${pad(d.deliberate, 11)}${pad(d.redelivered, 13)}${pad(d.idempotencyHits, 18)}${pad(share(d.idempotencyHits, d.deliberate + d.redelivered), 7)}`,
  );
  lines.push(
    '(redelivered: records received with ApproximateReceiveCount > 1; idempotency hits: records answered from the stored result, one "Duplicate delivery" log line each. ' +
      'A redelivery whose first attempt never finished is not a duplicate of finished work, and a concurrent duplicate that finds the first one in progress fails and retries; ' +
      "the events the sweep publishes again reach every consumer, and those that had done their part answer from the stored result, so a consumer's share can pass 100% during an outage.)",
  );
  lines.push('');
  for (const c of result.checks) lines.push(`${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);
  lines.push(result.passed ? 'All checks passed.' : `Checks failed. Replay with --seed ${result.seed}.`);
  return `${lines.join('\n')}\n`;
}
