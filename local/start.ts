// `npm start`: the whole pipeline on this machine. Ports come from PORT (HTTP API, 3000),
// SQS_PORT (SNS and SQS, 4566) and DYNAMODB_PORT (4567); LOCAL_SCHEDULE_SCALE speeds schedules up;
// LOCAL_HANDLER_SOURCE=source runs functions/*.ts instead of the packaged bundles. Where it
// listens goes to .cache/local-runtime.json (local/runtime-state.ts), for npm run redrive and status.

import { startLocalPipeline } from './runtime.js';
import { removeRuntimeState, runtimeStatePath, writeRuntimeState } from './runtime-state.js';

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port number, not ${raw}`);
  return value;
}

const stage = process.env.LOCAL_STAGE || 'local';
const pipeline = await startLocalPipeline({
  apiPort: port('PORT', 3000),
  sqsPort: port('SQS_PORT', 4566),
  dynamodbPort: port('DYNAMODB_PORT', 4567),
  stage,
  scheduleScale: Number(process.env.LOCAL_SCHEDULE_SCALE || 1),
  handlerSource: process.env.LOCAL_HANDLER_SOURCE === 'source' ? 'source' : 'bundle',
});
// performance.now() counts from process start: this includes loading tsx and packaging.
const readyMs = Math.round(performance.now());

writeRuntimeState({ pid: process.pid, startedAt: new Date().toISOString(), apiUrl: pipeline.apiUrl, endpoints: pipeline.endpoints, stage });
// Whatever way this process ends, the file no longer says a runtime listens there.
process.on('exit', () => removeRuntimeState());

const order = {
  customerId: 'cus_1',
  items: [{ sku: 'SKU-TSHIRT-M', quantity: 1 }],
  payment: { token: 'tok_visa' },
  shippingAddress: { name: 'Ada Lovelace', line1: '1 Main St', city: 'London', postalCode: 'N1 1AA', country: 'GB' },
};
const [firstQueue] = Object.values(pipeline.resources.queues).filter((queue) => queue.dlqUrl);
console.log(
  [
    '',
    `Order Pipeline is ready in ${(readyMs / 1000).toFixed(1)} s: ${pipeline.apiUrl}`,
    '',
    `  Routes:    ${pipeline.routes.join(', ')}`,
    `  SNS/SQS:   ${pipeline.endpoints.sqs}   (fauxqs; queues at ${pipeline.endpoints.sqs}/_fauxqs/queues)`,
    `  DynamoDB:  ${pipeline.endpoints.dynamodb}   (dynalite)`,
    `  Topic:     ${pipeline.resources.topicArn ?? '(none)'}`,
    `  State:     ${runtimeStatePath()}   (npm run status and npm run redrive read it)`,
    '',
    'Place an order:',
    `  curl -s -X POST ${pipeline.apiUrl}/orders -H 'content-type: application/json' -d '${JSON.stringify(order)}'`,
    `  curl -s ${pipeline.apiUrl}/orders/<orderId>        # its status as inventory, payment and shipping decide`,
    '',
    'Look at a queue:',
    `  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --region us-east-1 --endpoint-url ${pipeline.endpoints.sqs} sqs get-queue-attributes --attribute-names All --queue-url ${firstQueue?.url ?? '<queue url>'}`,
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n'),
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping`);
    pipeline.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
