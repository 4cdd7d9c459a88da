import { randomUUID } from 'node:crypto';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { unlessConditionFails } from './conditional-write.js';
import { config } from './config.js';
import type { OrderCancelled, OrderPlaced } from './events.js';
import { logger } from './observability.js';
import type { OrderItem } from './order-schema.js';
import {
  isLastFollowUp,
  loadOrder,
  OrderNotFoundError,
  type ParticipantCompletion,
  recordFollowUp,
  recordResult,
  settleAfterRecording,
  settleRecordedEarlier,
  skippedForCancellation,
} from './order-outcome.js';
import { findOrder, type OrderRecord, type StoredOrder } from './order-store.js';

// Stock is one counter per SKU (`available`). Taking units for an order, or giving them back, is
// a change to two items, the SKU's counter and the order's record of it, and DynamoDB has no
// transaction here (the local emulator has none, and a transaction costs twice the units). So:
//   1. a marker `applying.<orderId> = op:attempt:until`, in one conditional write that refuses a
//      second marker for the same order; to reserve, the units are taken in the same write (on
//      the condition that the counter is not short);
//   2. the order's record of it (the inventory result, or the release), once, naming the attempt;
//   3. the marker removed; to release, the units are given back in the same write.
// Units move on the side that cannot oversell: taken before the record, given back only after it.
// An attempt that loses the race for step 2 has at worst held units for a moment, never put units
// on sale that a later undo would take back from whoever bought them.
// Three writes, and the marker lives milliseconds, so a popular SKU's item stays small. A crash
// between any two steps heals on retry: the order says whether step 2 happened and with which
// attempt, the marker whether step 1 did. A marker of an attempt that lost the race for step 2 is
// undone (a reserve's units given back, a release's marker dropped); a recorded attempt's marker
// is kept (removed, a release's units given back); a marker older than `until` (the attempt's
// function has timed out, so it is dead) is taken over by the next attempt; a younger one means an
// attempt is in flight, and the record is retried later (StockBusyError).
// A dead attempt's marker is healed by a later delivery of the same event, and there may be none
// after the one that succeeds: so a delivery settles, before it is acknowledged, the lines it did
// not pass through (a duplicate tidies them all, a rejection stopped early the lines it never
// started, an order cancelled before its reservation every line). docs/dynamodb-costs.md has the table.
// An order's lines go LINES_IN_FLIGHT at a time (each line's steps in the order above): every
// guarantee is per line and per order record, so nothing depends on which line goes first. A short
// line stops new lines from starting; lines already in flight finish, and whatever was taken is
// given back after the rejection is recorded, as for the lines before it.

/**
 * Lines of one order changed at once. One after the other, a 5,000-line order is 10,000 writes end
 * to end: 50 s of waiting at AWS's ~5 ms a write. 32 at once bring the waiting down to about 1.6 s,
 * so that what is left is the SDK's own CPU per request (docs/decisions.md, "Orders of 5,000
 * lines"), while a batch of such orders stays within the SDK's 50 sockets per client, and every
 * line is its own SKU, its own partition. A line's own steps stay in order; lines do not depend on
 * each other.
 */
export const LINES_IN_FLIGHT = 32;

/**
 * `work` on every line, at most LINES_IN_FLIGHT at once, starting them in line order until `stop()`
 * says no more (or a line throws). Waits for every started line, then throws the first error, if
 * any: no write of this attempt is left running when it returns. Results by line; undefined for a
 * line never started.
 */
async function eachLine<T>(
  items: OrderItem[],
  work: (item: OrderItem) => Promise<T>,
  stop: () => boolean = () => false,
): Promise<Array<T | undefined>> {
  const results: Array<T | undefined> = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure && !stop()) {
      const index = next;
      next += 1;
      try {
        results[index] = await work(items[index]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LINES_IN_FLIGHT, items.length) }, worker));
  if (failure) throw failure.error;
  return results;
}

export type StockOperation = 'reserve' | 'release';

/** The stock item in the inventory table. */
export interface StockItem {
  sku: string;
  name: string;
  available: number;
  /** Per order id, an operation in flight (a reserve's units already taken, a release's not yet given back). */
  applying?: Record<string, string>;
}

