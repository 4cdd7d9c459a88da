// Everything per queue consumer but its monitoring (resources/monitoring.cjs), generated from the
// declarations in resources/consumers.cjs: the function, its queue and dead-letter queue, their
// policies, the filtered subscription to the order events topic, the role, and the queue URLs as
// outputs. serverless.yml reads `functions` and `resources` through `${file(...)}`, which calls
// them at packaging time; the strings they return may hold variables (`${param:...}`,
// `${self:...}`), which osls then resolves like any in serverless.yml.
//
// CommonJS: osls loads a `${file()}` source with require(), and the project is ESM.
'use strict';

const declarations = require('./consumers.cjs');
const { withQueueType, nameSuffix, sourceQueueProperties, deadLetterQueueProperties } = require('./queue-type.cjs');

/** `<service>-<stage>-`: every name in the stack starts so (resolved by osls). */
const NAME_PREFIX = '${self:service}-${sls:stage}-';
const DECLARATION_KEYS = [
  'handler',
  'eventTypes',
  'tables',
  'publishes',
  'participant',
  'batchSize',
  'batchWindowSeconds',
  'maximumConcurrency',
  'expressMaximumConcurrency',
  'memorySize',
];
/**
 * The lanes every consumer has, a queue each (docs/architecture.md, "The express lane"). The
 * publisher names an order's lane in the `lane` message attribute (lib/order-events-topic.ts).
 */
const LANES = ['standard', 'express'];
/**
 * Which lane's subscription takes a message, on its `lane` attribute. Standard takes everything
 * that is not express, a message without the attribute too (published by hand, or before the
 * lanes): SNS matches `anything-but` only on an attribute that is there, so `exists: false` is
 * the second condition of the same key (OR). No message matches neither subscription, nor both.
 */
const LANE_FILTERS = {
  standard: [{ 'anything-but': ['express'] }, { exists: false }],
  express: ['express'],
};
/**
 * A consumer's memory when its declaration names none: measured peaks are under 70 MB, and a
 * consumer mostly waits on I/O, so its cost follows its memory (docs/decisions.md, "Lambda memory
 * per function, by measurement").
 */
const CONSUMER_MEMORY_MB = 256;
/** Actions on items, tables and indexes that a consumer may be granted; a typo fails the packaging. */
const DYNAMODB_ACTIONS = [
  'BatchGetItem',
  'BatchWriteItem',
  'ConditionCheckItem',
  'DeleteItem',
  'DescribeTable',
  'GetItem',
  'PutItem',
  'Query',
  'Scan',
  'UpdateItem',
];

/** A declaration mistake, named with the consumer, when `serverless package` runs. */
function refuse(name, message) {
  throw new Error(`resources/consumers.cjs, consumer ${JSON.stringify(name)}: ${message}`);
}

const isWholeNumber = (value, min, max) => Number.isInteger(value) && value >= min && value <= max;

/** Records per batch that Lambda accepts from a FIFO queue (a standard queue's mapping takes 10,000). */
const FIFO_MAX_BATCH_SIZE = 10;

/** What serverless names after a function key (InventoryLambdaFunction, InventoryLogGroup). */
function logicalName(key) {
  return key.charAt(0).toUpperCase() + key.slice(1).replace(/-/g, 'Dash').replace(/_/g, 'Underscore');
}

/** PaymentTokensTable -> PAYMENT_TOKENS_TABLE, the variable lib/config.ts reads. */
function tableVariable(tableId) {
  const words = tableId.replace(/Table$/, '').replace(/([a-z0-9])([A-Z])/g, '$1_$2');
  return `${words.toUpperCase()}_TABLE`;
}

/**
 * The declarations, checked, with every logical id and name the stack gives each consumer. A
 * mistake fails the packaging with the consumer's name rather than a deploy minutes later.
 * (`declared`: other declarations than resources/consumers.cjs, for the tests; `queueType`: the
 * queueType param, which names the queues `.fifo` and refuses what AWS refuses on FIFO queues.)
 */
