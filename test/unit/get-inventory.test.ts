import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { handler } from '../../functions/getInventory.js';

vi.hoisted(() => {
  process.env.INVENTORY_TABLE = 'inventory';
  process.env.AWS_REGION = 'us-east-1';
});

const documents = mockClient(DynamoDBDocumentClient);

const request = (sku: string | undefined) => ({ pathParameters: sku === undefined ? {} : { sku } }) as unknown as APIGatewayProxyEventV2;

beforeEach(() => {
  documents.reset();
});

describe('GET /inventory/{sku}', () => {
  it('answers 200 with the public stock figures only', async () => {
    documents.on(GetCommand, { Key: { sku: 'SKU-MUG' } }).resolves({
      Item: { sku: 'SKU-MUG', name: 'Mug', available: 7, applying: { ord_1: 'reserve:a1b2c3d4:0' } },
    });
    const response = await handler(request('SKU-MUG'));
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(String(response.body))).toEqual({ sku: 'SKU-MUG', name: 'Mug', available: 7 });
  });

  it('answers 404 JSON for an unknown sku', async () => {
    documents.on(GetCommand).resolves({});
    const response = await handler(request('SKU-NONE'));
    expect(response.statusCode).toBe(404);
    expect(JSON.parse(String(response.body))).toMatchObject({ error: 'NotFound', message: expect.stringContaining('SKU-NONE') });
  });

  it('does not echo a card number someone put in the path', async () => {
    const response = await handler(request('4111 1111 1111 1111'));
    expect(response.statusCode).toBe(404);
    expect(String(response.body)).not.toMatch(/4111.?1111.?1111/);
    expect(JSON.parse(String(response.body)).message).toContain('****1111');
  });

  it('answers 404 without a read for something that cannot be a sku', async () => {
    for (const sku of ['lower-case', '', undefined]) {
      expect((await handler(request(sku))).statusCode).toBe(404);
    }
    expect(documents.commandCalls(GetCommand)).toHaveLength(0);
  });
});
