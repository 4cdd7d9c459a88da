import { readFileSync } from 'node:fs';
import type { ConsoleState } from '../local/console.js';
import type { RecentLine } from '../local/invocation-log.js';
import { localTarget } from '../local/runtime-state.js';
import { SAMPLE_ADDRESS } from '../local/sample-order.js';
import { isConnectionRefused, isMain, noLocalRuntime, parseCommandLine, readCommandLine, UsageError, wholeNumber } from './command-line.js';
import { type InspectedQueue, type LabContext, LABS, parseLogLines, queuedMessages } from './labs.js';
import { describeQueuedMessage } from '../lib/queued-message.js';

// npm run lab -- list | env | check N [--wait SECONDS]
//   | until (quiet | dlq CONSUMER N | dead-lettered ORDER_ID | log TEXT) [--timeout SECONDS]
// The workshop's companion (docs/workshop/): it talks to the running `npm start` (found as the
// other tools find it: PORT, or .cache/local-runtime.json) through its console endpoints.

const usage = `usage: npm run lab -- <command>
  list                          the labs, with their pages under docs/workshop/
  env                           shell lines for the labs: eval "$(npm run -s lab -- env)" sets API, SQS,
                                SQS_QUEUES, STACK, TEMPLATE, TOKEN, the AWS CLI's local credentials and the
                                helpers place, show, logs and sqs
  check N [--wait SECONDS]      whether the running pipeline is in the state lab N leads to, and what is
                                missing if not (exit 0 when it is); --wait keeps checking up to SECONDS
  until quiet                   waits until the consumers' queues are empty, nothing runs and no recent
                                order is PENDING
  until dlq CONSUMER N          waits until CONSUMER's dead-letter queue holds at least N messages
  until dead-lettered ORDER_ID  waits until an event of that order is in a dead-letter queue
  until log TEXT                waits until a handler's log line contains TEXT
  watch [SECONDS]               prints each consumer's queue (visible, in flight, DLQ) and running
                                invocations once a second, for SECONDS (10 by default)
        [--timeout SECONDS]     how long \`until\` waits (180 by default); it exits 1 when it gives up`;

type Command =
  | { kind: 'help' }
  | { kind: 'list' }
  | { kind: 'env' }
  | { kind: 'check'; lab: number; waitSeconds: number }
  | { kind: 'watch'; seconds: number }
  | { kind: 'until'; condition: UntilCondition; timeoutSeconds: number };
type UntilCondition =
  | { what: 'quiet' }
  | { what: 'dlq'; consumer: string; count: number }
  | { what: 'dead-lettered'; orderId: string }
  | { what: 'log'; text: string };

