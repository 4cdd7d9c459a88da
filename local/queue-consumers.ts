// The queue consumers of a packaged stack, read from its CloudFormation template: each function an
// SQS event source mapping invokes, with its queue, the queue's dead-letter queue and the event
// types its subscription lets through. resources/consumers.cjs declares them; the local runtime,
// the tools (status, redrive, chaos) and the tests find them here, so none of them keeps a list.
//
// "Consumer" is the queue consumer alone: "stage" is the deploy stage, and the saga's participants
// are lib/order-schema.ts's PARTICIPANTS (a consumer need not be one).

import type { CfnTemplate } from './template.js';

export interface QueueConsumer {
  /** The function's key in serverless.yml: inventory (deployed as <service>-<stage>-inventory). */
  name: string;
  /** Logical ids: the function, its queue and that queue's dead-letter queue. */
  functionId: string;
  queueId: string;
  deadLetterQueueId: string | undefined;
  /** Physical names, as the template sets them. */
  functionName: string;
  queueName: string;
  deadLetterQueueName: string | undefined;
  /** The `eventType` values its subscription's filter policy lets through; empty if none filters. */
  eventTypes: string[];
}

type Expression = unknown;

/** `{ Ref: X }` or `{ "Fn::GetAtt": [X, ...] }` (or "X.Attr") → X. */
function targetOf(expression: Expression): string | undefined {
  if (typeof expression !== 'object' || expression === null || Array.isArray(expression)) return undefined;
  const { Ref: ref, 'Fn::GetAtt': getAtt } = expression as Record<string, unknown>;
  if (typeof ref === 'string') return ref;
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  if (typeof getAtt === 'string') return getAtt.split('.')[0];
  return undefined;
}

function literalName(template: CfnTemplate, id: string, property: string): string {
  const value = template.Resources[id]?.Properties?.[property];
  if (typeof value !== 'string') throw new Error(`${id}.${property} is not a name the template spells out: ${JSON.stringify(value)}`);
  return value;
}

/**
 * Every queue consumer of the template, by name. `stackName` (<service>-<stage>) is how the
 * function names begin: the rest is the function's key.
 */
export function queueConsumers(template: CfnTemplate, stackName: string): QueueConsumer[] {
  const subscriptions = Object.values(template.Resources).filter((resource) => resource.Type === 'AWS::SNS::Subscription');
  const consumers: QueueConsumer[] = [];
  for (const [id, mapping] of Object.entries(template.Resources)) {
    if (mapping.Type !== 'AWS::Lambda::EventSourceMapping') continue;
    const queueId = targetOf(mapping.Properties?.EventSourceArn);
    if (!queueId || template.Resources[queueId]?.Type !== 'AWS::SQS::Queue') continue;
    const functionId = targetOf(mapping.Properties?.FunctionName);
    if (!functionId || template.Resources[functionId]?.Type !== 'AWS::Lambda::Function')
      throw new Error(`${id}: FunctionName is not a function of the template`);
    const functionName = literalName(template, functionId, 'FunctionName');
    if (!functionName.startsWith(`${stackName}-`)) throw new Error(`${functionId}: ${functionName} is not a function of ${stackName}`);
    const redrive = template.Resources[queueId]!.Properties?.RedrivePolicy as { deadLetterTargetArn?: Expression } | undefined;
    const deadLetterQueueId = redrive ? targetOf(redrive.deadLetterTargetArn) : undefined;
    const subscription = subscriptions.find((resource) => targetOf(resource.Properties?.Endpoint) === queueId);
    const filter = (subscription?.Properties?.FilterPolicy as { eventType?: unknown } | undefined)?.eventType;
    consumers.push({
      name: functionName.slice(stackName.length + 1),
      functionId,
      queueId,
      deadLetterQueueId,
      functionName,
      queueName: literalName(template, queueId, 'QueueName'),
      deadLetterQueueName: deadLetterQueueId ? literalName(template, deadLetterQueueId, 'QueueName') : undefined,
      eventTypes: Array.isArray(filter) ? filter.map(String) : [],
    });
  }
  return consumers.sort((a, b) => a.name.localeCompare(b.name));
}

/** The keys in serverless.yml of every function of the template, sorted. */
export function functionKeys(template: CfnTemplate, stackName: string): string[] {
  return Object.entries(template.Resources)
    .filter(([, resource]) => resource.Type === 'AWS::Lambda::Function')
    .map(([id]) => literalName(template, id, 'FunctionName'))
    .filter((name) => name.startsWith(`${stackName}-`))
    .map((name) => name.slice(stackName.length + 1))
    .sort();
}
