// An API Gateway HTTP API in front of the functions: matches the template's routes, turns each
// request into a payload format 2.0 event and the function's result back into a response, as API
// Gateway does.

import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { LambdaFunction } from './lambda-environment.js';
import type { InvocationLog } from './invocation-log.js';
import type { JwtAuthorization, JwtAuthorizerConfig, LocalIssuer } from './jwt-authorizer.js';

export interface HttpRoute {
  /** `POST /orders`, `GET /orders/{orderId}`, `ANY /files/{path+}` or `$default`. */
  routeKey: string;
  function: LambdaFunction;
  /** The integration's TimeoutInMillis: API Gateway answers 503 when the function takes longer. */
  integrationTimeoutMs: number;
  /** The route's JWT authorizer (AuthorizationType JWT), checked before the function runs. */
  authorizer?: { config: JwtAuthorizerConfig; issuer: LocalIssuer };
}

export interface HttpApiOptions {
  routes: HttpRoute[];
  port: number;
  apiId: string;
  accountId: string;
  log: InvocationLog;
  /**
   * The runtime's own JSON endpoints, `GET <path>` → the answer (e.g. `/_local/status`): served
   * before the routes, never by a function. Read at request time, so entries may be added later.
   * An endpoint gets the query string; one that throws a LocalEndpointError answers its status.
   */
  localEndpoints?: Record<string, (query: URLSearchParams) => unknown>;
  /**
   * The runtime's own pages and actions beyond those JSON answers (the console, local/console.ts):
   * asked first, with the path; true when it answered the request, false to let the routes have it.
   */
  localRequests?: (request: IncomingMessage, response: ServerResponse, path: string, query: URLSearchParams) => Promise<boolean>;
}

/** A local endpoint's refusal of its query: answered with this status and message. */
export class LocalEndpointError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface HttpApi {
  url: string;
  close(): Promise<void>;
}

/** API Gateway's request payload limit. */
export const MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024;