function consumers(declared = declarations, queueType = 'standard') {
  return Object.entries(declared).map(([name, declaration]) => {
    if (!/^[a-z][A-Za-z0-9]*$/.test(name))
      refuse(name, 'a name is lowerCamelCase letters and digits (it names the function and the queue)');
    const unknown = Object.keys(declaration).filter((key) => !DECLARATION_KEYS.includes(key));
    if (unknown.length > 0) refuse(name, `unknown ${unknown.join(', ')} (known: ${DECLARATION_KEYS.join(', ')})`);
    const { handler, eventTypes, tables, publishes = false, participant = false } = declaration;
    if (typeof handler !== 'string' || !/^[\w/.-]+\.\w+$/.test(handler))
      refuse(name, 'handler is `<file without extension>.<export>`, e.g. functions/inventory.handler');
    if (
      !Array.isArray(eventTypes) ||
      eventTypes.length === 0 ||
      !eventTypes.every((type) => typeof type === 'string' && /^\w+$/.test(type))
    ) {
      refuse(name, "eventTypes lists the event types its subscription lets through, e.g. ['OrderPlaced']");
    }
    if (new Set(eventTypes).size !== eventTypes.length) refuse(name, 'eventTypes names an event type twice');
    if (tables === null || typeof tables !== 'object' || Array.isArray(tables))
      refuse(name, "tables maps table logical ids to DynamoDB actions, e.g. { OrdersTable: ['GetItem'] }");
    for (const [table, actions] of Object.entries(tables)) {
      if (!/^[A-Za-z][A-Za-z0-9]*(\/index\/[\w.-]+)?$/.test(table))
        refuse(name, `tables: ${JSON.stringify(table)} is not a table logical id (or <Table>/index/<Index>)`);
      if (!Array.isArray(actions) || actions.length === 0) refuse(name, `tables.${table} lists at least one action`);
      const wrong = actions.filter((action) => !DYNAMODB_ACTIONS.includes(action));
      if (wrong.length > 0)
        refuse(
          name,
          `tables.${table}: unknown action ${wrong.join(', ')} (write them without dynamodb:, one of ${DYNAMODB_ACTIONS.join(', ')})`,
        );
    }
    if (typeof publishes !== 'boolean') refuse(name, 'publishes is true or false');
    if (typeof participant !== 'boolean') refuse(name, 'participant is true or false');
    if (declaration.batchSize !== undefined && !isWholeNumber(declaration.batchSize, 1, 10000))
      refuse(name, 'batchSize is a whole number from 1 to 10000');
    if (declaration.batchWindowSeconds !== undefined && !isWholeNumber(declaration.batchWindowSeconds, 0, 300))
      refuse(name, 'batchWindowSeconds is a whole number from 0 to 300');
    if (declaration.maximumConcurrency !== undefined && !isWholeNumber(declaration.maximumConcurrency, 2, 1000))
      refuse(name, 'maximumConcurrency is a whole number from 2 to 1000');
    if (declaration.expressMaximumConcurrency !== undefined && !isWholeNumber(declaration.expressMaximumConcurrency, 2, 1000))
      refuse(name, 'expressMaximumConcurrency is a whole number from 2 to 1000');
    // Its express lane's logical ids (InventoryExpressQueue) would be another consumer's own.
    if (name.endsWith('Express') && Object.hasOwn(declared, name.slice(0, -'Express'.length)))
      refuse(name, `its resources would take the names of ${name.slice(0, -'Express'.length)}'s express lane: choose another name`);
    if (declaration.memorySize !== undefined && !isWholeNumber(declaration.memorySize, 128, 10240))
      refuse(name, 'memorySize is a whole number of MB from 128 to 10240');
    if (queueType === 'fifo') {
      if (declaration.batchSize > FIFO_MAX_BATCH_SIZE)
        refuse(name, `batchSize is at most ${FIFO_MAX_BATCH_SIZE} on a FIFO queue (queueType=fifo)`);
      if (declaration.batchWindowSeconds > 0)
        refuse(name, 'batchWindowSeconds: Lambda supports no batching window on a FIFO queue (queueType=fifo)');
    }
    const id = logicalName(name);
    const lanes = LANES.map((lane) => laneOf(name, id, lane, queueType));
    return {
      ...declaration,
      name,
      publishes,
      participant,
      queueType,
      // The standard lane's names at the top, as before the lanes; every lane's in `lanes`.
      ...lanes[0],
      lanes,
      functionId: `${id}LambdaFunction`,
      logGroupId: `${id}LogGroup`,
      roleId: `${id}Role`,
      id,
    };
  });
}

