// First: the SDK's Node 20 warning is off before any client is made.
import './aws-sdk-quiet.js';
import type { QueueAttributeName } from '@aws-sdk/client-sqs';
import type { FunctionActivity, PipelineStatus, QueueDepth } from '../local/status.js';
import {
  httpUrl,
  isConnectionRefused,
  isMain,
  noLocalRuntime,
  nonEmpty,
  parseCommandLine,
  readCommandLine,
  TARGET_OPTIONS,
  type TargetFlags,
} from './command-line.js';
import type { StackTarget } from './stack-target.js';

// npm run status [-- --watch] [--api URL] [--aws --stage NAME --region R]

const usage = `usage: npm run status -- [--watch] [--api URL] [--aws --stage NAME --region R]
  Each consumer queue's depth (visible, in flight, delayed, oldest message) and its dead-letter queue's,
  and per function the invocations and records processed and failed in the last minute.
  Default target: the local runtime of \`npm start\`, through its GET /_local/status: on PORT if
  set, else where the running \`npm start\` says it listens (.cache/local-runtime.json), else
  http://127.0.0.1:3000; --api names another. --aws reads a deployed stage: its consumers from the
  stack's template (CloudFormation GetTemplate), queue depths with GetQueueAttributes, message ages
  and function counts from CloudWatch (the last complete minute).
  --watch refreshes every second.`;

/** What is printed: the local runtime's status, or as much of it as SQS alone answers. */
export interface StatusReport {
  target: string;
  at: string;
  queues: Array<
    Omit<QueueDepth, 'oldestMessageAgeSeconds'> & {
      oldestMessageAgeSeconds: number | null | undefined;
      dlq: QueueDepth | Omit<QueueDepth, 'oldestMessageAgeSeconds'> | null;
    }
  >;
  /** Seconds the function counts cover. */
  windowSeconds?: number;
  functions: FunctionActivity[] | undefined;
  /** Why the function counts (or message ages) are missing. */
  notes: string[];
}

export function fromLocalStatus(target: string, status: PipelineStatus): StatusReport {
  return { target, at: status.at, queues: status.queues, windowSeconds: status.windowSeconds, functions: status.functions, notes: [] };
}

/** Columns: left-aligned first column, right-aligned numbers. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatAge(seconds: number | null | undefined): string {
  if (seconds === undefined) return 'n/a';
  if (seconds === null) return '-';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

const depthOf = (queue: Omit<QueueDepth, 'oldestMessageAgeSeconds'>) => queue.visible + queue.inFlight + queue.delayed;

export function renderStatus(report: StatusReport): string {
  const queues = table(
    ['queue', 'visible', 'in flight', 'delayed', 'oldest', 'DLQ'],
    report.queues.map((queue) => [
      queue.name,
      String(queue.visible),
      String(queue.inFlight),
      String(queue.delayed),
      formatAge(queue.oldestMessageAgeSeconds),
      queue.dlq ? String(depthOf(queue.dlq)) : '-',
    ]),
  );
  const window = report.windowSeconds === undefined ? 'last minute' : `last ${report.windowSeconds} s`;
  const functions = report.functions
    ? table(
        [`function (${window})`, 'invocations', 'processed', 'failed', 'running'],
        report.functions.map((fn) => [fn.name, String(fn.invocations), String(fn.processed), String(fn.failed), String(fn.running)]),
      )
    : `function (${window}): processed/failed n/a`;
  return [`${report.target}, ${report.at}`, '', queues, '', functions, ...report.notes.map((note) => `note: ${note}`)].join('\n');
}

const ATTRIBUTES: QueueAttributeName[] = [
  'ApproximateNumberOfMessages',
  'ApproximateNumberOfMessagesNotVisible',
  'ApproximateNumberOfMessagesDelayed',
];

async function sqsDepth(target: StackTarget, name: string): Promise<Omit<QueueDepth, 'oldestMessageAgeSeconds'>> {
  const { GetQueueAttributesCommand, GetQueueUrlCommand } = await import('@aws-sdk/client-sqs');
  const { QueueUrl } = await target.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  const { Attributes = {} } = await target.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ATTRIBUTES }));
  return {
    name,
    visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
    delayed: Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0),
  };
}

/** The consumers' queues through GetQueueAttributes: what a deployed stage (or a runtime without /_local/status) answers. */
export async function statusFromSqs(target: StackTarget, notes: string[]): Promise<StatusReport> {
  const queues = await Promise.all(
    target.consumers.map(async (consumer) => ({
      ...(await sqsDepth(target, consumer.queueName)),
      oldestMessageAgeSeconds: undefined,
      dlq: consumer.deadLetterQueueName === undefined ? null : await sqsDepth(target, consumer.deadLetterQueueName),
    })),
  );
  return { target: target.description, at: new Date().toISOString(), queues, functions: undefined, notes };
}

