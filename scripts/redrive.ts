// First: the SDK's Node 20 warning is off before any client is made.
import './aws-sdk-quiet.js';
import { GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { redriveDeadLetters } from './dlq-redrive.js';
import { describeQueuedMessage, isOrderEventMessage, queuedMessageLabel } from '../lib/queued-message.js';
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
import type { Lane } from '../local/queue-consumers.js';
import { consumerNamed, stackTarget } from './stack-target.js';

// npm run redrive -- <consumer> [--express] [--max N] [--dry-run] [--skip-invalid] [--aws --stage NAME]

const usage = `usage: npm run redrive -- <consumer> [--express] [--max N] [--dry-run] [--skip-invalid] [--aws --stage NAME --region R]
  Moves messages from a queue consumer's dead-letter queue back to its queue (<consumer>: its
  name, e.g. payment; the stack's template says which there are). --express: its express
  queue's dead-letter queue, back to its express queue (the express lane). Default target: the local
  runtime started by \`npm start\`, on SQS_PORT if set, else where it says it listens
  (.cache/local-runtime.json); --aws targets a deployed stage with your AWS credentials (its
  consumers read from CloudFormation).
  --skip-invalid leaves messages that are not order events (poison) in the DLQ; a claim-checked
  order event (a pointer with its eventType and orderId attributes) moves like any other.`;

export interface RedriveCommandLine {
  help: boolean;
  /** The consumer whose dead-letter queue to redrive; checked against the stack's consumers once its template is read. */
  consumer: string | undefined;
  /** Which of the consumer's queues: its express lane's with --express. */
  lane: Lane;
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
      express: { type: 'boolean', default: false },
      max: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'skip-invalid': { type: 'boolean', default: false },
      ...TARGET_OPTIONS,
    },
  });
  const [consumer, ...extra] = positionals;
  if (!values.help && extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: one consumer at a time`);
  return {
    help: values.help,
    consumer,
    lane: values.express ? 'express' : 'standard',
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
  const { max, dryRun } = commandLine;
  const target = await stackTarget(commandLine.target);
  // The consumers are the stack's own: a name it lacks is refused like a bad flag (usage, exit 2).
  const consumer = readCommandLine(usage, () => consumerNamed(target.consumers, commandLine.consumer, commandLine.lane));
  const deadLetterQueueName = consumer.deadLetterQueueName;
  if (deadLetterQueueName === undefined) throw new Error(`${consumer.queueName} has no dead-letter queue`);
  const urlOf = async (name: string) => {
    const { QueueUrl } = await target.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!QueueUrl) throw new Error(`No queue ${name}`);
    return QueueUrl;
  };
  const deadLetterQueueUrl = await urlOf(deadLetterQueueName);
  const sourceQueueUrl = await urlOf(consumer.queueName);
  console.log(`${dryRun ? 'Dry run: ' : ''}redriving ${deadLetterQueueName} → ${consumer.queueName} (${target.description})`);
  const report = await redriveDeadLetters({
    sqs: target.sqs,
    deadLetterQueueUrl,
    sourceQueueUrl,
    max,
    dryRun,
    // An order event in its body or claim-checked (a pointer whose object the consumer reads): both go back.
    select: commandLine.skipInvalid
      ? (message) => isOrderEventMessage({ body: message.Body ?? '', attributes: message.MessageAttributes })
      : undefined,
  });
  for (const message of report.messages) {
    const what = queuedMessageLabel(describeQueuedMessage(message));
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