/**
 * A consumer's queue, dead-letter queue, their policies and subscription in one lane: the standard
 * lane's keep the names they had before the lanes (inventory, InventoryQueue), the express lane's
 * add `-express` and `Express` (inventory-express, InventoryExpressQueue).
 */
function laneOf(name, id, lane, queueType) {
  const queue = lane === 'standard' ? name : `${name}-${lane}`;
  const laneId = lane === 'standard' ? id : `${id}${logicalName(lane)}`;
  return {
    lane,
    queueName: `${NAME_PREFIX}${queue}${nameSuffix(queueType)}`,
    deadLetterQueueName: `${NAME_PREFIX}${queue}-dlq${nameSuffix(queueType)}`,
    queueId: `${laneId}Queue`,
    deadLetterQueueId: `${laneId}DeadLetterQueue`,
    queuePolicyId: `${laneId}QueuePolicy`,
    deadLetterQueuePolicyId: `${laneId}DeadLetterQueuePolicy`,
    subscriptionId: `${laneId}Subscription`,
  };
}

const getAtt = (id, attribute) => ({ 'Fn::GetAtt': [id, attribute] });
const ref = (id) => ({ Ref: id });

/** Requests not sent over TLS are refused, whoever sends them. */
function denyInsecureTransport(queueId) {
  return {
    Sid: 'DenyInsecureTransport',
    Effect: 'Deny',
    Principal: '*',
    Action: 'sqs:*',
    Resource: getAtt(queueId, 'Arn'),
    Condition: { Bool: { 'aws:SecureTransport': 'false' } },
  };
}

/**
 * A consumer's event source mapping for one lane's queue. On FIFO queues no batching window (AWS
 * refuses one), and the batchSize param must fit FIFO's 10, which only the resolved param shows:
 * checked in `functions`. Each lane has its own concurrency, so a standard backlog never takes the
 * express lane's invocations (and the express lane never more than its own from the standard one).
 */
function sqsEvent(consumer, lane) {
  const maximumConcurrency =
    lane.lane === 'express'
      ? (consumer.expressMaximumConcurrency ?? '${param:expressMaximumConcurrency}')
      : (consumer.maximumConcurrency ?? '${param:maximumConcurrency}');
  return {
    arn: getAtt(lane.queueId, 'Arn'),
    batchSize: consumer.batchSize ?? '${param:batchSize}',
    ...(consumer.queueType === 'fifo' ? {} : { maximumBatchingWindow: consumer.batchWindowSeconds ?? '${param:batchWindowSeconds}' }),
    maximumConcurrency,
    functionResponseType: 'ReportBatchItemFailures',
  };
}

/**
 * The consumers' functions, for serverless.yml `functions`. osls passes its context first, from
 * which the queueType param is read; tests pass `{ queueType }` or nothing (standard).
 */
function functions(context, declared = declarations) {
  return withQueueType(context, (queueType) => {
    const all = consumers(declared, queueType);
    if (queueType !== 'fifo' || typeof context?.resolveVariable !== 'function') return functionsFor(all);
    return context.resolveVariable('param:batchSize').then((batchSize) => {
      if (Number(batchSize) > FIFO_MAX_BATCH_SIZE && all.some((consumer) => consumer.batchSize === undefined)) {
        throw new Error(`param batchSize is at most ${FIFO_MAX_BATCH_SIZE} on FIFO queues (queueType=fifo), not ${batchSize}`);
      }
      return functionsFor(all);
    });
  });
}

