// `npm start`: the whole pipeline on this machine. Ports come from PORT (HTTP API, 3000),
// SQS_PORT (SNS and SQS, 4566) and DYNAMODB_PORT (4567); LOCAL_SCHEDULE_SCALE speeds schedules up;
// LOCAL_HANDLER_SOURCE=source runs functions/*.ts instead of the packaged bundles.
// `npm start -- --fifo` (or LOCAL_QUEUE_TYPE=fifo) runs the FIFO variant: the stack packaged with
// --param="queueType=fifo", an SNS FIFO topic and SQS FIFO queues on fauxqs. Where it
// listens is added to .cache/local-runtime.json (local/runtime-state.ts), next to any other npm
// start running on other ports, for npm run status, redrive and token; its entry goes when it stops.
// `--param=vpc=true` and the other deploy-only params are checked as packaging checks them, then
// ignored, said once (local/deploy-only-params.ts). It stops, freeing every port, on SIGINT, SIGTERM
// and SIGHUP (even while starting) and when npm or its parent exits.

import { createServer } from 'node:net';
import { constants } from 'node:os';
import { deployOnlyParamsProblem, ignoredParamsNotice, splitDeployOnlyParams } from './deploy-only-params.js';
import { EventSourceMappingRefused } from './event-source-mapping-rules.js';
import { watchLauncher } from './launcher-watch.js';
import { startLocalPipeline, type LocalPipeline, type QueueType } from './runtime.js';
import { alternativePorts, PORTS, portInUseMessage, type PortVariable } from './port-conflict.js';
import { readRuntimeStates, removeRuntimeState, runtimeOnPort, runtimeStatePath, writeRuntimeState } from './runtime-state.js';
import { SAMPLE_ADDRESS } from './sample-order.js';

/** A start-up problem the user can fix: printed as one line, without a stack trace. */
class StartRefused extends Error {}

function portsFromEnvironment(): Record<PortVariable, number> {
  const ports = {} as Record<PortVariable, number>;
  for (const { variable, fallback } of PORTS) {
    const raw = process.env[variable];
    const value = raw === undefined || raw === '' ? fallback : /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isInteger(value) || value > 65535)
      throw new StartRefused(`${variable} must be a port number (0 for any free one), not ${JSON.stringify(raw)}`);
    ports[variable] = value;
  }
  const [first, second] = PORTS.filter(
    ({ variable }) =>
      ports[variable] !== 0 && PORTS.some((other) => other.variable !== variable && ports[other.variable] === ports[variable]),
  );
  if (first && second)
    throw new StartRefused(`${first.variable} and ${second.variable} are both ${ports[first.variable]}: each needs a port of its own`);
  return ports;
}

/** Why a port cannot be listened on, or undefined if it can. */
async function listenProblem(port: number): Promise<NodeJS.ErrnoException | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(undefined)));
  });
}

/**
 * One line: the port, the variable that moves it, what holds it (an npm start only if the state
 * file lists one on that port), and a command that moves it to a free port, keeping the others.
 */
async function portProblem(
  variable: PortVariable,
  port: number,
  error: NodeJS.ErrnoException,
  ports: Record<PortVariable, number>,
): Promise<StartRefused> {
  const { what } = PORTS.find((entry) => entry.variable === variable)!;
  if (error.code !== 'EADDRINUSE') {
    return new StartRefused(
      `cannot listen on 127.0.0.1:${port} (${variable}, ${what}): ${error.code ?? error.message}; set ${variable} to another port`,
    );
  }
  const holder = runtimeOnPort(
    port,
    readRuntimeStates().filter((state) => state.pid !== process.pid),
  );
  const otherPorts = PORTS.filter((entry) => entry.variable !== variable).map((entry) => ports[entry.variable]);
  const candidates = alternativePorts(port, otherPorts);
  let alternative = candidates[0] ?? 0;
  for (const candidate of candidates) {
    if ((await listenProblem(candidate)) === undefined) {
      alternative = candidate;
      break;
    }
  }
  return new StartRefused(portInUseMessage({ variable, port, holder, alternative, env: process.env }));
}

