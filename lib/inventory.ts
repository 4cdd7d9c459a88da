import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDbDocumentClient } from './aws-clients.js';
import { config } from './config.js';
import type { OrderCancelled, OrderConfirmed, OrderPlaced } from './events.js';
import type { OrderItem } from './order.js';
import { appendStageTimelineOnce, completeStage, loadOrder, type StageCompletion } from './order-outcome.js';

// Stock lives on one item per SKU, and an order's reservation lives on that same item
// (reservations.<orderId> = quantity), so every change is one conditional UpdateItem on one item:
// no transactions (the local DynamoDB has none), and the reservation itself says "done" to a retry.

/** The stock item in the inventory table. */
export interface StockItem {
  sku: string;
  name: string;
  available: number;
  reserved: number;
  sold: number;
  reservations: Record<string, number>;
}

export type ReservationResult =
  | { outcome: 'reserved'; lines: number }
  | { outcome: 'out-of-stock'; sku: string; released: number };

export async function findStockItem(sku: string): Promise<StockItem | undefined> {
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({ TableName: config.inventoryTable(), Key: { sku }, ConsistentRead: true }),
  );
  return result.Item as StockItem | undefined;
}

/**
 * Reserves every line of an order, all or none. A line already reserved for this order (by an
 * earlier attempt that crashed) counts as done. When a line is short, or its SKU unknown, every
 * line of the order is released again and the order is out of stock: a business outcome.
 */
export async function reserveInventory(orderId: string, items: OrderItem[]): Promise<ReservationResult> {
  for (const item of items) {
    const reserved = await reserveLine(orderId, item);
    if (!reserved) {
      // Release all lines, not only the ones this call reserved: a crashed earlier attempt may have
      // reserved some of them, and releasing is conditional on the reservation, so it is safe.
      const released = await releaseReservation(orderId, items);
      return { outcome: 'out-of-stock', sku: item.sku, released };
    }
  }
  return { outcome: 'reserved', lines: items.length };
}

async function reserveLine(orderId: string, item: OrderItem): Promise<boolean> {
  try {
    await dynamoDbDocumentClient().send(
      new UpdateCommand({
        TableName: config.inventoryTable(),
        Key: { sku: item.sku },
        ConditionExpression:
          'attribute_exists(sku) AND available >= :quantity AND attribute_not_exists(reservations.#orderId)',
        UpdateExpression:
          'SET available = available - :quantity, reserved = reserved + :quantity, reservations.#orderId = :quantity',
        ExpressionAttributeNames: { '#orderId': orderId },
        ExpressionAttributeValues: { ':quantity': item.quantity },
      }),
    );
    return true;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
  // Which part of the condition failed? (The local DynamoDB ignores ReturnValuesOnConditionCheckFailure.)
  const result = await dynamoDbDocumentClient().send(
    new GetCommand({
      TableName: config.inventoryTable(),
      Key: { sku: item.sku },
      ConsistentRead: true,
      ProjectionExpression: 'reservations.#orderId',
      ExpressionAttributeNames: { '#orderId': orderId },
    }),
  );
  const existing = (result.Item as Partial<StockItem> | undefined)?.reservations?.[orderId];
  return existing !== undefined;
}

/**
 * Turns a reservation into a sale: reserved → sold, and the reservation entry is removed so the
 * stock item does not grow with every order. Conditional on the reservation, so it happens once.
 * Returns the number of lines committed by this call.
 */
export async function commitReservation(orderId: string, items: OrderItem[]): Promise<number> {
  return updateReservedLines(
    orderId,
    items,
    'REMOVE reservations.#orderId SET reserved = reserved - :quantity, sold = if_not_exists(sold, :zero) + :quantity',
    { ':zero': 0 },
  );
}

/** Gives reserved stock back: reserved → available, once; nothing for lines never reserved or already released. */
export async function releaseReservation(orderId: string, items: OrderItem[]): Promise<number> {
  return updateReservedLines(
    orderId,
    items,
    'REMOVE reservations.#orderId SET reserved = reserved - :quantity, available = available + :quantity',
  );
}

async function updateReservedLines(
  orderId: string,
  items: OrderItem[],
  updateExpression: string,
  extraValues: Record<string, number> = {},
): Promise<number> {
  let changed = 0;
  for (const item of items) {
    try {
      await dynamoDbDocumentClient().send(
        new UpdateCommand({
          TableName: config.inventoryTable(),
          Key: { sku: item.sku },
          ConditionExpression: 'reservations.#orderId = :quantity',
          UpdateExpression: updateExpression,
          ExpressionAttributeNames: { '#orderId': orderId },
          ExpressionAttributeValues: { ':quantity': item.quantity, ...extraValues },
        }),
      );
      changed += 1;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
  return changed;
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