function functionsFor(all) {
  return Object.fromEntries(
    all.map((consumer) => [
      consumer.name,
      {
        handler: consumer.handler,
        role: consumer.roleId,
        timeout: '${self:custom.consumerTimeoutSeconds}',
        memorySize: consumer.memorySize ?? CONSUMER_MEMORY_MB,
        environment: {
          ...Object.fromEntries(
            Object.keys(consumer.tables)
              .filter((table) => !table.includes('/'))
              .map((table) => [tableVariable(table), ref(table)]),
          ),
          ...(consumer.publishes ? { ORDER_EVENTS_TOPIC_ARN: ref('OrderEventsTopic') } : {}),
          // Every consumer reads claim-check pointers (lib/claim-check.ts); the threshold also tells a
          // participant whether the order it completes had an object to delete.
          CLAIM_CHECK_BUCKET: ref('ClaimCheckBucket'),
          CLAIM_CHECK_THRESHOLD_BYTES: '${param:claimCheckThresholdBytes}',
          RETRY_BACKOFF_BASE_SECONDS: '${param:retryBackoffBaseSeconds}',
          // An attempt still running after twice this is dead: its stock marker may be taken over (lib/inventory.ts).
          CONSUMER_TIMEOUT_SECONDS: '${self:custom.consumerTimeoutSeconds}',
        },
        events: consumer.lanes.map((lane) => ({ sqs: sqsEvent(consumer, lane) })),
      },
    ]),
  );
}

/** A consumer's queue, dead-letter queue, their policies and its subscription, in one lane. */
function messaging(consumer, lane) {
  const { queueId, deadLetterQueueId } = lane;
  return {
    [deadLetterQueueId]: {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: lane.deadLetterQueueName,
        ...deadLetterQueueProperties(consumer.queueType),
        SqsManagedSseEnabled: true,
        // 14 days, the SQS maximum: time to look at a poison message and redrive it.
        MessageRetentionPeriod: 1209600,
        // Only the consumer's queue may make this its dead-letter queue. Its ARN is spelled out from
        // its name: a GetAtt would close a cycle with that queue's RedrivePolicy, which names this one.
        RedriveAllowPolicy: {
          redrivePermission: 'byQueue',
          sourceQueueArns: [{ 'Fn::Sub': `arn:\${AWS::Partition}:sqs:\${AWS::Region}:\${AWS::AccountId}:${lane.queueName}` }],
        },
      },
    },
    [queueId]: {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: lane.queueName,
        ...sourceQueueProperties(consumer.queueType),
        SqsManagedSseEnabled: true,
        VisibilityTimeout: '${self:custom.queueVisibilityTimeoutSeconds}',
        // Long polling by default for any consumer that does not ask for it.
        ReceiveMessageWaitTimeSeconds: 20,
        RedrivePolicy: {
          deadLetterTargetArn: getAtt(deadLetterQueueId, 'Arn'),
          maxReceiveCount: '${param:maxReceiveCount}',
        },
      },
    },
    // Only the order events topic may send to the queue, and only over TLS.
    [lane.queuePolicyId]: {
      Type: 'AWS::SQS::QueuePolicy',
      Properties: {
        Queues: [ref(queueId)],
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'OrderEventsTopicOnly',
              Effect: 'Allow',
              Principal: { Service: 'sns.amazonaws.com' },
              Action: 'sqs:SendMessage',
              Resource: getAtt(queueId, 'Arn'),
              Condition: { ArnEquals: { 'aws:SourceArn': ref('OrderEventsTopic') } },
            },
            denyInsecureTransport(queueId),
          ],
        },
      },
    },
    [lane.deadLetterQueuePolicyId]: {
      Type: 'AWS::SQS::QueuePolicy',
      Properties: {
        Queues: [ref(deadLetterQueueId)],
        PolicyDocument: { Version: '2012-10-17', Statement: [denyInsecureTransport(deadLetterQueueId)] },
      },
    },
    [lane.subscriptionId]: {
      Type: 'AWS::SNS::Subscription',
      Properties: {
        TopicArn: ref('OrderEventsTopic'),
        Protocol: 'sqs',
        Endpoint: getAtt(queueId, 'Arn'),
        // The queue gets the published message itself, not the SNS envelope around it.
        RawMessageDelivery: true,
        FilterPolicyScope: 'MessageAttributes',
        FilterPolicy: { eventType: [...consumer.eventTypes], lane: LANE_FILTERS[lane.lane] },
      },
    },
  };
}

