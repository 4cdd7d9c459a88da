import { describe, expect, it } from 'vitest';
import { functionKeys, queueConsumers, twoLaneQueues } from '../../local/queue-consumers.js';
import type { CfnTemplate } from '../../local/template.js';
import { UsageError } from '../../scripts/command-line.js';
import { consumerNamed, stackTarget } from '../../scripts/stack-target.js';

// The queue consumers as the local runtime and the tools find them: in a stack's template, not in
// a list of their own. A template shaped as `serverless package` writes one, two consumers (one
// with no filter and no DLQ, one with a standard and an express queue), a scheduled function and a
// mapping that reads no queue.

const getAtt = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const templateOf = (stack: string): CfnTemplate => ({
  Resources: {
    NotifyLambdaFunction: { Type: 'AWS::Lambda::Function', Properties: { FunctionName: `${stack}-notify` } },
    AuditLambdaFunction: { Type: 'AWS::Lambda::Function', Properties: { FunctionName: `${stack}-audit` } },
    SweepLambdaFunction: { Type: 'AWS::Lambda::Function', Properties: { FunctionName: `${stack}-sweep` } },
    NotifyQueue: {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: `${stack}-notify`,
        RedrivePolicy: { deadLetterTargetArn: getAtt('NotifyDeadLetterQueue'), maxReceiveCount: 5 },
      },
    },
    NotifyDeadLetterQueue: { Type: 'AWS::SQS::Queue', Properties: { QueueName: `${stack}-notify-dlq` } },
    NotifyExpressQueue: {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: `${stack}-notify-express`,
        RedrivePolicy: { deadLetterTargetArn: getAtt('NotifyExpressDeadLetterQueue'), maxReceiveCount: 5 },
      },
    },
    NotifyExpressDeadLetterQueue: { Type: 'AWS::SQS::Queue', Properties: { QueueName: `${stack}-notify-express-dlq` } },
    AuditQueue: { Type: 'AWS::SQS::Queue', Properties: { QueueName: `${stack}-audit` } },
    NotifySubscription: {
      Type: 'AWS::SNS::Subscription',
      Properties: {
        Protocol: 'sqs',
        Endpoint: getAtt('NotifyQueue'),
        FilterPolicy: { eventType: ['OrderConfirmed', 'OrderCancelled'], lane: [{ 'anything-but': ['express'] }, { exists: false }] },
      },
    },
    NotifyExpressSubscription: {
      Type: 'AWS::SNS::Subscription',
      Properties: {
        Protocol: 'sqs',
        Endpoint: getAtt('NotifyExpressQueue'),
        FilterPolicy: { eventType: ['OrderConfirmed', 'OrderCancelled'], lane: ['express'] },
      },
    },
    // Listed before the standard queue's: the order found is standard first all the same.
    NotifyEventSourceMappingSQSNotifyExpressQueue: {
      Type: 'AWS::Lambda::EventSourceMapping',
      Properties: { EventSourceArn: getAtt('NotifyExpressQueue'), FunctionName: getAtt('NotifyLambdaFunction') },
    },
    NotifyEventSourceMappingSQSNotifyQueue: {
      Type: 'AWS::Lambda::EventSourceMapping',
      Properties: { EventSourceArn: getAtt('NotifyQueue'), FunctionName: getAtt('NotifyLambdaFunction') },
    },
    AuditEventSourceMappingSQSAuditQueue: {
      Type: 'AWS::Lambda::EventSourceMapping',
      Properties: { EventSourceArn: getAtt('AuditQueue'), FunctionName: getAtt('AuditLambdaFunction') },
    },
    SweepEventSourceMappingStream: {
      Type: 'AWS::Lambda::EventSourceMapping',
      Properties: {
        EventSourceArn: 'arn:aws:kinesis:us-east-1:111122223333:stream/elsewhere',
        FunctionName: getAtt('SweepLambdaFunction'),
      },
    },
  },
});
const template = templateOf('shop-prod');

