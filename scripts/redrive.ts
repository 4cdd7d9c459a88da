// First: the SDK's Node 20 warning is off before any client is made.
import './aws-sdk-quiet.js';
import { GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { redriveDeadLetters } from '../lib/dlq-redrive.js';
import { parseOrderEvent } from '../lib/queue-consumer.js';
import { localTarget } from '../local/runtime-state.js';
import {
  isConnectionRefused,
  isMain,
  noLocalRuntime,
  nonEmpty,
  parseCommandLine,
  readCommandLine,
  TARGET_OPTIONS,
  type TargetFlags,
  UsageError,
  wholeNumber,
} from './command-line.js';
import { STAGE_QUEUES, type StageQueue, stackTarget } from './stack-target.js';

// npm run redrive -- <inventory|payment|shipping> [--max N] [--dry-run] [--skip-invalid] [--aws --stage NAME]

const usage = `usage: npm run redrive -- <${STAGE_QUEUES.join('|')}> [--max N] [--dry-run] [--skip-invalid] [--aws --stage NAME --region R]
  Moves messages from the queue's dead-letter queue back to the queue. Default target: the local
  runtime started by \`npm start\`, on SQS_PORT if set, else where it says it listens
  (.cache/local-runtime.json); --aws targets a deployed stage with your AWS credentials.
  --skip-invalid leaves messages that are not order events (poison) in the DLQ.`;

export interface RedriveCommandLine {
  help: boolean;
  queue: StageQueue;
  max: number | undefined;
  dryRun: boolean;
  skipInvalid: boolean;
  target: TargetFlags;
}

/** The command line of `npm run redrive`; throws a UsageError naming what it refuses. */
export function parseRedriveArgs(args: string[]): RedriveCommandLine {
  const { values, positionals } = parseCommandLine(args, {
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      max: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'skip-invalid': { type: 'boolean', default: false },
      ...TARGET_OPTIONS,
    },
  });
  const [queue, ...extra] = positionals;
  if (!values.help) {
    if (queue === undefined) throw new UsageError(`which queue? one of ${STAGE_QUEUES.join(', ')}`);
    if (!(STAGE_QUEUES as readonly string[]).includes(queue)) throw new UsageError(`unknown queue ${JSON.stringify(queue)}: one of ${STAGE_QUEUES.join(', ')}`);
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: one queue at a time`);
  }
  return {
    help: values.help,
    queue: queue as StageQueue,
    max: wholeNumber('--max', values.max, { min: 1 }),
    dryRun: values['dry-run'],
    skipInvalid: values['skip-invalid'],
    target: { aws: values.aws, stage: nonEmpty('--stage', values.stage), region: nonEmpty('--region', values.region) },
  };
}

async function main(commandLine: RedriveCommandLine): Promise<void> {
  if (commandLine.help) {
    console.log(usage);
    return;
  }
  const { queue, max, dryRun } = commandLine;
  const target = stackTarget(commandLine.target);
  const urlOf = async (name: string) => {
    const { QueueUrl } = await target.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!QueueUrl) throw new Error(`No queue ${name}`);
    return QueueUrl;
  };
  const deadLetterQueueUrl = await urlOf(target.queueName(queue, true));
  const sourceQueueUrl = await urlOf(target.queueName(queue));
  console.log(`${dryRun ? 'Dry run: ' : ''}redriving ${target.queueName(queue, true)} → ${target.queueName(queue)} (${target.description})`);
  const report = await redriveDeadLetters({
    sqs: target.sqs,
    deadLetterQueueUrl,
    sourceQueueUrl,
    max,
    dryRun,
    select: commandLine.skipInvalid
      ? (message) => {
          try {
            parseOrderEvent(message.Body ?? '');
            return true;
          } catch {
            return false;
          }
        }
      : undefined,
  });
  for (const message of report.messages) {
    let what = 'not an order event';
    try {
      const event = parseOrderEvent(message.body);
      what = `${event.eventType} ${event.orderId}`;
    } catch {
      // described as not an order event
    }
    const verb = message.moved ? 'moved' : message.selected ? 'would move' : 'left';
    console.log(`  ${verb.padEnd(10)} ${message.messageId}  ${what}`);
  }
  const wouldMove = report.messages.filter((m) => m.selected && !m.moved).length;
  console.log(
    dryRun
      ? `Would move ${wouldMove} message(s); ${report.skipped} left in the DLQ.`
      : `Moved ${report.moved} message(s) via ${report.method}; ${report.skipped} left in the DLQ.`,
  );
}

if (isMain(import.meta.url)) {
  const commandLine = readCommandLine(usage, () => parseRedriveArgs(process.argv.slice(2)));
  main(commandLine).catch((error: unknown) => {
    // Locally, a refused connection means no `npm start` there: say so rather than `connect ECONNREFUSED`.
    const local = !commandLine.target.aws && isConnectionRefused(error);
    console.error(
      local
        ? noLocalRuntime(`${localTarget().sqsEndpoint} (SNS and SQS)`, 'SQS_PORT (or target a deployed stage with --aws --stage NAME)')
        : error instanceof Error
          ? error.message
          : error,
    );
    process.exitCode = 1;
  });
}
