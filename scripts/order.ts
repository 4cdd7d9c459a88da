// First: the SDK's Node 20 warning is off before any client is made.
import './aws-sdk-quiet.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { MAX_ITEMS } from '../lib/order-schema.js';
import { isConnectionRefused, isMain, noLocalRuntime, parseCommandLine, readCommandLine, wholeNumber } from './command-line.js';

// npm run order -- [--lines 5000] [--express]

const usage = `usage: npm run order -- [--lines N] [--express]
  Places one business order of N lines (1-${MAX_ITEMS}, default ${MAX_ITEMS}) against the running \`npm start\`:
  first stocks a catalogue of N new SKUs (40 characters each, so that ${MAX_ITEMS} lines make an
  OrderPlaced event far over SNS's 256 KB) in its inventory table, then posts the order through
  the HTTP API with a token of its local issuer, polls GET /orders/{orderId} until the order is
  decided, and prints the order id, its final status, the body, event and stored order item
  sizes, and the time from POST to the decision. --express asks for express shipping
  ("shippingSpeed": "express"). Target: the running \`npm start\` (PORT, or .cache/local-runtime.json).`;

export interface OrderCommandLine {
  help: boolean;
  lines: number;
  express: boolean;
}

export function parseOrderArgs(args: string[]): OrderCommandLine {
  const { values } = parseCommandLine(args, {
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      lines: { type: 'string' },
      express: { type: 'boolean', default: false },
    },
  });
  return {
    help: values.help,
    lines: wholeNumber('--lines', values.lines, { min: 1, max: MAX_ITEMS }) ?? MAX_ITEMS,
    express: values.express,
  };
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

async function main(commandLine: OrderCommandLine): Promise<void> {
  if (commandLine.help) {
    console.log(usage);
    return;
  }
  const [{ readRuntimeState }, { readTemplate }, largeOrder, { clientConfig }] = await Promise.all([
    import('../local/runtime-state.js'),
    import('../local/template.js'),
    import('../local/large-order.js'),
    import('../local/emulators.js'),
  ]);
  const runtime = readRuntimeState();
  if (!runtime?.templatePath) {
    process.stderr.write(`${noLocalRuntime('.cache/local-runtime.json', 'PORT')}\n`);
    process.exit(1);
  }
  const template = await readTemplate(runtime.templatePath);
  const tableName = (logicalId: string): string => {
    const name = template.Resources[logicalId]?.Properties?.TableName;
    if (typeof name !== 'string') throw new Error(`The packaged template ${runtime.templatePath} names no ${logicalId}`);
    return name;
  };
  const db = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig(runtime.endpoints.dynamodb)));
  const apiUrl = runtime.apiUrl.replace(/\/$/, '');
  try {
    const runId = largeOrder.newRunId();
    const items = largeOrder.largeOrderItems(commandLine.lines, runId);
    const stockingStarted = performance.now();
    await largeOrder.stockCatalogue(db, tableName('InventoryTable'), items);
    console.log(
      `Stocked ${items.length} SKUs (BULK-${runId}-...) in ${Math.round(performance.now() - stockingStarted)} ms; placing the order...`,
    );
    const run = await largeOrder.placeLargeOrder({
      apiUrl,
      token: await largeOrder.localToken(apiUrl, `cus_bulk_${runId.toLowerCase()}`),
      items,
      express: commandLine.express,
      db,
      ordersTable: tableName('OrdersTable'),
    });
    console.log(
      [
        `order            ${run.orderId}${commandLine.express ? ' (express)' : ''}`,
        `status           ${run.status}${run.reason ? ` (${run.reason})` : ''}`,
        `lines            ${run.lines}`,
        `request body     ${run.bodyBytes} bytes (${kb(run.bodyBytes)})`,
        `OrderPlaced      ${run.eventBytes} bytes (${kb(run.eventBytes)})${run.eventBytes > 256 * 1024 ? ', over SNS/SQS 256 KB' : ''}`,
        `order item       ${run.storedItemBytes} bytes (${kb(run.storedItemBytes)}) in DynamoDB, lines ${run.storedCompressed ? 'gzip-compressed' : 'as a list'}`,
        `POST to decision ${run.postToDecisionMs} ms (createdAt to decidedAt: ${run.createdToDecidedMs ?? '?'} ms)`,
      ].join('\n'),
    );
    if (run.status !== 'CONFIRMED') process.exitCode = 1;
  } catch (error) {
    if (isConnectionRefused(error)) {
      process.stderr.write(`${noLocalRuntime(apiUrl, 'PORT')}\n`);
      process.exit(1);
    }
    // A refusal or an order that never got decided: what happened is the message, not the stack.
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    db.destroy();
  }
}

if (isMain(import.meta.url)) await main(readCommandLine(usage, () => parseOrderArgs(process.argv.slice(2))));