interface Marker {
  op: StockOperation;
  attempt: string;
  /** Epoch ms after which the attempt that wrote it is surely dead (its function timed out). */
  until: number;
  value: string;
}

/** Another attempt at the same order is changing this SKU right now: retry the record later. */
export class StockBusyError extends Error {
  override name = 'StockBusyError';
}

/** Stock figures that disagree with the order: a bug or a hand edit, never a business outcome. */
export class InventoryInconsistencyError extends Error {
  override name = 'InventoryInconsistencyError';
}

function newMarker(op: StockOperation): Marker {
  const attempt = randomUUID().slice(0, 8);
  // Twice the function timeout: an attempt cannot outlive its invocation, and clocks differ a little.
  const until = Date.now() + 2 * config.consumerTimeoutSeconds() * 1000;
  return { op, attempt, until, value: `${op}:${attempt}:${until}` };
}

function parseMarker(value: string): Marker {
  const [op, attempt, until] = value.split(':');
  if ((op !== 'reserve' && op !== 'release') || !attempt || !Number.isFinite(Number(until))) {
    throw new InventoryInconsistencyError(`Unreadable stock marker "${value}"`);
  }
  return { op, attempt, until: Number(until), value };
}

/**
 * How an operation changes the counter: with its marker (step 1, on a condition), when its marker
 * is kept (step 3, the operation recorded), or undone (the operation recorded by another attempt).
 */
const CHANGES: Record<StockOperation, { mark?: string; condition?: string; keep?: string; undo?: string }> = {
  reserve: { mark: 'available = available - :quantity', condition: 'available >= :quantity', undo: 'available = available + :quantity' },
  release: { keep: 'available = available + :quantity' },
};

export async function findStockItem(
  sku: string,
  db: DynamoDBDocumentClient = dynamoDbDocumentClient(),
  table = config.inventoryTable(),
): Promise<StockItem | undefined> {
  const result = await db.send(new GetCommand({ TableName: table, Key: { sku }, ConsistentRead: true }));
  return result.Item as StockItem | undefined;
}

/** Step 1. True when applied; false when the condition failed (short, no such SKU, or a marker there). */
async function applyWithMarker(orderId: string, item: OrderItem, marker: Marker): Promise<boolean> {
  const change = CHANGES[marker.op];
  const applied = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku: item.sku },
        ConditionExpression: ['attribute_exists(sku)', change.condition, 'attribute_not_exists(applying.#orderId)']
          .filter(Boolean)
          .join(' AND '),
        UpdateExpression: `SET ${[change.mark, 'applying.#orderId = :marker'].filter(Boolean).join(', ')}`,
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: { ':marker': marker.value, ...(change.mark ? { ':quantity': item.quantity } : {}) },
      }),
    ),
  );
  return applied !== undefined;
}

/** Step 3: the marker goes, its operation kept (a release's units given back now). True when this call removed it. */
async function removeMarker(orderId: string, item: OrderItem, marker: Marker): Promise<boolean> {
  const keep = CHANGES[marker.op].keep;
  const removed = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku: item.sku },
        ConditionExpression: 'applying.#orderId = :marker',
        UpdateExpression: `${keep ? `SET ${keep} ` : ''}REMOVE applying.#orderId`,
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: { ':marker': marker.value, ...(keep ? { ':quantity': item.quantity } : {}) },
      }),
    ),
  );
  return removed !== undefined;
}

/** The change of a marker that will never be recorded is undone, with the marker. True when this call undid it. */
async function undoMarker(orderId: string, item: OrderItem, marker: Marker): Promise<boolean> {
  const undo = CHANGES[marker.op].undo;
  const undone = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku: item.sku },
        ConditionExpression: 'applying.#orderId = :marker',
        UpdateExpression: `${undo ? `SET ${undo} ` : ''}REMOVE applying.#orderId`,
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: { ':marker': marker.value, ...(undo ? { ':quantity': item.quantity } : {}) },
      }),
    ),
  );
  if (undone)
    logger.info('Stock change of an attempt that was not recorded undone', { sku: item.sku, op: marker.op, attempt: marker.attempt });
  return undone !== undefined;
}