interface CompiledRoute extends HttpRoute {
  method: string;
  pattern: RegExp | undefined;
  parameterNames: string[];
  /** Lower sorts first: exact paths, then paths with variables, then greedy ones, then $default. */
  rank: number[];
}

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const routes = options.routes.map(compileRoute).sort((a, b) => compareRanks(a.rank, b.rank));
  const server = createServer((request, response) => {
    handle(request, response, routes, options).catch((error: unknown) => {
      options.log.error(`http: ${(error as Error).stack ?? String(error)}`);
      if (!response.headersSent) sendJson(response, 500, { message: 'Internal Server Error' });
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(request: IncomingMessage, response: ServerResponse, routes: CompiledRoute[], options: HttpApiOptions): Promise<void> {
  const requestId = `${randomBytes(11).toString('base64').slice(0, 15)}=`;
  response.setHeader('apigw-requestid', requestId);
  const method = (request.method ?? 'GET').toUpperCase();
  const rawUrl = request.url ?? '/';
  const queryStart = rawUrl.indexOf('?');
  const rawPath = queryStart < 0 ? rawUrl : rawUrl.slice(0, queryStart);
  const rawQueryString = queryStart < 0 ? '' : rawUrl.slice(queryStart + 1);

  if (options.localRequests && (await options.localRequests(request, response, rawPath, new URLSearchParams(rawQueryString)))) return;
  const localEndpoint = method === 'GET' ? options.localEndpoints?.[rawPath] : undefined;
  if (localEndpoint) {
    // A site's name rebound to 127.0.0.1 reaches this port with its own Host: the runtime's own
    // endpoints (a token for any customer among them) answer loopback names only, as the console does.
    if (!isLoopbackHost(request.headers.host)) {
      return sendJson(response, 403, { message: `host: ${request.headers.host} is not a loopback address` });
    }
    try {
      return sendJson(response, 200, await localEndpoint(new URLSearchParams(rawQueryString)));
    } catch (error) {
      if (error instanceof LocalEndpointError) return sendJson(response, error.statusCode, { message: error.message });
      throw error;
    }
  }
  const declaredLength = Number(request.headers['content-length'] ?? 0);
  if (declaredLength > MAX_REQUEST_BODY_BYTES) return rejectTooLarge(request, response);
  const match = matchRoute(routes, method, rawPath);
  if (!match) {
    request.resume();
    return sendJson(response, 404, { message: 'Not Found' });
  }
  const body = await readBody(request, MAX_REQUEST_BODY_BYTES);
  if (body === 'too large') return rejectTooLarge(request, response);
  const { route } = match;
  const trigger = `http ${method} ${rawPath}`;

  // The authorizer answers before any function runs: 401, as API Gateway's JWT authorizer does.
  let authorization: JwtAuthorization | undefined;
  if (route.authorizer) {
    const header = request.headers.authorization;
    const decision = await route.authorizer.issuer.authorize(route.authorizer.config, Array.isArray(header) ? header.join(',') : header);
    if (!decision.ok) {
      response.setHeader('www-authenticate', `Bearer scope="" error="invalid_token" error_description="${decision.description}"`);
      sendJson(response, 401, { message: 'Unauthorized' });
      options.log.invocation({
        function: route.function.name,
        trigger,
        durationMs: 0,
        outcome: `401 authorizer ${route.authorizer.config.name}: ${decision.description}`,
      });
      return;
    }
    authorization = decision.authorization;
  }

  const event = buildEvent({
    request,
    requestId,
    method,
    rawPath,
    rawQueryString,
    body,
    route,
    pathParameters: match.pathParameters,
    authorization,
    options,
  });
  let integrationTimer: NodeJS.Timeout | undefined;
  const integrationTimeout = new Promise<'integration timeout'>((resolve) => {
    integrationTimer = setTimeout(() => resolve('integration timeout'), route.integrationTimeoutMs);
  });
  const result = await Promise.race([route.function.invoke(event), integrationTimeout]);
  clearTimeout(integrationTimer);
  if (result === 'integration timeout') {
    // The function keeps running; API Gateway has stopped waiting for it.
    sendJson(response, 503, { message: 'Service Unavailable' });
    options.log.invocation({
      function: route.function.name,
      trigger,
      durationMs: route.integrationTimeoutMs,
      outcome: '503 integration timeout',
    });
    return;
  }
  if (!result.ok) {
    sendJson(response, 500, { message: 'Internal Server Error' });
    const outcome = result.timedOut ? `500 timeout: ${result.errorMessage}` : `500 error: ${result.errorType}: ${result.errorMessage}`;
    options.log.invocation({
      function: route.function.name,
      trigger,
      durationMs: result.durationMs,
      initDurationMs: result.initDurationMs,
      outcome,
    });
    return;
  }
  const mapped = mapResult(result.payload);
  if (!mapped) {
    sendJson(response, 500, { message: 'Internal Server Error' });
    options.log.invocation({
      function: route.function.name,
      trigger,
      durationMs: result.durationMs,
      initDurationMs: result.initDurationMs,
      outcome: '500 malformed Lambda proxy response',
    });
    return;
  }
  for (const [name, value] of Object.entries(mapped.headers)) response.setHeader(name, value);
  if (mapped.cookies.length > 0) response.setHeader('set-cookie', mapped.cookies);
  response.setHeader('content-length', mapped.body.length);
  response.writeHead(mapped.statusCode);
  response.end(mapped.body);
  options.log.invocation({
    function: route.function.name,
    trigger,
    durationMs: result.durationMs,
    initDurationMs: result.initDurationMs,
    outcome: String(mapped.statusCode),
  });
}

function compileRoute(route: HttpRoute): CompiledRoute {
  if (route.routeKey === '$default') return { ...route, method: 'ANY', pattern: undefined, parameterNames: [], rank: [3, 0, 1] };
  const [method = '', path = ''] = route.routeKey.split(' ');
  const parameterNames: string[] = [];
  let greedy = false;
  let variables = 0;
  const segments = path.split('/').filter(Boolean);
  const source = segments
    .map((segment) => {
      const variable = /^\{([^}+]+)(\+?)\}$/.exec(segment);
      if (!variable) return `/${escapeRegExp(segment)}`;
      parameterNames.push(variable[1]!);
      variables++;
      if (variable[2]) {
        greedy = true;
        return '/(.+)';
      }
      return '/([^/]+)';
    })
    .join('');
  const tier = greedy ? 2 : variables > 0 ? 1 : 0;
  return {
    ...route,
    method: method.toUpperCase(),
    pattern: new RegExp(`^${source || '/'}$`),
    parameterNames,
    // Longer paths are more specific; a named method beats ANY.
    rank: [tier, -segments.length, method.toUpperCase() === 'ANY' ? 1 : 0],
  };
}

function compareRanks(a: number[], b: number[]): number {
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return a[index]! - b[index]!;
  return 0;
}

function matchRoute(routes: CompiledRoute[], method: string, rawPath: string) {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  for (const route of routes) {
    if (route.method !== 'ANY' && route.method !== method) continue;
    if (!route.pattern) return { route, pathParameters: undefined };
    const found = route.pattern.exec(path);
    if (!found) continue;
    if (route.parameterNames.length === 0) return { route, pathParameters: undefined };
    const pathParameters: Record<string, string> = {};
    route.parameterNames.forEach((name, index) => {
      const raw = found[index + 1]!;
      try {
        pathParameters[name] = decodeURIComponent(raw);
      } catch {
        pathParameters[name] = raw;
      }
    });
    return { route, pathParameters };
  }
  return undefined;
}

async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | 'too large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Stop as soon as the limit is passed: a body larger than the limit is never held in memory.
    if (size > limit) return 'too large';
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function rejectTooLarge(request: IncomingMessage, response: ServerResponse): void {
  response.setHeader('connection', 'close');
  sendJson(response, 413, { message: 'Request Entity Too Large' });
  // Let the client read the answer, then drop the connection and whatever it is still sending.
  response.once('finish', () => setTimeout(() => request.socket.destroy(), 200).unref());
  request.resume();
}

function sendJson(response: ServerResponse, statusCode: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(statusCode, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** Content types API Gateway passes as text; every other body reaches the function base64-encoded. */
function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return (
    type.startsWith('text/') ||
    type === 'application/json' ||
    type === 'application/javascript' ||
    type === 'application/xml' ||
    type.endsWith('+json') ||
    type.endsWith('+xml')
  );
}

function buildEvent(input: {
  request: IncomingMessage;
  requestId: string;
  method: string;
  rawPath: string;
  rawQueryString: string;
  body: Buffer;
  route: CompiledRoute;
  pathParameters: Record<string, string> | undefined;
  authorization: JwtAuthorization | undefined;
  options: HttpApiOptions;
}): APIGatewayProxyEventV2 {
  const { request, requestId, method, rawPath, rawQueryString, body, route, pathParameters, authorization, options } = input;
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  const raw = request.rawHeaders;
  for (let index = 0; index < raw.length; index += 2) {
    const name = raw[index]!.toLowerCase();
    const value = raw[index + 1]!;
    if (name === 'cookie') {
      // Payload 2.0 moves cookies out of the headers into their own list.
      cookies = [
        ...(cookies ?? []),
        ...value
          .split(';')
          .map((cookie) => cookie.trim())
          .filter(Boolean),
      ];
      continue;
    }
    // Repeated headers are joined with commas, as in payload format 2.0.
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  const sourceIp = (request.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  const now = new Date();
  headers['x-forwarded-for'] ??= sourceIp;
  headers['x-forwarded-proto'] ??= 'http';
  headers['x-forwarded-port'] ??= String(request.socket.localPort ?? '');
  headers['x-amzn-trace-id'] ??= `Root=1-${Math.floor(now.getTime() / 1000).toString(16)}-${randomBytes(12).toString('hex')}`;

  let queryStringParameters: Record<string, string> | undefined;
  if (rawQueryString) {
    queryStringParameters = {};
    for (const [name, value] of new URLSearchParams(rawQueryString)) {
      const previous = queryStringParameters[name];
      queryStringParameters[name] = previous === undefined ? value : `${previous},${value}`;
    }
  }
  const host = headers.host ?? '127.0.0.1';
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: route.routeKey,
    rawPath,
    rawQueryString,
    ...(cookies ? { cookies } : {}),
    headers,
    ...(queryStringParameters ? { queryStringParameters } : {}),
    requestContext: {
      accountId: options.accountId,
      apiId: options.apiId,
      ...(authorization ? { authorizer: authorization } : {}),
      domainName: host,
      domainPrefix: host.split('.')[0]!,
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: route.routeKey,
      stage: '$default',
      time: formatRequestTime(now),
      timeEpoch: now.getTime(),
    },
    ...(pathParameters ? { pathParameters } : {}),
    isBase64Encoded: false,
  };
  if (body.length > 0) {
    // A JSON string cannot carry bytes that are not UTF-8: decoding them here would replace them
    // with U+FFFD and hide them from the function. Such a body goes base64-encoded, as a binary one
    // does, so the function sees exactly the bytes the client sent.
    const text = isTextContentType(headers['content-type']) && isUtf8(body);
    event.body = text ? body.toString('utf8') : body.toString('base64');
    event.isBase64Encoded = !text;
  }
  return event;
}

/** `12/Mar/2020:19:03:58 +0000`, API Gateway's requestContext.time. */
function formatRequestTime(date: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

interface MappedResponse {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
  body: Buffer;
}

/**
 * Payload 2.0 response mapping: an object with a statusCode is a structured response; anything
 * else is a 200 whose JSON body is the result (a string result is the body as it is).
 * Returns undefined for a malformed structured response, which API Gateway answers with a 500.
 */
export function mapResult(payload: unknown): MappedResponse | undefined {
  if (typeof payload === 'object' && payload !== null && !Array.isArray(payload) && 'statusCode' in payload) {
    const result = payload as { statusCode: unknown; headers?: unknown; cookies?: unknown; body?: unknown; isBase64Encoded?: unknown };
    const statusCode = Number(result.statusCode);
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) return undefined;
    const headers: Record<string, string> = {};
    if (result.headers !== undefined && result.headers !== null) {
      if (typeof result.headers !== 'object') return undefined;
      for (const [name, value] of Object.entries(result.headers)) headers[name.toLowerCase()] = String(value);
    }
    const cookies = Array.isArray(result.cookies) ? result.cookies.map(String) : [];
    if (result.body !== undefined && result.body !== null && typeof result.body !== 'string') return undefined;
    const text = (result.body as string | undefined | null) ?? '';
    const body = result.isBase64Encoded === true ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
    return { statusCode, headers, cookies, body };
  }
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload ?? null);
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, cookies: [], body: Buffer.from(body) };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** 127.0.0.1, localhost or [::1], with any port: what the runtime's own address is called. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return name === '127.0.0.1' || name === 'localhost' || name === '[::1]';
}
