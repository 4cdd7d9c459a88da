// The queueType param (`--param="queueType=fifo"`, `standard` by default) and what it changes: the
// order events topic and every consumer's queue and dead-letter queue become FIFO (`.fifo` names,
// deduplication by explicit id, high throughput per message group), and the event source mappings
// lose their batching window, which AWS does not support on FIFO queues. Resolved when the stack is
// packaged, as the other params that change a template's shape are (docs/decisions.md, "FIFO or
// standard: one param, resolved at packaging"): the standard template is what it was before.
//
// CommonJS: osls loads a `${file()}` source with require(), and the project is ESM.
'use strict';

const QUEUE_TYPES = ['standard', 'fifo'];

/**
 * The queue type a generator works for. osls passes `resolveVariable` (the param as set on the
 * command line, for the stage, or by default); tests and tools may pass `{ queueType }` instead.
 * Returns the value itself when it needs no resolving, a promise otherwise.
 */
function queueTypeOf(context) {
  const check = (value) => {
    if (!QUEUE_TYPES.includes(value)) throw new Error(`param queueType is ${QUEUE_TYPES.join(' or ')}, not ${JSON.stringify(value)}`);
    return value;
  };
  if (context && typeof context.resolveVariable === 'function') return context.resolveVariable('param:queueType').then(check);
  return check(context?.queueType ?? 'standard');
}

/** Calls `build` with the queue type, now or once it is resolved (osls awaits either). */
function withQueueType(context, build) {
  const queueType = queueTypeOf(context);
  return typeof queueType === 'string' ? build(queueType) : queueType.then(build);
}

/** SQS and SNS require FIFO names to end so. */
function nameSuffix(queueType) {
  return queueType === 'fifo' ? '.fifo' : '';
}

/**
 * A consumer's queue. FIFO: deduplication by the publisher's explicit id (the event id) rather than
 * a hash of the body, and high throughput mode, in which deduplication and the throughput quota
 * apply per message group (one order), so that orders do not share one queue-wide 300 per second.
 */
function sourceQueueProperties(queueType) {
  if (queueType !== 'fifo') return {};
  return {
    FifoQueue: true,
    ContentBasedDeduplication: false,
    DeduplicationScope: 'messageGroup',
    FifoThroughputLimit: 'perMessageGroupId',
  };
}

/** A FIFO queue's dead-letter queue must be FIFO too (SQS refuses a redrive across types). */
function deadLetterQueueProperties(queueType) {
  return queueType === 'fifo' ? { FifoQueue: true } : {};
}

/**
 * The order events topic. FIFO: no content-based deduplication (each publish names its event id),
 * and throughput and deduplication scoped to the message group, as on the queues.
 */
function orderEventsTopic(context) {
  return withQueueType(context, (queueType) => ({
    Type: 'AWS::SNS::Topic',
    Properties: {
      TopicName: `\${self:service}-\${sls:stage}-order-events${nameSuffix(queueType)}`,
      KmsMasterKeyId: '${param:topicKmsKeyId}',
      ...(queueType === 'fifo' ? { FifoTopic: true, ContentBasedDeduplication: false, FifoThroughputScope: 'MessageGroup' } : {}),
    },
  }));
}

module.exports = {
  QUEUE_TYPES,
  queueTypeOf,
  withQueueType,
  nameSuffix,
  sourceQueueProperties,
  deadLetterQueueProperties,
  orderEventsTopic,
};
