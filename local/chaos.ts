// The chaos run behind `npm run chaos` (scripts/chaos.ts) and test/e2e/chaos.test.ts: the local
// pipeline with faults on in every consumer (transient record errors, crashed and timed-out
// invocations, deliberate duplicate deliveries) and poison messages on every stage queue, then an
// account of every order, every charge, every unit of stock and every dead letter.

import { GetQueueAttributesCommand, SendMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { redriveDeadLetters } from '../lib/dlq-redrive.js';
import { heldReservations } from '../lib/inventory.js';
import { seededRandom, sleep } from '../lib/fault-injection.js';
import { parseOrderEvent } from '../lib/queue-consumer.js';
import { clientConfig } from './emulators.js';
import { startLocalPipeline, type LocalPipeline, type LocalPipelineOptions } from './runtime.js';

export const STAGES = ['inventory', 'payment', 'shipping'] as const;
type Stage = (typeof STAGES)[number];
const STAGE_QUEUE_IDS: Record<Stage, string> = { inventory: 'InventoryQueue', payment: 'PaymentQueue', shipping: 'ShippingQueue' };

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
  /** Poison messages written straight to each stage queue. */
  poisonPerQueue?: number;
  /** Longest wait for the pipeline to go quiet, each time. */
  maxWaitSeconds?: number;
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
  stage: Stage;
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

export interface ChaosResult {
  seed: number;
  options: Required<Omit<ChaosOptions, 'onProgress' | 'pipeline' | 'seed'>>;
  wallSeconds: number;
  placement: { accepted: number; retriedAfter503: number; failed: number };
  afterChaos: { orders: OrderCounts; dlqs: DlqAccount[]; quiet: boolean; waitedSeconds: number };
  redriven: number;
  final: { orders: OrderCounts; dlqs: DlqAccount[]; quiet: boolean; waitedSeconds: number };
  ledger: { standingCharges: number; refunds: number; chargesOnCancelled: string[]; confirmedWithoutCharge: string[] };
  stock: Array<{ sku: string; initial: number; available: number; reserved: number; sold: number; heldReservations: number; soldExpected: number }>;
  committedOrders: number;
  duplicates: {
    deliberate: number;
    redelivered: number;
    idempotencyHits: number;
    byStage: Record<Stage, { deliberate: number; redelivered: number; idempotencyHits: number }>;
  };
  logLines: number;
  clearTokenLines: number;
  checks: ChaosCheck[];
  passed: boolean;
}

const TOKENS = ['tok_visa', 'tok_decline', 'tok_flaky'] as const;


interface PlacedOrder {
  orderId: string;
  items: Array<{ sku: string; quantity: number }>;
  token: string;
}

export async function runChaos(input: ChaosOptions = {}): Promise<ChaosResult> {
  const started = Date.now();
  const seed = (input.seed ?? Math.floor(Math.random() * 2 ** 31)) >>> 0;
  const options = {
    orders: input.orders ?? 2000,
    concurrency: input.concurrency ?? 16,
    transientErrorRate: input.transientErrorRate ?? 0.1,
    crashRate: input.crashRate ?? 0.01,
    timeoutRate: input.timeoutRate ?? 0.01,
    duplicateRate: input.duplicateRate ?? 0.05,
    publishFailureRate: input.publishFailureRate ?? 0.01,
    poisonPerQueue: input.poisonPerQueue ?? 3,
    maxWaitSeconds: input.maxWaitSeconds ?? 300,
  };
  const progress = input.onProgress ?? (() => {});
  const random = seededRandom(seed);
  const run = `${seed.toString(36).toUpperCase()}-${Date.now().toString(36).toUpperCase()}`;
  const customerId = `chaos_${seed.toString(36)}`;

  // Every handler line passes through here: duplicates absorbed by idempotency are counted from
  // the consumers' own log line (one per stored result returned), and no line may hold a token.
  const hits: Record<Stage, number> = { inventory: 0, payment: 0, shipping: 0 };
  let logLines = 0;
  let clearTokenLines = 0;
  const clearTokenSamples: string[] = [];
  const write = (line: string) => {
    logLines++;
    if (TOKENS.some((token) => line.includes(token))) {
      clearTokenLines++;
      if (clearTokenSamples.length < 3) clearTokenSamples.push(line.slice(0, 300));
    }
    if (line.includes('Duplicate delivery: returning the stored result')) {
      // Handler lines arrive as `  <function> | <line>`; the stage functions are named after their stage.
      const stage = STAGES.find((name) => line.startsWith(`  ${name} | `));
      if (stage) hits[stage]++;
    }
  };

  const faults = {
    FAULT_TRANSIENT_ERROR_RATE: String(options.transientErrorRate),
    FAULT_CRASH_RATE: String(options.crashRate),
    FAULT_TIMEOUT_RATE: String(options.timeoutRate),
    FAULT_SEED: String(seed),
    RETRY_BACKOFF_BASE_SECONDS: '1',
    LOCAL_DUPLICATE_DELIVERY_RATE: String(options.duplicateRate),
  };
  progress(`chaos: seed ${seed} (replay with --seed ${seed}), ${options.orders} orders`);
  const pipeline: LocalPipeline = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    seed: false,
    ...input.pipeline,
    quiet: false,
    write,
    environmentOverrides: {
      ...Object.fromEntries(STAGES.map((stage) => [stage, faults])),
      createOrder: { FAULT_PUBLISH_FAILURE_RATE: String(options.publishFailureRate), FAULT_SEED: String(seed) },
      ...input.pipeline?.environmentOverrides,
    },
  });
  const sqs = new SQSClient(clientConfig(pipeline.endpoints.sqs));
  const db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(pipeline.endpoints.dynamodb)));
  try {
    const table = (id: string) => {
      const name = pipeline.resources.tables[id];
      if (!name) throw new Error(`No ${id}`);
      return name;
    };
    const queueOf = (stage: Stage) => {
      const queue = Object.values(pipeline.resources.queues).find((q) => q.logicalId === STAGE_QUEUE_IDS[stage]);
      if (!queue?.dlqUrl) throw new Error(`No ${stage} queue with a DLQ`);
      return { url: queue.url, dlqUrl: queue.dlqUrl, name: queue.url.slice(queue.url.lastIndexOf('/') + 1) };
    };

    // Stock: three SKUs that never run out, one that does (so some orders are cancelled for it).
    const plentiful = ['A', 'B', 'C'].map((letter) => `CHAOS-${run}-${letter}`);
    const scarce = `CHAOS-${run}-SCARCE`;
    const initial = new Map<string, number>([...plentiful.map((sku) => [sku, options.orders * 3 + 10] as const), [scarce, Math.max(3, Math.round(options.orders * 0.04))]]);
    for (const [sku, available] of initial) {
      await db.send(new PutCommand({ TableName: table('InventoryTable'), Item: { sku, name: `Chaos ${sku}`, available, reserved: 0, sold: 0, applying: {} } }));
    }

    // Orders: mostly tok_visa, some declined, some flaky; one or two plentiful lines, sometimes the scarce one.
    const plans = Array.from({ length: options.orders }, (_, index) => {
      const roll = random();
      const token = roll < 0.08 ? 'tok_decline' : roll < 0.13 ? 'tok_flaky' : 'tok_visa';
      const first = Math.floor(random() * plentiful.length);
      const skus = [plentiful[first]!];
      if (random() < 0.4) skus.push(plentiful[(first + 1) % plentiful.length]!);
      if (random() < 0.08) skus.push(scarce);
      const items = skus.map((sku) => ({ sku, quantity: sku === scarce ? 1 : 1 + Math.floor(random() * 3) }));
      return { key: `chaos-${run}-${index}`, items, token };
    });

    // Poison: bodies no consumer can ever process, straight onto each stage queue.
    const poisonBodies = new Set<string>();
    for (const stage of STAGES) {
      for (let index = 0; index < options.poisonPerQueue; index++) {
        const marker = `chaos-poison-${run}-${stage}-${index}`;
        const variants = [
          `${marker}: not JSON at all`,
          JSON.stringify({ chaosPoison: marker, eventType: 'OrderPlaced' }),
          JSON.stringify({ chaosPoison: marker, eventType: 'OrderShredded', orderId: 'ord_00000000000000000000000000000000' }),
        ];
        const body = variants[index % variants.length]!;
        poisonBodies.add(body);
        await sqs.send(new SendMessageCommand({ QueueUrl: queueOf(stage).url, MessageBody: body }));
      }
    }
    const isPoison = (message: Message) => poisonBodies.has(message.Body ?? '');

    // Place the orders through the HTTP API; a 503 (publish failed after the order was stored) is
    // retried with the same Idempotency-Key, as a client should.
    const placed: PlacedOrder[] = [];
    const placement = { accepted: 0, retriedAfter503: 0, failed: 0 };
    let next = 0;
    const progressTimer = setInterval(() => progress(`chaos: placed ${placement.accepted}/${options.orders}`), 5000);
    const baseUrl = pipeline.apiUrl.replace(/\/$/, '');
    const worker = async () => {
      for (;;) {
        const index = next++;
        if (index >= plans.length) return;
        const plan = plans[index]!;
        const body = JSON.stringify({
          customerId,
          items: plan.items,
          payment: { token: plan.token },
          shippingAddress: { name: 'Chaos Monkey', line1: '1 Main St', city: 'London', postalCode: 'N1 9GU', country: 'GB' },
        });
        let orderId: string | undefined;
        for (let attempt = 1; attempt <= 6 && !orderId; attempt++) {
          try {
            const response = await fetch(`${baseUrl}/orders`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'idempotency-key': plan.key },
              body,
            });
            const answer = (await response.json()) as { orderId?: string };
            if (response.status === 202 && answer.orderId) orderId = answer.orderId;
            else if (response.status === 503) placement.retriedAfter503++;
            else throw new Error(`POST /orders answered ${response.status}: ${JSON.stringify(answer)}`);
          } catch (error) {
            if (attempt === 6) progress(`chaos: order ${plan.key} failed: ${(error as Error).message}`);
          }
          if (!orderId) await sleep(200 * attempt);
        }
        if (orderId) {
          placement.accepted++;
          placed.push({ orderId, items: plan.items, token: plan.token });
        } else placement.failed++;
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    clearInterval(progressTimer);
    progress(`chaos: placed ${placement.accepted}/${options.orders} (${placement.retriedAfter503} retries after a 503) in ${Math.round((Date.now() - started) / 1000)} s`);

    const placedIds = new Set(placed.map((order) => order.orderId));
    const readOrders = async () => {
      const orders = new Map<string, { status: string; stages: Record<Stage, { timeline: Array<{ what: string }> }> }>();
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await db.send(new ScanCommand({ TableName: table('OrdersTable'), ExclusiveStartKey: startKey, ConsistentRead: true }));
        for (const item of page.Items ?? []) if (placedIds.has(String(item.orderId))) orders.set(String(item.orderId), item as never);
        startKey = page.LastEvaluatedKey;
      } while (startKey);
      return orders;
    };
    const countOrders = async (): Promise<OrderCounts> => {
      const orders = await readOrders();
      const counts: OrderCounts = { placed: placedIds.size, CONFIRMED: 0, CANCELLED: 0, PENDING: 0 };
      for (const id of placedIds) {
        const status = orders.get(id)?.status ?? 'PENDING';
        counts[status as 'CONFIRMED' | 'CANCELLED' | 'PENDING']++;
      }
      return counts;
    };
    const queueDepth = async (url: string) => {
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
    };

    /** Quiet: the stage queues hold nothing, visible or in flight, and no batch runs, for 3 s in a row. */
    const waitQuiet = async (label: string) => {
      const waitStarted = Date.now();
      let quietFor = 0;
      let lastShown = 0;
      for (;;) {
        const depths = await Promise.all(STAGES.map((stage) => queueDepth(queueOf(stage).url)));
        const running = Object.values(pipeline.invocationStats().eventSources).reduce((sum, source) => sum + source.running, 0);
        const busy = depths.reduce((sum, d) => sum + d.visible + d.inFlight, 0) + running;
        quietFor = busy === 0 ? quietFor + 1 : 0;
        const waited = Math.round((Date.now() - waitStarted) / 1000);
        if (Date.now() - lastShown > 5000) {
          lastShown = Date.now();
          const counts = await countOrders();
          progress(
            `chaos: ${label} ${waited} s: CONFIRMED ${counts.CONFIRMED}, CANCELLED ${counts.CANCELLED}, PENDING ${counts.PENDING}; ` +
              STAGES.map((stage, i) => `${stage} ${depths[i]!.visible} visible/${depths[i]!.inFlight} in flight`).join(', '),
          );
        }
        if (quietFor >= 3) return { quiet: true, waitedSeconds: waited };
        if (waited >= options.maxWaitSeconds) return { quiet: false, waitedSeconds: waited };
        await sleep(1000);
      }
    };

    const accountDlqs = async (): Promise<DlqAccount[]> => {
      const accounts: DlqAccount[] = [];
      for (const stage of STAGES) {
        const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: queueOf(stage).dlqUrl, sourceQueueUrl: queueOf(stage).url, dryRun: true, scanVisibilitySeconds: 10 });
        const account: DlqAccount = { stage, messages: report.messages.length, poisonSent: options.poisonPerQueue, poison: 0, realEvents: [] };
        for (const message of report.messages) {
          if (poisonBodies.has(message.body)) {
            account.poison++;
            continue;
          }
          try {
            const event = parseOrderEvent(message.body);
            account.realEvents.push(`${event.eventType} ${event.orderId}`);
          } catch {
            account.realEvents.push(`unknown body ${message.body.slice(0, 60)}`);
          }
        }
        accounts.push(account);
      }
      return accounts;
    };

    const first = await waitQuiet('draining');
    const afterChaos = { orders: await countOrders(), dlqs: await accountDlqs(), ...first };

    // Redrive the real events that ran out of receives; poison stays where it is.
    let redriven = 0;
    for (const stage of STAGES) {
      const report = await redriveDeadLetters({ sqs, deadLetterQueueUrl: queueOf(stage).dlqUrl, sourceQueueUrl: queueOf(stage).url, select: (message) => !isPoison(message), scanVisibilitySeconds: 10 });
      redriven += report.moved;
    }
    if (redriven > 0) progress(`chaos: redrove ${redriven} real order event(s) from the DLQs`);
    const second = redriven > 0 ? await waitQuiet('after redrive') : { quiet: afterChaos.quiet, waitedSeconds: 0 };
    const final = { orders: await countOrders(), dlqs: await accountDlqs(), ...second };

    // The ledger: CHARGE and REFUND entries of our orders (the simulator's SIMULATOR# records aside).
    const charges = new Set<string>();
    const refunds = new Set<string>();
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await db.send(new ScanCommand({ TableName: table('PaymentsTable'), ExclusiveStartKey: startKey, ConsistentRead: true }));
      for (const item of page.Items ?? []) {
        const orderId = String(item.orderId);
        if (!placedIds.has(orderId)) continue;
        if (item.entryId === 'CHARGE') charges.add(orderId);
        if (item.entryId === 'REFUND') refunds.add(orderId);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    const orders = await readOrders();
    const confirmed = [...placedIds].filter((id) => orders.get(id)?.status === 'CONFIRMED');
    const standing = new Set([...charges].filter((id) => !refunds.has(id)));
    const chargesOnCancelled = [...standing].filter((id) => orders.get(id)?.status !== 'CONFIRMED');
    const confirmedWithoutCharge = confirmed.filter((id) => !standing.has(id));

    // Stock: sold must be exactly the confirmed orders' units; nothing may still be held.
    const soldExpected = new Map<string, number>();
    const confirmedSet = new Set(confirmed);
    for (const order of placed) {
      if (!confirmedSet.has(order.orderId)) continue;
      for (const item of order.items) soldExpected.set(item.sku, (soldExpected.get(item.sku) ?? 0) + item.quantity);
    }
    const stock: ChaosResult['stock'] = [];
    // Held: the run's lines still RESERVED, plus operation markers left on the SKU items.
    const held = await heldReservations(db, { inventory: table('InventoryTable'), reservations: table('ReservationsTable') }, initial.keys(), placedIds);
    for (const [sku, start] of initial) {
      const { Item } = await db.send(new GetCommand({ TableName: table('InventoryTable'), Key: { sku }, ConsistentRead: true }));
      stock.push({
        sku,
        initial: start,
        available: Number(Item?.available),
        reserved: Number(Item?.reserved),
        sold: Number(Item?.sold ?? 0),
        heldReservations: held.get(sku) ?? 0,
        soldExpected: soldExpected.get(sku) ?? 0,
      });
    }
    const committedOrders = confirmed.filter((id) => orders.get(id)?.stages.inventory.timeline.some((entry) => entry.what === 'committed')).length;

    const eventSources = pipeline.invocationStats().eventSources;
    const byStage = Object.fromEntries(
      STAGES.map((stage) => {
        const source = eventSources[queueOf(stage).name];
        return [stage, { deliberate: source?.duplicatedRecords ?? 0, redelivered: source?.redeliveredRecords ?? 0, idempotencyHits: hits[stage] }];
      }),
    ) as ChaosResult['duplicates']['byStage'];
    const duplicates = {
      deliberate: STAGES.reduce((sum, stage) => sum + byStage[stage].deliberate, 0),
      redelivered: STAGES.reduce((sum, stage) => sum + byStage[stage].redelivered, 0),
      idempotencyHits: STAGES.reduce((sum, stage) => sum + byStage[stage].idempotencyHits, 0),
      byStage,
    };

    const checks: ChaosCheck[] = [];
    const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
    check('every order placed', placement.failed === 0 && placedIds.size === options.orders, `${placedIds.size} of ${options.orders} accepted, ${placement.failed} failed`);
    check('PENDING = 0', final.orders.PENDING === 0, `${final.orders.PENDING} pending`);
    for (const dlq of final.dlqs) {
      check(`${dlq.stage} DLQ holds exactly its poison`, dlq.poison === dlq.poisonSent && dlq.realEvents.length === 0, `${dlq.poison} of ${dlq.poisonSent} poison, ${dlq.realEvents.length} real event(s)${dlq.realEvents.length ? `: ${dlq.realEvents.join(', ')}` : ''}`);
    }
    check(
      'charges standing = CONFIRMED',
      standing.size === final.orders.CONFIRMED && chargesOnCancelled.length === 0 && confirmedWithoutCharge.length === 0,
      `${standing.size} standing charge(s) (CHARGE without REFUND), ${final.orders.CONFIRMED} confirmed; on non-confirmed orders: ${chargesOnCancelled.length}, confirmed without: ${confirmedWithoutCharge.length}`,
    );
    const heldUnits = stock.reduce((sum, s) => sum + s.reserved, 0);
    const heldEntries = stock.reduce((sum, s) => sum + s.heldReservations, 0);
    check(
      'reservations committed = CONFIRMED',
      committedOrders === final.orders.CONFIRMED && stock.every((s) => s.sold === s.soldExpected) && heldUnits === 0 && heldEntries === 0,
      `${committedOrders} confirmed orders committed; sold = confirmed units on every SKU: ${stock.every((s) => s.sold === s.soldExpected)}; reservations standing: ${heldEntries} entries, ${heldUnits} units`,
    );
    check(
      'stock never negative, conserved',
      stock.every((s) => s.available >= 0 && s.reserved >= 0 && s.initial === s.available + s.reserved + s.sold),
      stock.map((s) => `${s.sku.slice(s.sku.lastIndexOf('-') + 1)}: ${s.initial} = ${s.available} + ${s.reserved} + ${s.sold}`).join('; '),
    );
    check('no card token in clear in any log line', clearTokenLines === 0, `${clearTokenLines} of ${logLines} lines${clearTokenSamples.length ? `, e.g. ${clearTokenSamples[0]}` : ''}`);
    if (options.duplicateRate > 0) {
      check('duplicates delivered and absorbed', duplicates.deliberate > 0 && duplicates.idempotencyHits > 0, `${duplicates.deliberate} deliberate + ${duplicates.redelivered} redelivered, ${duplicates.idempotencyHits} idempotency hit(s)`);
    }

    return {
      seed,
      options,
      wallSeconds: Math.round((Date.now() - started) / 1000),
      placement,
      afterChaos,
      redriven,
      final,
      ledger: { standingCharges: standing.size, refunds: refunds.size, chargesOnCancelled, confirmedWithoutCharge },
      stock,
      committedOrders,
      duplicates,
      logLines,
      clearTokenLines,
      checks,
      passed: checks.every((c) => c.ok),
    };
  } finally {
    sqs.destroy();
    db.destroy();
    await pipeline.stop();
  }
}

