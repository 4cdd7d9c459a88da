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
  /**
   * Which of the function's queues this is: `express` for the one its subscription fills with the
   * express orders' events (filter `lane: ["express"]`), `standard` for the other.
   */
  lane: Lane;
}

export type Lane = 'standard' | 'express';

/** The lane a subscription's filter policy selects: a `lane` key listing only names is that lane. */
function laneOfFilter(filter: Record<string, unknown> | undefined): Lane {
  const lane = filter?.lane;
  return Array.isArray(lane) && lane.length > 0 && lane.every((value) => value === 'express') ? 'express' : 'standard';
}

/** How the tools name a consumer's queue: `inventory`, or `inventory express` for its express lane. */
export function queueLabel(consumer: Pick<QueueConsumer, 'name' | 'lane'>): string {
  return consumer.lane === 'standard' ? consumer.name : `${consumer.name} ${consumer.lane}`;
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
 * Every queue consumer of the template, by name, one per event source mapping: a function with a
 * standard and an express queue is there twice, standard first. `stackName` (<service>-<stage>) is
 * how the function names begin: the rest is the function's key.
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
    const filterPolicy = subscription?.Properties?.FilterPolicy as Record<string, unknown> | undefined;
    const filter = filterPolicy?.eventType;
    consumers.push({
      name: functionName.slice(stackName.length + 1),
      functionId,
      queueId,
      deadLetterQueueId,
      functionName,
      queueName: literalName(template, queueId, 'QueueName'),
      deadLetterQueueName: deadLetterQueueId ? literalName(template, deadLetterQueueId, 'QueueName') : undefined,
      eventTypes: Array.isArray(filter) ? filter.map(String) : [],
      lane: laneOfFilter(filterPolicy),
    });
  }
  const laneOrder = (consumer: QueueConsumer) => (consumer.lane === 'standard' ? 0 : 1);
  return consumers.sort((a, b) => a.name.localeCompare(b.name) || laneOrder(a) - laneOrder(b));
}

/**
 * One lane's queues (by name) of the functions that have both lanes. Lane priority (local only)
 * runs the standard ones in background environments (lambda-environment.ts, EnvironmentClass),
 * so that a backlog there does not take the shared cores from the express lane, and holds their
 * pollers back while an express one has a batch in hand (sqs-poller.ts, LaneGate). A function with
 * one lane has nothing to put ahead of it.
 */
export function twoLaneQueues(consumers: QueueConsumer[], lane: 'standard' | 'express'): Set<string> {
  const other = lane === 'standard' ? 'express' : 'standard';
  const withBothLanes = new Set(consumers.filter((consumer) => consumer.lane === other).map((consumer) => consumer.functionName));
  return new Set(
    consumers
      .filter((consumer) => consumer.lane === lane && withBothLanes.has(consumer.functionName))
      .map((consumer) => consumer.queueName),
  );
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
