import { connect } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bodyBytes, header } from '../../lib/http-api.js';
import { type HttpApi, startHttpApi } from '../../local/http-api.js';
import { createInvocationLog } from '../../local/invocation-log.js';
import type { LambdaFunction } from '../../local/lambda-environment.js';

// The local HTTP API must hand the function what API Gateway would: the client's bytes (base64
// when they cannot travel as text) and repeated headers joined with commas. The order API's checks
// run on that event, so a difference here would hide a bad request from them.

let api: HttpApi;
let received: APIGatewayProxyEventV2[] = [];

beforeAll(async () => {
  const fn = {
    name: 'echo',
    invoke: async (event: APIGatewayProxyEventV2) => {
      received.push(event);
      return { ok: true, requestId: 'r', payload: { statusCode: 200, body: '{}' }, durationMs: 1 };
    },
  } as unknown as LambdaFunction;
  api = await startHttpApi({
    routes: [{ routeKey: 'POST /orders', function: fn, integrationTimeoutMs: 5_000 }],
    port: 0,
    apiId: 'local',
    accountId: '000000000000',
    log: createInvocationLog({ quiet: true }),
  });
});

afterAll(async () => {
  await api?.close();
});

beforeEach(() => {
  received = [];
});

/** One raw HTTP/1.1 request, so that header lines can repeat exactly as a client sent them. */
function rawRequest(headerLines: string[], body: Buffer): Promise<string> {
  const { port } = new URL(api.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    const head = [
      'POST /orders HTTP/1.1',
      'Host: 127.0.0.1',
      `Content-Length: ${body.length}`,
      'Connection: close',
      ...headerLines,
      '',
      '',
    ].join('\r\n');
    socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  });
}

describe('local HTTP API events', () => {
  it('passes a JSON body that is not valid UTF-8 as the bytes sent, base64-encoded', async () => {
    const sent = Buffer.concat([Buffer.from('{"customerId":"cus_'), Buffer.from([0x80, 0xe2, 0x82]), Buffer.from('"}')]);
    const response = await fetch(`${api.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Uint8Array(sent),
    });
    expect(response.status).toBe(200);
    const [event] = received;
    expect(event?.isBase64Encoded).toBe(true);
    expect(bodyBytes(event!).equals(sent)).toBe(true);
  });

  it('passes valid UTF-8 JSON as text, unchanged', async () => {
    const sent = '{"name":"Zoë 東京 🚚"}';
    await fetch(`${api.url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: sent });
    const [event] = received;
    expect(event).toMatchObject({ isBase64Encoded: false, body: sent });
    expect(bodyBytes(event!).toString('utf8')).toBe(sent);
  });

  it('passes a body of a non-text type base64-encoded', async () => {
    const sent = Buffer.from('{"a":1}');
    await fetch(`${api.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(sent),
    });
    const [event] = received;
    expect(event?.isBase64Encoded).toBe(true);
    expect(bodyBytes(event!).equals(sent)).toBe(true);
  });

  it('joins a repeated header into one value with commas, as payload format 2.0 does', async () => {
    const response = await rawRequest(
      ['Content-Type: application/json', 'Idempotency-Key: first', 'idempotency-key: second'],
      Buffer.from('{}'),
    );
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    const [event] = received;
    expect(event?.headers['idempotency-key']).toBe('first,second');
    expect(header(event!, 'Idempotency-Key')).toBe('first,second');
  });
});