/** Where the claim-check objects are (resources/claim-check.yml; lib/claim-check.ts claimCheckKeyOf). */
const CLAIM_CHECK_PREFIX = 'order-events/';

/**
 * What a consumer may do in the claim-check bucket: read the objects pointers name (every consumer);
 * list their prefix, so that S3 answers a missing object with 404 rather than 403 (the consumer
 * tells a deleted object from a permission fault: lib/queue-consumer.ts); and, for a saga
 * participant, delete them (the one completing an order deletes its OrderPlaced object).
 */
function claimCheckStatements(consumer) {
  const objects = { 'Fn::Sub': `\${ClaimCheckBucket.Arn}/${CLAIM_CHECK_PREFIX}*` };
  return [
    { Effect: 'Allow', Action: consumer.participant ? ['s3:GetObject', 's3:DeleteObject'] : 's3:GetObject', Resource: objects },
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: getAtt('ClaimCheckBucket', 'Arn'),
      Condition: { StringLike: { 's3:prefix': `${CLAIM_CHECK_PREFIX}*` } },
    },
  ];
}

/** The table's ARN, or one of its indexes' (`OrdersTable/index/UnfinishedOrders`). */
function tableResource(table) {
  const [tableId, index] = table.split('/index/');
  return index === undefined ? getAtt(tableId, 'Arn') : { 'Fn::Sub': `\${${tableId}.Arn}/index/${index}` };
}

/** The consumer's role: its log group, its own queue, its tables, and the topic if it publishes. */
function role(consumer) {
  return {
    [consumer.roleId]: {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        Policies: [
          {
            PolicyName: consumer.name,
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: getAtt(consumer.logGroupId, 'Arn') },
                // Condition TracingEnabled: resources/roles.yml.
                {
                  'Fn::If': [
                    'TracingEnabled',
                    { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' },
                    ref('AWS::NoValue'),
                  ],
                },
                // Receive, delete and back off (ChangeMessageVisibility) its own queues' records.
                {
                  Effect: 'Allow',
                  Action: [
                    'sqs:ReceiveMessage',
                    'sqs:DeleteMessage',
                    'sqs:GetQueueAttributes',
                    'sqs:GetQueueUrl',
                    'sqs:ChangeMessageVisibility',
                  ],
                  Resource: consumer.lanes.map((lane) => getAtt(lane.queueId, 'Arn')),
                },
                ...Object.entries(consumer.tables).map(([table, actions]) => ({
                  Effect: 'Allow',
                  Action: actions.map((action) => `dynamodb:${action}`),
                  Resource: tableResource(table),
                })),
                ...(consumer.publishes
                  ? [{ Effect: 'Allow', Action: 'sns:Publish', Resource: ref('OrderEventsTopic') }, '${self:custom.topicKeyGrant}']
                  : []),
                ...claimCheckStatements(consumer),
              ],
            },
          },
        ],
      },
    },
  };
}

/** The consumers' resources and outputs, for an entry of serverless.yml `resources` (context as for `functions`). */
function resources(context, declared = declarations) {
  return withQueueType(context, (queueType) => resourcesFor(consumers(declared, queueType)));
}

function resourcesFor(all) {
  return {
    Resources: Object.assign(
      {},
      ...all.flatMap((consumer) => [...consumer.lanes.map((lane) => messaging(consumer, lane)), role(consumer)]),
    ),
    Outputs: Object.fromEntries(
      all.flatMap((consumer) =>
        consumer.lanes.flatMap((lane) => [
          [`${lane.queueId}Url`, { Value: ref(lane.queueId) }],
          [`${lane.deadLetterQueueId}Url`, { Value: ref(lane.deadLetterQueueId) }],
        ]),
      ),
    ),
  };
}

module.exports = { functions, resources, consumers, logicalName, tableVariable, LANES, LANE_FILTERS };