describe('queueConsumers', () => {
  it('finds every function a mapping feeds from a queue of the stack, with its queues and filter', () => {
    expect(queueConsumers(template, 'shop-prod')).toEqual([
      {
        name: 'audit',
        functionId: 'AuditLambdaFunction',
        queueId: 'AuditQueue',
        deadLetterQueueId: undefined,
        functionName: 'shop-prod-audit',
        queueName: 'shop-prod-audit',
        deadLetterQueueName: undefined,
        eventTypes: [],
        lane: 'standard',
      },
      {
        name: 'notify',
        functionId: 'NotifyLambdaFunction',
        queueId: 'NotifyQueue',
        deadLetterQueueId: 'NotifyDeadLetterQueue',
        functionName: 'shop-prod-notify',
        queueName: 'shop-prod-notify',
        deadLetterQueueName: 'shop-prod-notify-dlq',
        eventTypes: ['OrderConfirmed', 'OrderCancelled'],
        lane: 'standard',
      },
      {
        name: 'notify',
        functionId: 'NotifyLambdaFunction',
        queueId: 'NotifyExpressQueue',
        deadLetterQueueId: 'NotifyExpressDeadLetterQueue',
        functionName: 'shop-prod-notify',
        queueName: 'shop-prod-notify-express',
        deadLetterQueueName: 'shop-prod-notify-express-dlq',
        eventTypes: ['OrderConfirmed', 'OrderCancelled'],
        lane: 'express',
      },
    ]);
    expect(functionKeys(template, 'shop-prod')).toEqual(['audit', 'notify', 'sweep']);
  });

  it('puts the standard lane of a consumer with an express lane in the background, and a consumer with one lane nowhere', () => {
    const consumers = queueConsumers(templateOf('shop-prod'), 'shop-prod');
    expect([...twoLaneQueues(consumers, 'standard')]).toEqual(['shop-prod-notify']);
    // The lane that holds the gate (LaneGate): the express queue of that same consumer only.
    expect([...twoLaneQueues(consumers, 'express')]).toEqual(['shop-prod-notify-express']);
  });

  it('refuses a template whose names it cannot read, rather than guess them', () => {
    const unnamed = structuredClone(template);
    unnamed.Resources.AuditQueue!.Properties = { QueueName: { 'Fn::Sub': '${AWS::StackName}-audit' } };
    expect(() => queueConsumers(unnamed, 'shop-prod')).toThrow(/AuditQueue.QueueName is not a name the template spells out/);
    expect(() => queueConsumers(template, 'shop-dev')).toThrow(/shop-prod-\w+ is not a function of shop-dev/);
  });
});

describe('the tools', () => {
  it('read a deployed stage’s consumers from its template in CloudFormation', async () => {
    const asked: string[] = [];
    const target = await stackTarget({ aws: true, stage: 'prod', region: 'eu-west-1' }, async (stackName, region) => {
      asked.push(`${stackName} ${region}`);
      return templateOf(stackName);
    });
    // The stack of serverless.yml's service and the stage named, in the region named.
    expect(asked).toEqual(['order-pipeline-prod eu-west-1']);
    expect(target.consumers.map((c) => [c.name, c.queueName, c.deadLetterQueueName])).toEqual([
      ['audit', 'order-pipeline-prod-audit', undefined],
      ['notify', 'order-pipeline-prod-notify', 'order-pipeline-prod-notify-dlq'],
      ['notify', 'order-pipeline-prod-notify-express', 'order-pipeline-prod-notify-express-dlq'],
    ]);
    expect(target.functions).toEqual(['audit', 'notify', 'sweep']);
    target.sqs.destroy();
  });

  it('name the consumers they know when a command line names another, or none', () => {
    const consumers = queueConsumers(template, 'shop-prod');
    expect(consumerNamed(consumers, 'notify').queueName).toBe('shop-prod-notify');
    // --express: the consumer's express queue, if it has one.
    expect(consumerNamed(consumers, 'notify', 'express').queueName).toBe('shop-prod-notify-express');
    expect(() => consumerNamed(consumers, 'audit', 'express')).toThrow(new UsageError('consumer "audit" has no express queue'));
    expect(() => consumerNamed(consumers, 'billing')).toThrow(new UsageError('unknown consumer "billing": one of audit, notify'));
    expect(() => consumerNamed(consumers, undefined)).toThrow(new UsageError('which consumer? one of audit, notify'));
  });
});