/** Takes over the marker of a dead attempt: its change counts as this attempt's. */
async function adoptMarker(orderId: string, sku: string, dead: Marker, mine: Marker): Promise<boolean> {
  const adopted = await unlessConditionFails(() =>
    dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku },
        ConditionExpression: 'applying.#orderId = :dead',
        UpdateExpression: 'SET applying.#orderId = :mine',
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: { ':dead': dead.value, ':mine': mine.value },
      }),
    ),
  );
  return adopted !== undefined;
}

/** What the order records of its stock: the reservation and the release, the attempts that hold them. */
type StockRecords = Pick<StoredOrder, 'inventory' | 'release'>;

/**
 * The order's stock records alone, read strongly: what a line in conflict needs to know, without
 * decoding the order's lines (a 5,000-line order's would be decoded once per line in conflict, and
 * a retry after a timeout finds every line in conflict). Billed as a read of the whole item.
 */
async function findStockRecords(orderId: string): Promise<StockRecords> {
  const { Item } = await dynamoDbDocumentClient().send(
    new GetCommand({
      TableName: config.ordersTable(),
      Key: { orderId },
      ConsistentRead: true,
      ProjectionExpression: 'orderId, inventory, #release',
      ExpressionAttributeNames: { '#release': 'release' },
    }),
  );
  if (!Item) throw new OrderNotFoundError(`Order ${orderId} is not in the orders table`);
  return Item as StockRecords;
}

/** What the order says about a marker's attempt: its change stands, it must be undone, or not known yet. */
function verdictOn(order: StockRecords, marker: Marker): 'keep' | 'undo' | 'open' {
  const record = marker.op === 'reserve' ? order.inventory : order.release;
  if (!record) return 'open';
  const stands = record.attempt === marker.attempt && (marker.op === 'release' || order.inventory?.outcome === 'SUCCEEDED');
  return stands ? 'keep' : 'undo';
}

/**
 * Settles every marker the order's own record decides: keeps the recorded attempt's change, undoes
 * any other. Run where the record is found already written (a redelivery, a lost race), so that no
 * marker outlives the order's attempts. Reads each line's stock item.
 */
async function tidyMarkers(order: OrderRecord, items: OrderItem[]): Promise<void> {
  await settleMarkers(order.orderId, items, async () => order);
}

/**
 * Each line's marker of the order, settled by the order's stock records (read only once a marker
 * is found): kept or undone as they decide; one they do not decide yet goes to `undecided`, if given.
 */
async function settleMarkers(
  orderId: string,
  items: OrderItem[],
  recordsOf: () => Promise<StockRecords>,
  undecided?: (item: OrderItem, marker: Marker) => Promise<void>,
): Promise<void> {
  await eachLine(items, async (item) => {
    const value = (await findStockItem(item.sku))?.applying?.[orderId];
    if (value === undefined) return;
    const marker = parseMarker(value);
    const verdict = verdictOn(await recordsOf(), marker);
    if (verdict === 'keep') await removeMarker(orderId, item, marker);
    if (verdict === 'undo') await undoMarker(orderId, item, marker);
    if (verdict === 'open') await undecided?.(item, marker);
  });
}

type LineOutcome = 'applied' | 'short' | 'recorded';

/**
 * Step 1 for one line, with whatever stands in its way resolved: a dead attempt's marker taken
 * over (nothing recorded yet) or settled (recorded), a live attempt's refused (StockBusyError).
 * `recorded`: the order's record turned up meanwhile; the caller stops and tidies.
 */
