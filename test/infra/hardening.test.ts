// Stack hardening (issue 11): each property below is asserted on the packaged CloudFormation, and
// the least-privilege check reads the packaged bundles themselves.
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleCalls, zipEntryText } from './bundle-actions.js';
import {
  actionsOf,
  asArray,
  eventSourceMappings,
  functionByKey,
  functionStatements,
  lambdaFunctions,
  packageStack,
  targetId,
  type LambdaFunction,
  type Packaged,
} from './template.js';

let dev: Packaged;
beforeAll(() => {
  dev = packageStack();
});

// ---------------------------------------------------------------------------------------------
// Least privilege, from the code: no role holds a DynamoDB, SNS or SQS action its function's
// bundle never calls.

/** Services whose actions a role may hold only if the bundle calls them. */
const CHECKED_SERVICES = ['dynamodb', 'sns', 'sqs'];
/**
 * What the Lambda service itself calls with the function's role to run its SQS event source
 * mapping (poll, delete what succeeded, read the queue's attributes): never in the bundle, and
 * exempt only on the queue the function's mapping reads.
 */
const EVENT_SOURCE_MAPPING_ACTIONS = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'];

function bundleOf(stack: Packaged, fn: LambdaFunction): string {
  const handler = String(fn.resource.Properties?.Handler); // functions/createOrder.handler
  return zipEntryText(stack.artifacts[fn.key]!, `${handler.slice(0, handler.lastIndexOf('.'))}.mjs`);
}

/** `<function>: <action> on <resource>` for each checked action its role holds and its bundle never calls. */
function uncalledGrants(stack: Packaged): string[] {
  const t = stack.template;
  const found: string[] = [];
  for (const fn of lambdaFunctions(t, stack.stage)) {
    const called = bundleCalls(bundleOf(stack, fn)).actions;
    const mappedQueues = eventSourceMappings(t).filter((m) => m.functionId === fn.id).map((m) => m.queueId);
    for (const s of functionStatements(t, fn.id)) {
      if (s.Effect !== 'Allow') continue;
      const resources = asArray(s.Resource);
      const onMappedQueues = resources.length > 0 && resources.every((r) => mappedQueues.includes(targetId(r) ?? ''));
      if (s.NotAction !== undefined) found.push(`${fn.key}: NotAction ${JSON.stringify(s.NotAction)}`);
      for (const action of actionsOf(s)) {
        if (!CHECKED_SERVICES.includes(action.split(':')[0]!.toLowerCase())) continue;
        if (EVENT_SOURCE_MAPPING_ACTIONS.includes(action) && onMappedQueues) continue;
        if (!called.has(action)) found.push(`${fn.key}: ${action} on ${JSON.stringify(s.Resource)}`);
      }
    }
  }
  return found;
}

describe('least privilege, read from the bundles', () => {
  it('reads the commands a bundle sends, not the ones it merely contains', () => {
    const sent = (key: string) => bundleCalls(bundleOf(dev, functionByKey(dev.template, dev.stage, key)));
    const createOrder = sent('createOrder');
    expect([...createOrder.actions]).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'sns:Publish']));
    // getOrder's bundle defines QueryCommand and ScanCommand (lib-dynamodb's paginators keep them)
    // and never sends them.
    const getOrder = sent('getOrder');
    expect([...getOrder.defined]).toEqual(expect.arrayContaining(['QueryCommand', 'ScanCommand']));
    expect([...getOrder.actions].filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:GetItem']);
    // The sweep does query (its index), the consumers back off with ChangeMessageVisibilityBatch.
    expect([...sent('sweepOrders').actions]).toContain('dynamodb:Query');
    expect([...sent('payment').actions]).toEqual(expect.arrayContaining(['sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl']));
  });

  it.each([
    ['tracing off (default)', {}],
    ['tracing on', { tracing: 'true' }],
  ])('no role holds a DynamoDB, SNS or SQS action its bundle never calls (%s)', (_name, params) => {
    const stack = packageStack({ params });
    expect(uncalledGrants(stack)).toEqual([]);
  }, 180_000);
});
