import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import type { OrderCancelled, OrderConfirmed, OrderPlaced } from './events.js';
import type { OrderItem } from './order.js';
import { appendStageTimelineOnce, completeStage, loadOrder, type StageCompletion } from './order-outcome.js';

// Stock lives on one item per SKU (counters only); each order line's reservation is an item of its
// own in the reservations table, keyed by order, so a SKU item stays the same size however many
// orders wait on it. Without transactions (the local DynamoDB has none) an operation on a line is
// four single-item steps:
//   1. read the line (consistent): done already, or not allowed, stops here;
//   2. the counters and a marker `applying.<orderId> = op` on the SKU item, in one conditional write
//      that refuses a second application while the marker stands;
//   3. the line's new state, conditional on its old one;
//   4. the marker removed.
// A crash between any two steps heals on retry: the line says whether step 3 happened, the marker
// whether step 2 did. Two attempts at once are NOT safe (both pass step 1; once the first has
// removed its marker, the second applies the counters again); the consumer's idempotency record
// keeps a duplicate event out while one attempt runs (docs/decisions.md, "The idempotency
// in-progress record is load-bearing for inventory").

/** What an operation on a line does to the stock item; the marker it leaves while in flight. */
export type Operation = 'reserve' | 'commit' | 'release';
export type LineState = 'RESERVED' | 'COMMITTED' | 'RELEASED';

/** The stock item in the inventory table. */
export interface StockItem {
  sku: string;
  name: string;
  available: number;
  reserved: number;
  sold: number;
  /** Per order id, an operation whose counters are changed but whose line is not yet finished. */
  applying: Record<string, Operation>;
}

/** One order line's reservation, in the reservations table (key orderId, sku). */
export interface ReservationLine {
  orderId: string;
  sku: string;
  quantity: number;
  state: LineState;
  /** When the line reached its state. */
  at: string;
  /** On a line released because the order was out of stock: the SKU that was short. */
  shortSku?: string;
}

export type ReservationResult =
  | { outcome: 'reserved'; lines: number }
  | { outcome: 'out-of-stock'; sku: string; released: number };

interface OperationSpec {
  /** The line state the operation needs (undefined: no line yet). */
  from: LineState | undefined;
  to: LineState;
  /** The stock item's own condition, besides the marker's. */
  condition: string;
  counters: string;
  /** A marker this operation may overwrite: left by the operation that produced `from`, whose step 3 is therefore done. */
  overwrites: Operation | undefined;
}

const OPERATIONS: Record<Operation, OperationSpec> = {
  reserve: {
    from: undefined,
    to: 'RESERVED',
    condition: 'available >= :quantity',
    counters: 'available = available - :quantity, reserved = reserved + :quantity',
    overwrites: undefined,
  },
  commit: {
    from: 'RESERVED',
    to: 'COMMITTED',
    condition: 'reserved >= :quantity',
    counters: 'reserved = reserved - :quantity, sold = if_not_exists(sold, :zero) + :quantity',
    overwrites: 'reserve',
  },
  release: {
    from: 'RESERVED',
    to: 'RELEASED',
    condition: 'reserved >= :quantity',
    counters: 'reserved = reserved - :quantity, available = available + :quantity',
    overwrites: 'reserve',
  },
};

/** Stock figures that disagree with a line's state: a bug or a hand edit, never a business outcome. */
export class InventoryInconsistencyError extends Error {
  override name = 'InventoryInconsistencyError';
}

export async function findStockItem(sku: string): Promise<StockItem | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.inventoryTable(), Key: { sku }, ConsistentRead: true }),
  );
  return result.Item as StockItem | undefined;
}

export async function findReservationLine(orderId: string, sku: string): Promise<ReservationLine | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.reservationsTable(), Key: { orderId, sku }, ConsistentRead: true }),
  );
  return result.Item as ReservationLine | undefined;
}

/** A line released without ever holding units: the short line of an out-of-stock order. */
function isShortLine(line: ReservationLine): boolean {
  return line.state === 'RELEASED' && line.shortSku === line.sku;
}

type LineOutcome =
  | { kind: 'reserved' }
  /** Refused now: not enough stock, or no such SKU. */
  | { kind: 'short' }
  /** Released by an earlier attempt (or a cancellation): the order cannot be reserved again. */
  | { kind: 'released'; shortSku: string | undefined }
  /** Reserved, but an earlier attempt had given its units back and not finished the line. */
  | { kind: 'releasing' };