async function applyLine(orderId: string, item: OrderItem, mine: Marker): Promise<LineOutcome> {
  for (let tries = 0; tries < 5; tries += 1) {
    if (await applyWithMarker(orderId, item, mine)) return 'applied';
    const stock = await findStockItem(item.sku);
    if (!stock) {
      if (mine.op === 'reserve') return 'short';
      throw new InventoryInconsistencyError(`Cannot release ${item.quantity} of ${item.sku} for order ${orderId}: no such stock item`);
    }
    const value = stock.applying?.[orderId];
    if (value === undefined) {
      if (mine.op === 'reserve' && stock.available < item.quantity) return 'short';
      continue; // The counter or the marker changed between the write and the read: try again.
    }
    const theirs = parseMarker(value);
    if (theirs.attempt === mine.attempt) return 'applied';
    const order = await findStockRecords(orderId);
    // The operation this attempt is doing was recorded meanwhile (by another attempt): it must not
    // apply it again, whatever the marker in its way is. The caller undoes its lines and tidies.
    if ((mine.op === 'reserve' ? order.inventory : order.release) !== undefined) return 'recorded';
    const verdict = verdictOn(order, theirs);
    if (verdict === 'open') {
      if (theirs.until > Date.now()) {
        throw new StockBusyError(
          `Another attempt is ${theirs.op === 'reserve' ? 'reserving' : 'releasing'} ${item.sku} for order ${orderId}; retrying later`,
        );
      }
      if (theirs.op !== mine.op) {
        throw new InventoryInconsistencyError(`Order ${orderId} has a ${theirs.op} marker on ${item.sku} while it is ${mine.op}ing`);
      }
      if (await adoptMarker(orderId, item.sku, theirs, mine)) return 'applied';
      continue;
    }
    // A finished operation's marker (a crash before its step 3): settle it, then try again.
    if (verdict === 'keep') await removeMarker(orderId, item, theirs);
    else await undoMarker(orderId, item, theirs);
  }
  throw new StockBusyError(`Could not change ${item.sku} for order ${orderId}: too much contention; retrying later`);
}

/**
 * The inventory participant on OrderPlaced: every line reserved, or none. A line short (or an
 * unknown SKU) rejects the order as out of stock; the lines this attempt had taken are given back
 * after the rejection is recorded. A stale read of the order (half the cost of a consistent one)
 * is safe: at worst this attempt reserves, loses the race to record, and gives its units back.
 */
export async function reserveStockForOrder(event: OrderPlaced): Promise<ParticipantCompletion> {
  const { orderId } = event;
  const items = event.data.items;
  const known = await findOrder(orderId, { consistent: false });
  if (known?.inventory) return settleDuplicate(known, items);
  // Cancelled by the customer before any stock was taken: take none. (A stale read that misses the
  // cancellation takes the units, records them, and settleAfterRecording asks for the release.)
  if (known?.cancel) return skipCancelled(known, items);
  const mine = newMarker('reserve');
  const outcomes = await markLines(orderId, items, mine);
  const applied = items.filter((_, index) => outcomes[index] === 'applied');
  if (outcomes.includes('recorded')) {
    await undoAll(orderId, applied, mine);
    return settleDuplicate(await loadOrder(orderId), items);
  }
  // The first short line in line order, of those tried.
  const shortSku = items.find((_, index) => outcomes[index] === 'short')?.sku;
  const at = new Date().toISOString();
  const recorded = await recordResult(
    orderId,
    'inventory',
    shortSku === undefined
      ? { outcome: 'SUCCEEDED', at, attempt: mine.attempt }
      : { outcome: 'REJECTED', at, attempt: mine.attempt, shortSku },
  );
  if (!recorded) {
    const order = await findOrder(orderId);
    if (!order) {
      await undoAll(orderId, applied, mine);
      throw new OrderNotFoundError(`Order ${orderId} is not in the orders table`);
    }
    return settleDuplicate(order, items);
  }
  await eachLine(applied, (item) => (shortSku === undefined ? removeMarker(orderId, item, mine) : undoMarker(orderId, item, mine)));
  // Lines never started (a short line stopped the rest) may hold a marker of an earlier attempt that
  // died: no delivery of this event comes after this one to settle it, so this one does.
  const notStarted = items.filter((_, index) => outcomes[index] === undefined);
  if (notStarted.length > 0) await tidyMarkers(recorded, notStarted);
  return { participant: 'inventory', recorded: recorded.inventory!.outcome, settle: await settleAfterRecording(recorded, 'inventory') };
}

/**
 * OrderPlaced for an order the customer cancelled before any reservation was recorded: nothing is
 * taken. But an earlier attempt may have taken units and died before recording, and every later
 * delivery skips, so none would ever adopt them: they are given back here, once that attempt is
 * surely dead (past its marker's `until`). A live attempt's marker is left to it, and this delivery
 * retried (StockBusyError): that attempt records (the release follows, as for any late
 * reservation) or dies, and the retry gives its units back. Reads every line: only on this path.
 */
