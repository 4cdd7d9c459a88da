import { describe, expect, it } from 'vitest';
import { MAX_ORDER_BODY_BYTES, parseOrderRequest } from '../../lib/order-request.js';

const validOrder = {
  customerId: 'cus_1',
  items: [{ sku: 'SKU-TSHIRT-M', quantity: 2 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 1AA', country: 'GB' },
};

function parse(body: unknown, contentType = 'application/json', idempotencyKey?: string) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return parseOrderRequest({ body: Buffer.from(text), contentType, idempotencyKey });
}

describe('parseOrderRequest', () => {
  it('accepts a valid order and its idempotency key', () => {
    const result = parse(validOrder, 'application/json; charset=utf-8', 'key-1');
    expect(result).toMatchObject({ ok: true, idempotencyKey: 'key-1', request: validOrder });
  });

  it.each([
    [{ ...validOrder, customerId: undefined }, 'customerId'],
    [{ ...validOrder, items: [] }, 'items'],
    [{ ...validOrder, items: [{ sku: 'SKU-1', quantity: 0 }] }, 'items[0].quantity'],
    [{ ...validOrder, items: [{ sku: 'SKU-1', quantity: 1.5 }] }, 'items[0].quantity'],
    [{ ...validOrder, items: [{ sku: 'SKU-1', quantity: '2' }] }, 'items[0].quantity'],
    [{ ...validOrder, items: [{ sku: '../etc', quantity: 1 }] }, 'items[0].sku'],
    [{ ...validOrder, payment: { token: 'card 4111' } }, 'payment.token'],
    [{ ...validOrder, shippingAddress: { ...validOrder.shippingAddress, country: 'Britain' } }, 'shippingAddress.country'],
    [{ ...validOrder, extra: true }, 'extra'],
  ])('answers 400 naming the bad field (%#)', (body, field) => {
    const result = parse(body);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toBe(400);
    expect(result.issues?.map((i) => i.field)).toContain(field);
    expect(result.message).toContain(field);
  });

  it('refuses repeated skus, which would reserve one line twice', () => {
    const result = parse({ ...validOrder, items: [validOrder.items[0], validOrder.items[0]] });
    expect(result).toMatchObject({ ok: false, status: 400 });
  });

  it('answers 400 for a body that is not JSON, and says so', () => {
    expect(parse('{"customerId":')).toMatchObject({ ok: false, status: 400, error: 'InvalidJson' });
  });

  it('answers 415 for a body that is not declared as JSON', () => {
    expect(parse(validOrder, 'text/plain')).toMatchObject({ ok: false, status: 415 });
    const body = Buffer.from(JSON.stringify(validOrder));
    expect(parseOrderRequest({ body, contentType: undefined, idempotencyKey: undefined })).toMatchObject({
      ok: false,
      status: 415,
    });
  });

  it('answers 413 past the size limit without parsing the body', () => {
    const huge = Buffer.alloc(MAX_ORDER_BODY_BYTES + 1, '{');
    expect(parseOrderRequest({ body: huge, contentType: 'application/json', idempotencyKey: undefined })).toMatchObject({
      ok: false,
      status: 413,
    });
  });

  it('refuses an idempotency key with control characters', () => {
    expect(parse(validOrder, 'application/json', 'bad\nkey')).toMatchObject({ ok: false, status: 400 });
  });
});