/**
 * Reserves every line of an order, all or none. A line reserved by an earlier attempt that crashed
 * counts as done. When a line is short, or its SKU unknown, that line is recorded as the short one
 * and every line of the order is released: the order is out of stock, a business outcome, and stays
 * so on any retry (a released line is never reserved again).
 */
export async function reserveInventory(orderId: string, items: OrderItem[]): Promise<ReservationResult> {
  let releasingSku: string | undefined;
  for (const item of items) {
    const found = await reserveLine(orderId, item);
    if (found.kind === 'reserved') continue;
    if (found.kind === 'releasing') {
      // The short line recorded by that attempt comes later in the order; keep looking for it.
      releasingSku ??= item.sku;
      continue;
    }
    let shortSku: string;
    if (found.kind === 'short') {
      // Recorded before anything is released, so a retry after a crash mid-release knows the order
      // is out of stock, and which SKU, even if that SKU has been restocked meanwhile.
      await recordShortLine(orderId, item);
      shortSku = item.sku;
    } else {
      shortSku = found.shortSku ?? item.sku;
    }
    // All lines, not only the ones this call reserved: an earlier attempt may have reserved others.
    const released = await releaseLines(orderId, items, shortSku);
    return { outcome: 'out-of-stock', sku: shortSku, released };
  }
  if (releasingSku !== undefined) {
    // A release in flight and no short line recorded (reserveInventory records one first, so this is
    // a release started elsewhere): finish it rather than report the order reserved with units given
    // back. No SKU was short; the one found half released stands in for it in the result.
    return { outcome: 'out-of-stock', sku: releasingSku, released: await releaseLines(orderId, items) };
  }
  return { outcome: 'reserved', lines: items.length };
}

async function reserveLine(orderId: string, item: OrderItem): Promise<LineOutcome> {
  const line = await findReservationLine(orderId, item.sku);
  if (line?.state === 'RELEASED') return { kind: 'released', shortSku: line.shortSku };
  if (line) {
    // RESERVED, or COMMITTED since: done. Only on this retry path is the stock item read, to remove
    // a marker a crash before step 4 left, and to spot a release an earlier attempt left half done.
    const marker = await clearLeftoverMarker(orderId, item.sku, 'reserve');
    return line.state === 'RESERVED' && marker === 'release' ? { kind: 'releasing' } : { kind: 'reserved' };
  }
  const refused = await applyCounters('reserve', orderId, item.sku, item.quantity);
  if (refused) {
    if (refused.marker !== undefined) {
      throw new InventoryInconsistencyError(
        `Order ${orderId} has no reservation line for ${item.sku}, but its stock item is applying "${refused.marker}" for it`,
      );
    }
    return { kind: 'short' };
  }
  await writeLineState('reserve', orderId, item.sku, item.quantity);
  await clearMarker(orderId, item.sku, 'reserve');
  return { kind: 'reserved' };
}

/**
 * Turns a reservation into a sale: reserved → sold, once per line. Returns the number of lines
 * committed by this call (a line whose counters a crashed attempt had moved counts here, where it
 * is finished).
 */
export async function commitReservation(orderId: string, items: OrderItem[]): Promise<number> {
  let changed = 0;
  for (const item of items) if (await settleLine('commit', orderId, item.sku)) changed += 1;
  return changed;
}

/** Gives reserved stock back: reserved → available, once; nothing for lines never reserved, committed or already released. */
export async function releaseReservation(orderId: string, items: OrderItem[]): Promise<number> {
  return releaseLines(orderId, items);
}

async function releaseLines(orderId: string, items: OrderItem[], shortSku?: string): Promise<number> {
  let changed = 0;
  for (const item of items) if (await settleLine('release', orderId, item.sku, shortSku)) changed += 1;
  return changed;
}