async function skipCancelled(order: OrderRecord, items: OrderItem[]): Promise<ParticipantCompletion> {
  let records: StockRecords | undefined;
  const recordsOf = async () => (records ??= await findStockRecords(order.orderId));
  await settleMarkers(order.orderId, items, recordsOf, async (item, marker) => {
    if (marker.until > Date.now()) {
      throw new StockBusyError(`An attempt at order ${order.orderId} is still ${marker.op}ing ${item.sku}; retrying later`);
    }
    await undoMarker(order.orderId, item, marker);
  });
  // Recorded meanwhile, by an attempt that read the order before the cancellation: settled as any duplicate.
  if (records?.inventory) return settleDuplicate(await loadOrder(order.orderId), items);
  return skippedForCancellation(order, 'inventory');
}

async function undoAll(orderId: string, applied: OrderItem[], mine: Marker): Promise<void> {
  await eachLine(applied, (item) => undoMarker(orderId, item, mine));
}

/**
 * Step 1 of an attempt on its lines, LINES_IN_FLIGHT at once, no new line started once one is not
 * applied (short, or the operation recorded by another attempt). When a line fails (another attempt
 * busy on it, a throttled write), the lines it had marked are undone before the error goes on.
 * Left, its own markers would turn every retry away until their lease ends (twice the function
 * timeout), longer than the record's retries last: the event would reach the DLQ with units held.
 * Nothing names this attempt yet, so undoing is right; if the undo fails too, the lease still frees them.
 */
async function markLines(orderId: string, items: OrderItem[], mine: Marker): Promise<Array<LineOutcome | undefined>> {
  const applied: OrderItem[] = [];
  let stopped = false;
  try {
    return await eachLine(
      items,
      async (item) => {
        const outcome = await applyLine(orderId, item, mine);
        if (outcome === 'applied') applied.push(item);
        else stopped = true;
        return outcome;
      },
      () => stopped,
    );
  } catch (error) {
    await undoAll(orderId, applied, mine).catch((undoError: unknown) =>
      logger.warn('Could not undo the stock marks of a failed attempt; their lease frees them', { error: undoError }),
    );
    throw error;
  }
}

async function settleDuplicate(order: OrderRecord, items: OrderItem[]): Promise<ParticipantCompletion> {
  await tidyMarkers(order, items);
  return { participant: 'inventory', recorded: 'earlier', settle: await settleRecordedEarlier(order, 'inventory') };
}

/** The inventory participant on OrderCancelled: units it had reserved go back on sale, once (compensation). */
export async function releaseStockForOrder(event: OrderCancelled): Promise<{ releasedLines: number }> {
  const order = await loadOrder(event.orderId);
  if (order.status !== 'CANCELLED' || order.inventory?.outcome !== 'SUCCEEDED') return { releasedLines: 0 };
  if (order.release) {
    await tidyMarkers(order, order.items);
    return { releasedLines: 0 };
  }
  const mine = newMarker('release');
  const outcomes = await markLines(order.orderId, order.items, mine);
  const applied = order.items.filter((_, index) => outcomes[index] === 'applied');
  if (applied.length < order.items.length) {
    // Another attempt recorded the release meanwhile: it gives the units back, not this one.
    await undoAll(order.orderId, applied, mine);
    await tidyMarkers(await loadOrder(order.orderId), order.items);
    return { releasedLines: 0 };
  }
  const written = await recordFollowUp(
    order.orderId,
    'release',
    { at: new Date().toISOString(), attempt: mine.attempt },
    { requiresSucceeded: ['inventory'], last: isLastFollowUp(order, 'inventory:released') },
  );
  if (!written) {
    await tidyMarkers(await loadOrder(order.orderId), order.items);
    return { releasedLines: 0 };
  }
  await eachLine(applied, (item) => removeMarker(order.orderId, item, mine));
  return { releasedLines: applied.length };
}

/**
 * Markers still standing on the given SKUs, per SKU by order id: each is a change not yet recorded
 * or not yet tidied. After a run has settled there should be none. For accounting (the chaos run),
 * never on the request path.
 */
export async function markersLeft(
  db: DynamoDBDocumentClient,
  inventoryTable: string,
  skus: Iterable<string>,
): Promise<Map<string, Record<string, string>>> {
  const left = new Map<string, Record<string, string>>();
  for (const sku of skus) left.set(sku, (await findStockItem(sku, db, inventoryTable))?.applying ?? {});
  return left;
}