const pad = (value: unknown, width: number) => String(value).padStart(width);

/** The table `npm run chaos` prints. */
export function formatChaosReport(result: ChaosResult): string {
  const o = result.options;
  const lines: string[] = [];
  lines.push(
    `Chaos run: seed ${result.seed}, ${o.orders} orders at concurrency ${o.concurrency}; faults per consumer: ${o.transientErrorRate * 100}% transient record errors, ` +
      `${o.crashRate * 100}% crashed and ${o.timeoutRate * 100}% timed-out invocations, ${o.duplicateRate * 100}% records delivered twice; ` +
      `${o.publishFailureRate * 100}% order publishes failed; ${o.poisonPerQueue} poison message(s) per stage queue. Wall time ${result.wallSeconds} s.`,
  );
  lines.push('');
  lines.push(`${'orders'.padEnd(24)}${pad('placed', 8)}${pad('CONFIRMED', 11)}${pad('CANCELLED', 11)}${pad('PENDING', 9)}`);
  const row = (label: string, c: OrderCounts) => `${label.padEnd(24)}${pad(c.placed, 8)}${pad(c.CONFIRMED, 11)}${pad(c.CANCELLED, 11)}${pad(c.PENDING, 9)}`;
  lines.push(row(`after chaos (${result.afterChaos.waitedSeconds} s)`, result.afterChaos.orders));
  lines.push(row(`after redrive (${result.final.waitedSeconds} s)`, result.final.orders));
  lines.push('');
  lines.push(`${'DLQ'.padEnd(24)}${pad('messages', 10)}${pad('poison', 8)}${pad('(sent)', 8)}${pad('real', 6)}   real order events (out of receives)`);
  for (const dlq of result.afterChaos.dlqs) {
    lines.push(`${`${dlq.stage} (after chaos)`.padEnd(24)}${pad(dlq.messages, 10)}${pad(dlq.poison, 8)}${pad(`(${dlq.poisonSent})`, 8)}${pad(dlq.realEvents.length, 6)}   ${dlq.realEvents.join(', ') || '-'}`);
  }
  lines.push(`redriven (poison left): ${result.redriven}`);
  for (const dlq of result.final.dlqs) {
    lines.push(`${`${dlq.stage} (final)`.padEnd(24)}${pad(dlq.messages, 10)}${pad(dlq.poison, 8)}${pad(`(${dlq.poisonSent})`, 8)}${pad(dlq.realEvents.length, 6)}   ${dlq.realEvents.join(', ') || '-'}`);
  }
  lines.push('');
  lines.push(`payments: ${result.ledger.standingCharges} charges standing (CHARGE without REFUND), ${result.ledger.refunds} refunds`);
  lines.push(
    `stock: reservations standing = entries left in a SKU's reservations map (units held for an order, neither committed nor released); ` +
      `committed = confirmed orders whose inventory stage recorded "committed", and sold = the confirmed orders' units per SKU`,
  );
  lines.push(`${'sku'.padEnd(30)}${pad('initial', 9)}${pad('available', 11)}${pad('reserved', 10)}${pad('sold', 7)}${pad('expected', 10)}${pad('held', 6)}`);
  for (const s of result.stock) {
    lines.push(`${s.sku.padEnd(30)}${pad(s.initial, 9)}${pad(s.available, 11)}${pad(s.reserved, 10)}${pad(s.sold, 7)}${pad(s.soldExpected, 10)}${pad(s.heldReservations, 6)}`);
  }
  const d = result.duplicates;
  const share = (hits: number, of: number) => (of === 0 ? '-' : `${Math.round((hits / of) * 100)}%`);
  lines.push('');
  lines.push(`${'duplicate deliveries'.padEnd(24)}${pad('deliberate', 11)}${pad('redelivered', 13)}${pad('idempotency hits', 18)}${pad('share', 7)}`);
  for (const stage of STAGES) {
    const s = d.byStage[stage];
    lines.push(`${stage.padEnd(24)}${pad(s.deliberate, 11)}${pad(s.redelivered, 13)}${pad(s.idempotencyHits, 18)}${pad(share(s.idempotencyHits, s.deliberate + s.redelivered), 7)}`);
  }
  lines.push(`${'total'.padEnd(24)}${pad(d.deliberate, 11)}${pad(d.redelivered, 13)}${pad(d.idempotencyHits, 18)}${pad(share(d.idempotencyHits, d.deliberate + d.redelivered), 7)}`);
  lines.push(
    '(redelivered: records received with ApproximateReceiveCount > 1; idempotency hits: records answered from the stored result, one "Duplicate delivery" log line each. ' +
      'A redelivery whose first attempt never finished is not a duplicate of finished work, and a concurrent duplicate that finds the first one in progress fails and retries, so the share stays below 100%.)',
  );
  lines.push('');
  for (const c of result.checks) lines.push(`${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);
  lines.push(result.passed ? 'All checks passed.' : `Checks failed. Replay with --seed ${result.seed}.`);
  return `${lines.join('\n')}\n`;
}