export interface StatusCommandLine {
  help: boolean;
  watch: boolean;
  /** The local runtime's API, when --api names one. */
  api: string | undefined;
  target: TargetFlags;
}

/** The command line of `npm run status`; throws a UsageError naming what it refuses. */
export function parseStatusArgs(args: string[]): StatusCommandLine {
  const { values } = parseCommandLine(args, {
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      watch: { type: 'boolean', default: false },
      api: { type: 'string' },
      ...TARGET_OPTIONS,
    },
  });
  return {
    help: values.help,
    watch: values.watch,
    api: httpUrl('--api', values.api),
    target: { aws: values.aws, stage: nonEmpty('--stage', values.stage), region: nonEmpty('--region', values.region) },
  };
}

async function readStatus(commandLine: StatusCommandLine): Promise<StatusReport> {
  const { stackTarget } = await import('./stack-target.js');
  if (commandLine.target.aws) {
    const target = await stackTarget(commandLine.target);
    const [queues, activity] = await Promise.all([
      statusFromSqs(target, []),
      (await import('./cloudwatch-activity.js')).cloudWatchActivity(target),
    ]);
    return {
      ...queues,
      queues: queues.queues.map((queue) => ({ ...queue, oldestMessageAgeSeconds: activity.oldestMessageAgeSeconds[queue.name] ?? null })),
      windowSeconds: 60,
      functions: activity.functions,
      notes: ['function counts: the last complete minute in CloudWatch (metrics arrive a minute or two late)'],
    };
  }
  const { localTarget } = await import('../local/runtime-state.js');
  const api = commandLine.api ?? localTarget().apiUrl;
  try {
    const response = await fetch(`${api}/_local/status`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return fromLocalStatus(`local runtime at ${api}`, (await response.json()) as PipelineStatus);
  } catch (error) {
    // Not the local runtime's API (or not running): the queues alone, from the SQS endpoint.
    try {
      const target = await stackTarget(commandLine.target);
      return await statusFromSqs(target, [
        `${api}/_local/status did not answer (${(error as Error).message}): processed/failed per function and message ages n/a`,
      ]);
    } catch (sqsError) {
      // Neither answers (or no `npm start` ever packaged the stage): no `npm start` there, rather than `connect ECONNREFUSED`.
      const { NoPackagedTemplate } = await import('./stack-target.js');
      if (isConnectionRefused(error) && (isConnectionRefused(sqsError) || sqsError instanceof NoPackagedTemplate))
        throw new Error(noLocalRuntime(api, 'PORT or --api URL'));
      throw sqsError;
    }
  }
}

async function main(commandLine: StatusCommandLine): Promise<void> {
  if (commandLine.help) {
    console.log(usage);
    return;
  }
  if (!commandLine.watch) {
    console.log(renderStatus(await readStatus(commandLine)));
    return;
  }
  // Piped into `head` or the like: stop quietly when the reader goes away.
  process.stdout.on('error', () => process.exit(0));
  for (;;) {
    let text: string;
    try {
      text = renderStatus(await readStatus(commandLine));
    } catch (error) {
      text = `status: ${(error as Error).message}`;
    }
    // Clear the screen and home the cursor, then draw.
    process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

if (isMain(import.meta.url)) {
  main(readCommandLine(usage, () => parseStatusArgs(process.argv.slice(2)))).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