/** Commit or release of one line: from RESERVED to its final state. True when this call moved it. */
async function settleLine(op: 'commit' | 'release', orderId: string, sku: string, shortSku?: string): Promise<boolean> {
  const spec = OPERATIONS[op];
  const line = await findReservationLine(orderId, sku);
  if (!line) return false;
  if (line.state === spec.to) {
    // Done before; a crash before step 4 may have left this operation's marker. A short line never
    // held units, so it never had one: no need to read its stock item.
    if (!isShortLine(line)) await clearLeftoverMarker(orderId, sku, op);
    return false;
  }
  if (line.state !== spec.from) return false;
  const refused = await applyCounters(op, orderId, sku, line.quantity);
  if (refused) {
    throw new InventoryInconsistencyError(
      `Cannot ${op} ${line.quantity} of ${sku} for order ${orderId}: its line is RESERVED but the stock item ` +
        (refused.marker ? `is applying "${refused.marker}" for it` : `does not hold that many reserved units, or does not exist`),
    );
  }
  const moved = await writeLineState(op, orderId, sku, line.quantity, shortSku);
  await clearMarker(orderId, sku, op);
  return moved;
}

/**
 * Step 2: the counters and the marker in one conditional write. Resolves undefined when applied,
 * by this call or by an earlier attempt whose marker still stands; otherwise with the marker found
 * (undefined: none), for the caller to tell a business refusal from an inconsistency.
 */
async function applyCounters(
  op: Operation,
  orderId: string,
  sku: string,
  quantity: number,
): Promise<{ marker: Operation | undefined } | undefined> {
  const spec = OPERATIONS[op];
  // The marker condition admits only a marker left by the operation that produced the line's current
  // state (its step 3 done): never a marker of this operation (applied already) nor one of another
  // operation still in flight (a commit must not land on a half-done release, or the reverse).
  const markerCondition = spec.overwrites
    ? '(attribute_not_exists(applying.#orderId) OR applying.#orderId = :overwrites)'
    : 'attribute_not_exists(applying.#orderId)';
  try {
    await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku },
        ConditionExpression: `attribute_exists(sku) AND ${spec.condition} AND ${markerCondition}`,
        UpdateExpression: `SET ${spec.counters}, applying.#orderId = :op`,
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: {
          ':quantity': quantity,
          ':op': op,
          ...(op === 'commit' ? { ':zero': 0 } : {}),
          ...(spec.overwrites ? { ':overwrites': spec.overwrites } : {}),
        },
      }),
    );
    return undefined;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
  // Which part of the condition failed? (The local DynamoDB ignores ReturnValuesOnConditionCheckFailure.)
  const marker = await readMarker(orderId, sku);
  return marker === op ? undefined : { marker };
}

/** Step 3: the line's new state, conditional on the state the operation starts from. True when this call wrote it. */
async function writeLineState(op: Operation, orderId: string, sku: string, quantity: number, shortSku?: string): Promise<boolean> {
  const spec = OPERATIONS[op];
  const withShort = shortSku !== undefined && spec.to === 'RELEASED';
  try {
    await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.reservationsTable(),
        Key: { orderId, sku },
        ConditionExpression: spec.from === undefined ? 'attribute_not_exists(orderId)' : '#state = :from',
        UpdateExpression: `SET quantity = :quantity, #state = :to, #at = :at${withShort ? ', shortSku = :shortSku' : ''}`,
        ExpressionAttributeNames: { '#state': 'state', '#at': 'at' },
        ExpressionAttributeValues: {
          ':quantity': quantity,
          ':to': spec.to,
          ':at': new Date().toISOString(),
          ...(spec.from === undefined ? {} : { ':from': spec.from }),
          ...(withShort ? { ':shortSku': shortSku } : {}),
        },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/** The short line of an out-of-stock order: RELEASED without ever holding units, naming itself. */
async function recordShortLine(orderId: string, item: OrderItem): Promise<void> {
  try {
    await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.reservationsTable(),
        Key: { orderId, sku: item.sku },
        ConditionExpression: 'attribute_not_exists(orderId)',
        UpdateExpression: 'SET quantity = :quantity, #state = :released, #at = :at, shortSku = :sku',
        ExpressionAttributeNames: { '#state': 'state', '#at': 'at' },
        ExpressionAttributeValues: { ':quantity': item.quantity, ':released': 'RELEASED', ':at': new Date().toISOString(), ':sku': item.sku },
      }),
    );
  } catch (error) {
    // A line is there already: releasing every line next settles whatever it is.
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}

