// The reservations table (one item per order line) and who may touch it: the inventory function
// alone, with the two actions it uses.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  actionsOf,
  asArray,
  functionByKey,
  functionStatements,
  lambdaFunctions,
  packageStack,
  referencedIds,
  resource,
  resourcesOfType,
  roleOf,
  roleStatements,
  targetId,
  type Packaged,
  type Template,
} from './template.js';

let stack: Packaged;
let t: Template;
beforeAll(() => {
  stack = packageStack();
  t = stack.template;
});

describe('ReservationsTable', () => {
  it('is keyed by order, then SKU: one item per order line, partitioned by order', () => {
    const table = resource(t, 'ReservationsTable');
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    const p = table.Properties ?? {};
    expect(p.KeySchema).toEqual([
      { AttributeName: 'orderId', KeyType: 'HASH' },
      { AttributeName: 'sku', KeyType: 'RANGE' },
    ]);
    // Only key attributes may be declared, and both are strings.
    expect(p.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'orderId', AttributeType: 'S' },
        { AttributeName: 'sku', AttributeType: 'S' },
      ]),
    );
    expect(p.AttributeDefinitions).toHaveLength(2);
    expect(p.GlobalSecondaryIndexes).toBeUndefined();
    expect(p.BillingMode).toBe('PAY_PER_REQUEST');
    expect(p.TableName).toMatch(/-dev-reservations$/);
  });

  it('is encrypted and has point-in-time recovery: it is the durable state of every reservation', () => {
    const p = resource(t, 'ReservationsTable').Properties ?? {};
    expect(p.SSESpecification).toEqual({ SSEEnabled: true });
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  it('is given to the inventory function as RESERVATIONS_TABLE', () => {
    const inventory = functionByKey(t, stack.stage, 'inventory');
    expect(inventory.resource.Properties?.Environment?.Variables?.RESERVATIONS_TABLE).toEqual({ Ref: 'ReservationsTable' });
  });
});

describe('access to the reservations table', () => {
  it('the inventory role may GetItem and UpdateItem its items, nothing more, and on nothing but the table', () => {
    const inventory = functionByKey(t, stack.stage, 'inventory');
    const onTable = functionStatements(t, inventory.id).filter((s) => referencedIds(s.Resource).has('ReservationsTable'));
    expect(onTable).toHaveLength(1);
    const [statement] = onTable;
    expect(statement!.Effect).toBe('Allow');
    expect(actionsOf(statement!).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    // The table's ARN itself: no index, no wildcard suffix, no other resource in the same statement.
    expect(asArray(statement!.Resource)).toEqual([{ 'Fn::GetAtt': ['ReservationsTable', 'Arn'] }]);
    expect(statement!.Condition).toBeUndefined();
  });

  it('the inventory role gains nothing else: its DynamoDB grants, table by table', () => {
    const inventory = functionByKey(t, stack.stage, 'inventory');
    const grants: Record<string, string[]> = {};
    for (const s of functionStatements(t, inventory.id)) {
      const dynamodb = actionsOf(s).filter((a) => a.startsWith('dynamodb:'));
      if (dynamodb.length === 0) continue;
      for (const r of asArray(s.Resource)) {
        const id = targetId(r) ?? JSON.stringify(r);
        grants[id] = [...new Set([...(grants[id] ?? []), ...dynamodb])].sort();
      }
    }
    expect(grants).toEqual({
      InventoryTable: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      ReservationsTable: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      IdempotencyTable: ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      OrdersTable: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
    });
  });

  it('no other role names the table', () => {
    const inventoryRole = roleOf(t, functionByKey(t, stack.stage, 'inventory').id);
    const others = resourcesOfType(t, 'AWS::IAM::Role')
      .map(([id]) => id)
      .filter((id) => id !== inventoryRole && roleStatements(t, id).some((s) => referencedIds([s.Resource, s.Condition]).has('ReservationsTable')));
    expect(others).toEqual([]);
    // And no function but inventory is configured with it.
    const configured = lambdaFunctions(t, stack.stage)
      .filter((fn) => referencedIds(fn.resource.Properties?.Environment ?? {}).has('ReservationsTable'))
      .map((fn) => fn.key);
    expect(configured).toEqual(['inventory']);
  });
});