export function parseLabArgs(args: string[]): Command {
  const { values, positionals } = parseCommandLine(args, {
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      wait: { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  if (values.help) return { kind: 'help' };
  const [command, ...rest] = positionals;
  const none = (what: string) => {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])} after ${what}`);
  };
  if (command === 'list' || command === 'env') {
    none(command);
    return { kind: command };
  }
  if (command === 'check') {
    const lab = wholeNumber('check N', rest[0], { min: 1, max: LABS.length });
    if (lab === undefined) throw new UsageError(`check wants a lab number, 1 to ${LABS.length}`);
    if (rest.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(rest[1])}: one lab at a time`);
    return { kind: 'check', lab, waitSeconds: wholeNumber('--wait', values.wait, { min: 0, max: 3600 }) ?? 0 };
  }
  if (command === 'watch') {
    if (rest.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(rest[1])}`);
    return { kind: 'watch', seconds: wholeNumber('watch SECONDS', rest[0], { min: 1, max: 3600 }) ?? 10 };
  }
  if (command === 'until') {
    const timeoutSeconds = wholeNumber('--timeout', values.timeout, { min: 1, max: 3600 }) ?? 180;
    const [what, ...args2] = rest;
    if (what === 'quiet' && args2.length === 0) return { kind: 'until', condition: { what }, timeoutSeconds };
    if (what === 'dlq' && args2.length === 2) {
      const count = wholeNumber('until dlq CONSUMER N', args2[1], { min: 0 }) ?? 0;
      return { kind: 'until', condition: { what, consumer: args2[0]!, count }, timeoutSeconds };
    }
    if (what === 'dead-lettered' && args2.length === 1 && args2[0])
      return { kind: 'until', condition: { what, orderId: args2[0] }, timeoutSeconds };
    if (what === 'log' && args2.length === 1 && args2[0]) return { kind: 'until', condition: { what, text: args2[0] }, timeoutSeconds };
    throw new UsageError('until wants: quiet, dlq CONSUMER N, dead-lettered ORDER_ID, or log TEXT');
  }
  throw new UsageError(command === undefined ? 'a command is required' : `unknown command ${JSON.stringify(command)}`);
}

/** The running pipeline as a check reads it, through the runtime's HTTP port and fauxqs. */
export function labContext(target = localTarget()): LabContext & { apiUrl: string; sqsEndpoint: string } {
  const api = target.apiUrl.replace(/\/$/, '');
  const sqs = target.sqsEndpoint.replace(/\/$/, '');
  const json = async <T>(url: string): Promise<T> => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return (await response.json()) as T;
  };
  return {
    apiUrl: api,
    sqsEndpoint: sqs,
    state: () => json<ConsoleState>(`${api}/_local/console/state`),
    logs: async () => parseLogLines((await json<{ lines: RecentLine[] }>(`${api}/_local/console/logs?limit=2000`)).lines),
    queue: async (name) => {
      const response = await fetch(`${sqs}/_fauxqs/queues/${encodeURIComponent(name)}`);
      if (response.status === 404) return undefined;
      if (!response.ok) throw new Error(`fauxqs answered ${response.status} for the queue ${name}`);
      return (await response.json()) as InspectedQueue;
    },
    template: () => (JSON.parse(readFileSync(target.templatePath, 'utf8')) as { Resources: ReturnType<LabContext['template']> }).Resources,
  };
}

/** Prints lab N's findings; true when every one holds. */
export async function checkLab(number: number, context: LabContext, print: (line: string) => void = console.log): Promise<boolean> {
  const lab = LABS.find((l) => l.number === number);
  if (!lab) throw new UsageError(`no lab ${number}`);
  const findings = await lab.check(context);
  print(`Lab ${lab.number}: ${lab.title} (docs/workshop/${lab.file})`);
  for (const f of findings) print(f.ok ? `  ✓ ${f.what}` : `  ✗ ${f.what}\n      missing: ${f.missing}`);
  const done = findings.every((f) => f.ok);
  print(done ? `Lab ${lab.number}: done.` : `Lab ${lab.number}: not yet (${findings.filter((f) => f.ok).length} of ${findings.length}).`);
  return done;
}

async function environment(context: ReturnType<typeof labContext>): Promise<string> {
  const state = await context.state();
  const tokenAnswer = (await (await fetch(`${context.apiUrl}/_local/token?customer=cus_1&expiresIn=43200`)).json()) as { token: string };
  const queues = (await (await fetch(`${context.sqsEndpoint}/_fauxqs/queues`)).json()) as Array<{ name: string; url: string }>;
  const first = state.consumers.find((c) => c.lane === 'standard');
  const url = queues.find((q) => q.name === first?.queue.name)?.url ?? `${context.sqsEndpoint}/000000000000/x`;
  const stack = first ? first.queue.name.slice(0, -first.name.length - 1) : '';
  const address = JSON.stringify(SAMPLE_ADDRESS).replaceAll('"', '\\"');
  const quote = (value: string) => `'${value.replaceAll("'", "'\\''")}'`;
  return [
    `export API=${quote(context.apiUrl)} SQS=${quote(context.sqsEndpoint)}`,
    `export SQS_QUEUES=${quote(url.slice(0, url.lastIndexOf('/')))} STACK=${quote(stack)} TEMPLATE=${quote(localTarget().templatePath)}`,
    `export TOKEN=${quote(tokenAnswer.token)}`,
    'export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1',
    '# place [SKU] [QUANTITY] [CARD TOKEN]: POST /orders as customer cus_1; prints the order id',
    'place() {',
    `  curl -s "$API/orders" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "{\\"items\\":[{\\"sku\\":\\"\${1:-SKU-TSHIRT-M}\\",\\"quantity\\":\${2:-1}}],\\"payment\\":{\\"token\\":\\"\${3:-tok_visa}\\"},\\"shippingAddress\\":${address}}" | sed -E 's/.*"orderId":"([^"]+)".*/\\1/'`,
    '  echo',
    '}',
    "# logs [ORDER_ID]: the handlers' recent log lines (of one order: its correlation id), one line each",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansions, for bash to expand
    'logs() { curl -s "$API/_local/console/logs?format=text&limit=${LIMIT:-60}${1:+&orderId=$1}"; }',
    '# show ORDER_ID: GET /orders/{orderId}',
    'show() { curl -s "$API/orders/$1" -H "authorization: Bearer $TOKEN"; echo; }',
    "# sqs ACTION 'JSON': one SQS API call in its JSON protocol (what the AWS SDK and CLI send)",
    `sqs() { curl -s "$SQS" -H "x-amz-target: AmazonSQS.$1" -H 'content-type: application/x-amz-json-1.0' -d "\${2:-{\\}}"; echo; }`,
    '',
  ].join('\n');
}

/** `watch`'s two heading lines and one line of figures: per consumer visible, in flight, DLQ, running. */
export function watchLines(state: ConsoleState): string[] {
  const width = 17;
  const cells = state.consumers.map((consumer) => {
    const running = state.functions.find((fn) => fn.consumes.includes(consumer.queue.name))?.running ?? 0;
    const dlq = consumer.queue.dlq ? consumer.queue.dlq.visible + consumer.queue.dlq.inFlight : 0;
    return [consumer.queue.visible, consumer.queue.inFlight, dlq, running].map((n) => String(n).padStart(4)).join('');
  });
  return [
    `${'time'.padEnd(9)}${state.consumers.map((c) => ` ${c.key}`.padEnd(width)).join('')}`,
    `${''.padEnd(9)}${state.consumers.map(() => ' vis fly dlq run'.padEnd(width)).join('')}`,
    `${state.at.slice(11, 19).padEnd(9)}${cells.map((cell) => cell.padEnd(width)).join('')}`,
  ];
}

/** Whether the pipeline is in the state `until` waits for, and what it shows now. */
async function until(condition: UntilCondition, context: LabContext): Promise<{ met: boolean; now: string }> {
  const state = await context.state();
  if (condition.what === 'quiet') {
    const busy = state.consumers.filter((c) => c.queue.visible + c.queue.inFlight > 0).map((c) => c.name);
    const running = state.functions.filter((f) => f.running > 0).map((f) => f.name);
    const pending = state.orders.filter((o) => o.status === 'PENDING').length;
    return {
      met: busy.length === 0 && running.length === 0 && pending === 0,
      now: `queues with messages: ${busy.join(', ') || 'none'}; running: ${running.join(', ') || 'none'}; PENDING orders: ${pending}`,
    };
  }
  if (condition.what === 'dlq') {
    const consumer = state.consumers.find((c) => c.key === condition.consumer || (c.name === condition.consumer && c.lane === 'standard'));
    if (!consumer) throw new UsageError(`no consumer ${condition.consumer} (${state.consumers.map((c) => c.key).join(', ')})`);
    const depth = consumer.queue.dlq ? consumer.queue.dlq.visible + consumer.queue.dlq.inFlight : 0;
    return { met: depth >= condition.count, now: `${condition.consumer} DLQ: ${depth}` };
  }
  if (condition.what === 'dead-lettered') {
    const where: string[] = [];
    for (const consumer of state.consumers) {
      const dlq = consumer.queue.dlq ? await context.queue(consumer.queue.dlq.name) : undefined;
      // An order event in its body, or claim-checked (its order id in the orderId attribute).
      for (const message of queuedMessages(dlq)) {
        const description = describeQueuedMessage(message);
        if (description.kind !== 'invalid' && description.orderId === condition.orderId) where.push(consumer.name);
      }
    }
    return {
      met: where.length > 0,
      now: where.length > 0 ? `in the DLQ of ${where.join(', ')}` : `no event of ${condition.orderId} in a DLQ`,
    };
  }
  const found = (await context.logs()).some((entry) => JSON.stringify(entry.fields).includes(condition.text));
  return { met: found, now: found ? 'found' : 'not in the log yet' };
}

async function main(command: Command): Promise<number> {
  if (command.kind === 'help') {
    console.log(usage);
    return 0;
  }
  if (command.kind === 'list') {
    for (const lab of LABS) console.log(`${String(lab.number).padStart(2)}  ${lab.title}  (docs/workshop/${lab.file})`);
    return 0;
  }
  const context = labContext();
  if (command.kind === 'env') {
    process.stdout.write(await environment(context));
    return 0;
  }
  if (command.kind === 'check') {
    const deadline = Date.now() + command.waitSeconds * 1000;
    for (;;) {
      const lines: string[] = [];
      const done = await checkLab(command.lab, context, (line) => lines.push(line));
      if (done || Date.now() >= deadline) {
        console.log(lines.join('\n'));
        return done ? 0 : 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  if (command.kind === 'watch') {
    for (let second = 0; second < command.seconds; second++) {
      const state = await context.state();
      const lines = watchLines(state);
      console.log(second === 0 ? lines.join('\n') : lines.at(-1));
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return 0;
  }
  const deadline = Date.now() + command.timeoutSeconds * 1000;
  let last = '';
  for (;;) {
    const { met, now } = await until(command.condition, context);
    if (now !== last) process.stderr.write(`  ${now}\n`);
    last = now;
    if (met) return 0;
    if (Date.now() >= deadline) {
      process.stderr.write(`gave up after ${command.timeoutSeconds} s\n`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

if (isMain(import.meta.url)) {
  const command = readCommandLine(usage, () => parseLabArgs(process.argv.slice(2)));
  main(command).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof UsageError) {
        process.stderr.write(`${error.message}\n`);
        process.exitCode = 2;
        return;
      }
      console.error(
        isConnectionRefused(error) ? noLocalRuntime(localTarget().apiUrl, 'PORT') : error instanceof Error ? error.message : error,
      );
      process.exitCode = 1;
    },
  );
}