/** `--fifo` or LOCAL_QUEUE_TYPE (standard or fifo); the flag wins. */
function queueTypeFrom(args: string[], env: NodeJS.ProcessEnv): QueueType {
  const unknown = args.filter((arg) => arg !== '--fifo');
  if (unknown.length > 0)
    throw new StartRefused(
      `unknown argument ${unknown.join(' ')} (npm start takes --fifo, to run the FIFO variant, and ignores the deploy-only --param=vpc|queueKey|auditTrail|auditLogRetentionDays=<value>)`,
    );
  if (args.includes('--fifo')) return 'fifo';
  const variable = env.LOCAL_QUEUE_TYPE;
  if (variable === undefined || variable === '' || variable === 'standard') return 'standard';
  if (variable === 'fifo') return 'fifo';
  throw new StartRefused(`LOCAL_QUEUE_TYPE must be standard or fifo, not ${JSON.stringify(variable)}`);
}

async function main(): Promise<void> {
  const { args, ignored } = splitDeployOnlyParams(process.argv.slice(2));
  const queueType = queueTypeFrom(args, process.env);
  const paramsProblem = deployOnlyParamsProblem(ignored);
  if (paramsProblem) throw new StartRefused(`${paramsProblem} (npm run package refuses it too)`);
  if (ignored.length > 0) console.log(ignoredParamsNotice(ignored));
  const ports = portsFromEnvironment();
  // Checked before packaging, so a second `npm start` says so at once, in one line.
  for (const { variable } of PORTS) {
    if (ports[variable] === 0) continue;
    const problem = await listenProblem(ports[variable]);
    if (problem) throw await portProblem(variable, ports[variable], problem, ports);
  }

  // Before anything starts: a signal the moment the ready line is out, or while starting, is
  // handled, not the default death that leaves this runtime's entry in the state file.
  const stopper = stopOnSignalsAndLauncherExit();
  const stage = process.env.LOCAL_STAGE || 'local';
  let pipeline: LocalPipeline;
  try {
    pipeline = await startLocalPipeline({
      apiPort: ports.PORT,
      sqsPort: ports.SQS_PORT,
      dynamodbPort: ports.DYNAMODB_PORT,
      stage,
      queueType,
      scheduleScale: Number(process.env.LOCAL_SCHEDULE_SCALE || 1),
      handlerSource: process.env.LOCAL_HANDLER_SOURCE === 'source' ? 'source' : 'bundle',
    });
  } catch (error) {
    // Taken between the check above and the start (another start racing this one).
    const { code, port } = error as NodeJS.ErrnoException & { port?: number };
    const taken = PORTS.find(({ variable }) => ports[variable] === port && port !== 0);
    if (code === 'EADDRINUSE' && taken)
      throw await portProblem(taken.variable, ports[taken.variable], error as NodeJS.ErrnoException, ports);
    if (error instanceof EventSourceMappingRefused) throw new StartRefused(error.message);
    throw error;
  }
  // performance.now() counts from process start: this includes bundling (local/launch.mjs) or
  // loading tsx, and packaging.
  const readyMs = Math.round(performance.now());

  stopper.running(pipeline);
  writeRuntimeState({
    pid: process.pid,
    startedAt: new Date().toISOString(),
    apiUrl: pipeline.apiUrl,
    endpoints: pipeline.endpoints,
    stage,
    templatePath: pipeline.templatePath,
  });
  // Whatever way this process ends, the file no longer says a runtime listens there (others' entries stay).
  process.on('exit', () => removeRuntimeState());

  const order = {
    items: [{ sku: 'SKU-TSHIRT-M', quantity: 1 }],
    payment: { token: 'tok_visa' },
    shippingAddress: { ...SAMPLE_ADDRESS },
  };
  const [firstConsumer] = pipeline.consumers;
  // A token for customer cus_1, valid for 12 hours, written into the curls below so that they work
  // as pasted; `npm run token -- --customer <id>` makes one for anyone else.
  const token = await pipeline.tokenFor('cus_1', { expiresInSeconds: 12 * 3600 });
  const bearer = `-H 'authorization: Bearer ${token}'`;
  console.log(
    [
      '',
      `Order Pipeline is ready in ${(readyMs / 1000).toFixed(1)} s: ${pipeline.apiUrl}`,
      '',
      `  Console:   ${pipeline.apiUrl}/console   (live counters, orders, faults, redrive; the workshop: docs/workshop)`,
      `  Routes:    ${pipeline.routes.join(', ')}`,
      `  SNS/SQS:   ${pipeline.endpoints.sqs}   (fauxqs; queues at ${pipeline.endpoints.sqs}/_fauxqs/queues)`,
      `  DynamoDB:  ${pipeline.endpoints.dynamodb}   (dynalite)`,
      `  Topic:     ${pipeline.resources.topicArn ?? '(none)'}`,
      pipeline.queueType === 'fifo'
        ? '  Queues:    FIFO: one message group per order, deduplicated by event id for 5 minutes (npm start without --fifo: standard)'
        : '  Queues:    standard: at-least-once, any order (npm start -- --fifo, or LOCAL_QUEUE_TYPE=fifo: the FIFO variant)',
      `  Consumers: ${[...new Set(pipeline.consumers.map((consumer) => consumer.name))].join(', ') || '(none)'}   (resources/consumers.cjs; each reads a standard and an express queue)`,
      `  State:     ${runtimeStatePath()}   (npm run status, redrive and token read it)`,
      '',
      'Place an order as customer cus_1 (the routes under /orders want a token: npm run token -- --customer <id>):',
      `  curl -s -X POST '${pipeline.apiUrl}/orders' -H 'content-type: application/json' ${bearer} -d '${JSON.stringify(order)}'`,
      // The URL quoted: pasted into a shell before the id is filled in, <orderId> is not a redirect.
      `  curl -s '${pipeline.apiUrl}/orders/<orderId>' ${bearer}        # its status as inventory, payment and shipping decide`,
      '',
      'Look at a queue:',
      `  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --region us-east-1 --endpoint-url ${pipeline.endpoints.sqs} sqs get-queue-attributes --attribute-names All --queue-url ${firstConsumer?.queueUrl ?? '<queue url>'}`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

/**
 * Stops once, on SIGINT, SIGTERM or SIGHUP or when npm or its parent exits. Installed before the
 * pipeline starts: stopped while starting, the process exits at once with 128 + the signal's number
 * (what it had started, emulators and servers, goes with it); once handed the pipeline
 * (`running`), it stops that pipeline, freeing every port, and exits 0. A second signal, or a stop
 * that hangs for 10 s, exits without waiting; the launcher going away while stopping changes nothing.
 */
function stopOnSignalsAndLauncherExit(): { running(pipeline: LocalPipeline): void } {
  // A closed terminal (SIGHUP) makes writes fail; that must not stop the stopping.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const say = (line: string) => {
    try {
      console.log(line);
    } catch {
      // No terminal left to tell.
    }
  };
  let pipeline: LocalPipeline | undefined;
  let stopping = false;
  const stop = (reason: string, again: 'exit now' | 'ignore', signal?: NodeJS.Signals) => {
    if (stopping) {
      if (again === 'ignore') return;
      say(`${reason} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    if (!pipeline) {
      // Nothing outlives this process yet; startLocalPipeline may be half way, so do not wait for it.
      say(`\n${reason}: stopping before the pipeline is ready`);
      process.exit(signal ? 128 + constants.signals[signal] : 1);
    }
    say(`\n${reason}: stopping`);
    setTimeout(() => {
      say('Still stopping after 10 s: exiting');
      process.exit(1);
    }, 10_000).unref();
    pipeline.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => stop(signal, 'exit now', signal));
  watchLauncher((what) => stop(what, 'ignore'));
  return {
    running(started) {
      pipeline = started;
    },
  };
}

main().catch((error: unknown) => {
  if (!(error instanceof StartRefused)) throw error;
  process.stderr.write(`npm start: ${error.message}\n`);
  process.exit(1);
});
