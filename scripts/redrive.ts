import { GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { redriveDeadLetters } from '../lib/dlq-redrive.js';
import { parseOrderEvent } from '../lib/queue-consumer.js';
import { flagValue, STAGE_QUEUES, type StageQueue, stackTarget } from './stack-target.js';

// npm run redrive -- <inventory|payment|shipping> [--max N] [--dry-run] [--skip-invalid] [--aws --stage NAME]

const usage = `usage: npm run redrive -- <${STAGE_QUEUES.join('|')}> [--max N] [--dry-run] [--skip-invalid] [--aws --stage NAME --region R]
  Moves messages from the queue's dead-letter queue back to the queue. Default target: the local
  runtime started by \`npm start\`; --aws targets a deployed stage with your AWS credentials.
  --skip-invalid leaves messages that are not order events (poison) in the DLQ.`;

async function main(args: string[]): Promise<void> {
  const queue = args[0] as StageQueue | undefined;
  if (!queue || !STAGE_QUEUES.includes(queue)) {
    console.error(usage);
    process.exitCode = 2;
    return;
  }
  const maxFlag = flagValue(args, '--max');
  const max = maxFlag === undefined ? undefined : Number(maxFlag);
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
    console.error(`--max must be a positive whole number, not ${maxFlag}`);
    process.exitCode = 2;
    return;
  }
  const target = stackTarget(args);
  const urlOf = async (name: string) => {
    const { QueueUrl } = await target.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!QueueUrl) throw new Error(`No queue ${name}`);
    return QueueUrl;
  };
  const deadLetterQueueUrl = await urlOf(target.queueName(queue, true));
  const sourceQueueUrl = await urlOf(target.queueName(queue));
  const dryRun = args.includes('--dry-run');
  console.log(`${dryRun ? 'Dry run: ' : ''}redriving ${target.queueName(queue, true)} → ${target.queueName(queue)} (${target.description})`);
  const report = await redriveDeadLetters({
    sqs: target.sqs,
    deadLetterQueueUrl,
    sourceQueueUrl,
    max,
    dryRun,
    select: args.includes('--skip-invalid')
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

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