/** Step 4: the marker goes, if it is still this operation's. */
async function clearMarker(orderId: string, sku: string, op: Operation): Promise<void> {
  try {
    await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku },
        ConditionExpression: 'applying.#orderId = :op',
        UpdateExpression: 'REMOVE applying.#orderId',
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: { ':op': op },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}

async function readMarker(orderId: string, sku: string): Promise<Operation | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({
      TableName: config.inventoryTable(),
      Key: { sku },
      ConsistentRead: true,
      ProjectionExpression: 'applying.#orderId',
      ExpressionAttributeNames: { '#orderId': orderId },
    }),
  );
  return (result.Item as Partial<StockItem> | undefined)?.applying?.[orderId];
}

/** The retry path of a line found in its target state: removes this operation's marker if a crash left it; returns the marker found. */
async function clearLeftoverMarker(orderId: string, sku: string, op: Operation): Promise<Operation | undefined> {
  const marker = await readMarker(orderId, sku);
  if (marker === op) await clearMarker(orderId, sku, op);
  return marker;
}

/**
 * Units still held, per SKU: lines of the given orders still RESERVED, plus markers left on the
 * stock items (an operation applied to the counters and not finished). After a run everything
 * should be committed or released, so both should be 0. Scans the reservations table: for
 * accounting (the chaos run), never on the request path.
 */
export async function heldReservations(
  db: DynamoDBDocumentClient,
  tables: { inventory: string; reservations: string },
  skus: Iterable<string>,
  orderIds: ReadonlySet<string>,
): Promise<Map<string, number>> {
  const held = new Map<string, number>();
  for (const sku of skus) held.set(sku, 0);
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await db.send(
      new ScanCommand({
        TableName: tables.reservations,
        ConsistentRead: true,
        FilterExpression: '#state = :reserved',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':reserved': 'RESERVED' satisfies LineState },
        ExclusiveStartKey: startKey,
      }),
    );
    for (const line of (page.Items ?? []) as ReservationLine[]) {
      if (orderIds.has(line.orderId) && held.has(line.sku)) held.set(line.sku, held.get(line.sku)! + 1);
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  for (const sku of held.keys()) {
    const { Item } = await db.send(new GetCommand({ TableName: tables.inventory, Key: { sku }, ConsistentRead: true }));
    held.set(sku, held.get(sku)! + Object.keys((Item as Partial<StockItem> | undefined)?.applying ?? {}).length);
  }
  return held;
}

function unitsOf(items: OrderItem[]): number {
  return items.reduce((sum, item) => sum + item.quantity, 0);
}

/** The inventory stage on OrderPlaced: reserve, record the result, settle the order if it is the last. */
export function reserveStockForOrder(event: OrderPlaced): Promise<StageCompletion> {
  return completeStage('inventory', event.orderId, async () => {
    const result = await reserveInventory(event.orderId, event.data.items);
    return result.outcome === 'reserved'
      ? { status: 'SUCCEEDED', what: `reserved ${unitsOf(event.data.items)} unit(s) of ${result.lines} SKU(s)` }
      : { status: 'REJECTED', reason: 'OUT_OF_STOCK', what: `out of stock: ${result.sku}` };
  });
}

/** The inventory stage on OrderConfirmed: the reserved units are sold. */
export async function commitStockForOrder(event: OrderConfirmed): Promise<{ committedLines: number }> {
  const order = await loadOrder(event.orderId);
  const committedLines = await commitReservation(order.orderId, order.items);
  if (order.stages.inventory.status === 'SUCCEEDED') {
    await appendStageTimelineOnce(order.orderId, 'inventory', 'committed');
  }
  return { committedLines };
}

/** The inventory stage on OrderCancelled: the reserved units go back on sale (compensation). */
export async function releaseStockForOrder(event: OrderCancelled): Promise<{ releasedLines: number }> {
  const order = await loadOrder(event.orderId);
  const releasedLines = await releaseReservation(order.orderId, order.items);
  // Only a stage that had reserved has something to compensate; a rejected one released already.
  if (order.stages.inventory.status === 'SUCCEEDED' || order.stages.inventory.status === 'COMPENSATED') {
    await appendStageTimelineOnce(order.orderId, 'inventory', 'released', 'COMPENSATED');
  }
  return { releasedLines };
}
