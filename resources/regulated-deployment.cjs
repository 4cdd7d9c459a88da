// The deploy-time options of a regulated account (docs/regulated-deployment.md), each off by
// default and each leaving the default template as it was, byte for byte:
//
//   vpc=true         every function in private subnets of a VPC of the stack's own (no internet
//                    path), interface endpoints for SQS and SNS (and X-Ray with tracing=true),
//                    gateway endpoints for DynamoDB (and S3 when a function uses a bucket), endpoint
//                    policies limited to this stack's resources, and queue policies that keep the
//                    stack's functions to the SQS endpoint for what their code sends.
//   queueKey=cmk     every queue and dead-letter queue encrypted with one customer-managed key of
//                    the stack (rotated yearly), which SNS may use only for this stack's topics,
//                    and each consumer's role may decrypt with only for the queues it reads.
//   auditTrail=true  a CloudTrail trail of the data events of this stack's queues and topics, to a
//                    versioned, encrypted, private, TLS-only bucket with a lifecycle rule.
//
// An osls plugin rather than a `${file()}` generator (docs/decisions.md, "Regulated deployment
// options: a packaging hook over the finished template"): each option changes resources that
// other files and osls itself generate (the functions, their roles, every queue and queue policy),
// so it runs once the template is complete, after osls merged serverless.yml's `resources`, and
// finds what to change by resource type, never by name. The params reach it resolved, through
// `custom.regulatedDeployment` (serverless.yml), and are checked as queue-type.cjs checks its own.
//
// CommonJS: osls loads a plugin with require(), and the project is ESM.
'use strict';

const CHOICES = { vpc: ['false', 'true'], queueKey: ['sqs', 'cmk'], auditTrail: ['false', 'true'], tracing: ['false', 'true'] };

/** A param value the options refuse; its message is one line naming the param and what it takes. */
class RegulatedOptionRefused extends Error {}

/**
 * The options, checked: a typo fails the packaging rather than deploying without the control.
 * npm start checks its deploy-only params with this too (local/deploy-only-params.ts).
 */
function regulatedOptions(settings = {}) {
  const value = (name, fallback) => {
    const given = settings[name] === undefined || settings[name] === null ? fallback : String(settings[name]);
    if (!CHOICES[name].includes(given))
      throw new RegulatedOptionRefused(`param ${name} is ${CHOICES[name].join(' or ')}, not ${JSON.stringify(given)}`);
    return given;
  };
  const retention = Number(settings.auditLogRetentionDays ?? 365);
  if (!Number.isInteger(retention) || retention < 1)
    throw new RegulatedOptionRefused(`param auditLogRetentionDays is a whole number of days, not ${settings.auditLogRetentionDays}`);
  return {
    vpc: value('vpc', 'false') === 'true',
    queueKey: value('queueKey', 'sqs'),
    auditTrail: value('auditTrail', 'false') === 'true',
    tracing: value('tracing', 'false') === 'true',
    auditLogRetentionDays: retention,
  };
}

/** True when no option is on: the template is then left untouched. */
function allOff(options) {
  return !options.vpc && options.queueKey === 'sqs' && !options.auditTrail;
}

// ---------------------------------------------------------------------------------------------
// Reading the template

const getAtt = (id, attribute) => ({ 'Fn::GetAtt': [id, attribute] });
const ref = (id) => ({ Ref: id });
const sub = (text) => ({ 'Fn::Sub': text });
const ACCOUNT_ROOT = sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:root');
const THIS_ACCOUNT = { StringEquals: { 'aws:PrincipalAccount': ref('AWS::AccountId') } };

function ofType(template, type) {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

/** `{Ref: X}`, `{Fn::GetAtt: [X, …]}` → X. */
function targetOf(expression) {
  if (expression === null || typeof expression !== 'object') return undefined;
  if (typeof expression.Ref === 'string') return expression.Ref;
  const attribute = expression['Fn::GetAtt'];
  if (Array.isArray(attribute)) return attribute[0];
  if (typeof attribute === 'string') return attribute.split('.')[0];
  return undefined;
}

/** Every function of the stack, with the logical id of its role. */
function functionsWithRoles(template) {
  return ofType(template, 'AWS::Lambda::Function').map(([id, fn]) => {
    const roleId = targetOf(fn.Properties.Role);
    if (!roleId || template.Resources[roleId]?.Type !== 'AWS::IAM::Role')
      throw new Error(`regulated deployment: function ${id} has no role of this stack (Role ${JSON.stringify(fn.Properties.Role)})`);
    return { id, fn, roleId };
  });
}

/** The stack's function roles, each once. */
function functionRoleIds(template) {
  return [...new Set(functionsWithRoles(template).map(({ roleId }) => roleId))];
}

/** Every string anywhere in a value (an action list, both branches of an Fn::If). */
function stringsIn(value, found = []) {
  if (typeof value === 'string') found.push(value);
  else if (Array.isArray(value)) for (const item of value) stringsIn(item, found);
  else if (value && typeof value === 'object') for (const item of Object.values(value)) stringsIn(item, found);
  return found;
}

/** The statements of a role's inline policies, Fn::If branches included. */
function roleStatements(role) {
  const statements = [];
  const visit = (statement) => {
    if (!statement || typeof statement !== 'object') return;
    if (Array.isArray(statement['Fn::If'])) for (const branch of statement['Fn::If'].slice(1)) visit(branch);
    else if (statement.Effect) statements.push(statement);
  };
  for (const policy of role.Properties.Policies ?? []) for (const statement of policy.PolicyDocument.Statement) visit(statement);
  return statements;
}

/** The actions with this prefix (`sqs:`) that the stack's function roles allow, sorted, each once. */
function actionsAllowed(template, prefix) {
  const actions = new Set();
  for (const roleId of functionRoleIds(template)) {
    for (const statement of roleStatements(template.Resources[roleId])) {
      if (statement.Effect !== 'Allow') continue;
      for (const action of stringsIn(statement.Action)) if (action.startsWith(prefix)) actions.add(action);
    }
  }
  return [...actions].sort();
}

/** The first inline policy of a role, where a statement is added. */
function addToRole(template, roleId, statement) {
  const role = template.Resources[roleId];
  const policies = role.Properties.Policies;
  if (!Array.isArray(policies) || policies.length === 0) throw new Error(`regulated deployment: role ${roleId} has no inline policy`);
  policies[0].PolicyDocument.Statement.push(statement);
}

/** Buckets of the stack a function is given (a Ref or GetAtt in its environment): the buckets its code uses. */
function bucketsUsedByFunctions(template) {
  const ids = new Set();
  for (const { fn } of functionsWithRoles(template)) {
    const visit = (value) => {
      if (value === null || typeof value !== 'object') return;
      const target = targetOf(value);
      if (target && template.Resources[target]?.Type === 'AWS::S3::Bucket') ids.add(target);
      for (const item of Object.values(value)) visit(item);
    };
    visit(fn.Properties.Environment?.Variables ?? {});
  }
  return [...ids].sort();
}

function addResources(template, resources) {
  for (const [id, resource] of Object.entries(resources)) {
    if (template.Resources[id]) throw new Error(`regulated deployment: the template already has a resource ${id}`);
    template.Resources[id] = resource;
  }
}

function addOutputs(template, outputs) {
  template.Outputs = { ...(template.Outputs ?? {}), ...outputs };
}

// ---------------------------------------------------------------------------------------------
// vpc=true

/** Actions Lambda needs on the execution role to attach a function to a VPC (AWSLambdaVPCAccessExecutionRole's). */
const VPC_ACCESS_ACTIONS = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
];
/** Actions Lambda's event source mapping sends with a consumer's role, from Lambda's network, not the VPC. */
const EVENT_SOURCE_MAPPING_ACTIONS = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'];
const SUBNETS = [
  ['PrivateSubnetA', 0, '10.0.0.0/20'],
  ['PrivateSubnetB', 1, '10.0.16.0/20'],
];
const subnetIds = () => SUBNETS.map(([id]) => ref(id));

function endpointPolicy(statements) {
  return { Version: '2012-10-17', Statement: statements };
}

/** One interface endpoint in both subnets, reached by its service's usual name (private DNS). */
function interfaceEndpoint(service, policy) {
  return {
    Type: 'AWS::EC2::VPCEndpoint',
    Properties: {
      VpcEndpointType: 'Interface',
      ServiceName: sub(`com.amazonaws.\${AWS::Region}.${service}`),
      VpcId: ref('Vpc'),
      SubnetIds: subnetIds(),
      SecurityGroupIds: [ref('EndpointsSecurityGroup')],
      PrivateDnsEnabled: true,
      ...(policy ? { PolicyDocument: policy } : {}),
    },
  };
}

function gatewayEndpoint(service, policy) {
  return {
    Type: 'AWS::EC2::VPCEndpoint',
    Properties: {
      VpcEndpointType: 'Gateway',
      ServiceName: sub(`com.amazonaws.\${AWS::Region}.${service}`),
      VpcId: ref('Vpc'),
      RouteTableIds: [ref('PrivateRouteTable')],
      PolicyDocument: policy,
    },
  };
}

function privateNetworking(template, options, names) {
  const queues = ofType(template, 'AWS::SQS::Queue').map(([id]) => getAtt(id, 'Arn'));
  const topics = ofType(template, 'AWS::SNS::Topic').map(([id]) => ref(id));
  const tables = ofType(template, 'AWS::DynamoDB::Table').flatMap(([id]) => [getAtt(id, 'Arn'), sub(`\${${id}.Arn}/index/*`)]);
  const buckets = bucketsUsedByFunctions(template);
  const roleIds = functionRoleIds(template);
  // Computed before anything is added: the endpoint policies allow what the roles allow.
  const allowed = {
    sqs: actionsAllowed(template, 'sqs:'),
    sns: actionsAllowed(template, 'sns:'),
    dynamodb: actionsAllowed(template, 'dynamodb:'),
    s3: actionsAllowed(template, 's3:'),
  };
  for (const [service, actions] of Object.entries(allowed))
    if (actions.length === 0 && (service !== 's3' || buckets.length > 0))
      throw new Error(`regulated deployment: no role of the stack allows a ${service}: action`);

  const only = (sid, actions, resources) => ({
    Sid: sid,
    Effect: 'Allow',
    Principal: '*',
    Action: actions,
    Resource: resources,
    Condition: THIS_ACCOUNT,
  });
  addResources(template, {
    // No internet gateway, no NAT: the endpoints below are the only way out of the subnets.
    Vpc: {
      Type: 'AWS::EC2::VPC',
      Properties: {
        CidrBlock: '10.0.0.0/16',
        // Private DNS of interface endpoints needs both.
        EnableDnsSupport: true,
        EnableDnsHostnames: true,
        Tags: [{ Key: 'Name', Value: names.stack }],
      },
    },
    ...Object.fromEntries(
      SUBNETS.map(([id, zone, cidr]) => [
        id,
        {
          Type: 'AWS::EC2::Subnet',
          Properties: {
            VpcId: ref('Vpc'),
            CidrBlock: cidr,
            AvailabilityZone: { 'Fn::Select': [zone, { 'Fn::GetAZs': '' }] },
            MapPublicIpOnLaunch: false,
            Tags: [{ Key: 'Name', Value: `${names.stack}-private-${zone === 0 ? 'a' : 'b'}` }],
          },
        },
      ]),
    ),
    PrivateRouteTable: {
      Type: 'AWS::EC2::RouteTable',
      Properties: { VpcId: ref('Vpc'), Tags: [{ Key: 'Name', Value: `${names.stack}-private` }] },
    },
    ...Object.fromEntries(
      SUBNETS.map(([id]) => [
        `${id}RouteTableAssociation`,
        { Type: 'AWS::EC2::SubnetRouteTableAssociation', Properties: { SubnetId: ref(id), RouteTableId: ref('PrivateRouteTable') } },
      ]),
    ),
    // HTTPS out, which the route table leads to the endpoints alone (the gateway endpoints' public
    // address ranges are prefix lists CloudFormation cannot look up, hence 0.0.0.0/0 on 443).
    FunctionsSecurityGroup: {
      Type: 'AWS::EC2::SecurityGroup',
      Properties: {
        GroupDescription: `${names.stack} functions: HTTPS to the VPC endpoints`,
        VpcId: ref('Vpc'),
        SecurityGroupEgress: [
          { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0', Description: 'AWS APIs through the VPC endpoints' },
        ],
      },
    },
    // HTTPS in from the functions only; nothing out (the one rule replaces the default allow-all).
    EndpointsSecurityGroup: {
      Type: 'AWS::EC2::SecurityGroup',
      Properties: {
        GroupDescription: `${names.stack} interface endpoints: HTTPS from the functions`,
        VpcId: ref('Vpc'),
        SecurityGroupIngress: [
          {
            IpProtocol: 'tcp',
            FromPort: 443,
            ToPort: 443,
            SourceSecurityGroupId: ref('FunctionsSecurityGroup'),
            Description: 'The functions',
          },
        ],
        SecurityGroupEgress: [{ IpProtocol: '-1', CidrIp: '127.0.0.1/32', Description: 'Nothing: an endpoint only answers' }],
      },
    },
    SqsEndpoint: interfaceEndpoint('sqs', endpointPolicy([only('ThisStacksQueues', allowed.sqs, queues)])),
    SnsEndpoint: interfaceEndpoint('sns', endpointPolicy([only('ThisStacksTopics', allowed.sns, topics)])),
    // The X-Ray daemon in the execution environment sends the segments over the function's network.
    // X-Ray's actions have no resources to limit a policy to: the endpoint keeps its default policy.
    ...(options.tracing ? { XRayEndpoint: interfaceEndpoint('xray') } : {}),
    DynamoDbEndpoint: gatewayEndpoint('dynamodb', endpointPolicy([only('ThisStacksTables', allowed.dynamodb, tables)])),
    ...(buckets.length > 0
      ? {
          S3Endpoint: gatewayEndpoint(
            's3',
            endpointPolicy([
              only(
                'ThisStacksBuckets',
                allowed.s3,
                buckets.flatMap((id) => [getAtt(id, 'Arn'), sub(`\${${id}.Arn}/*`)]),
              ),
            ]),
          ),
        }
      : {}),
  });

  for (const { fn } of functionsWithRoles(template)) {
    fn.Properties.VpcConfig = { SecurityGroupIds: [ref('FunctionsSecurityGroup')], SubnetIds: subnetIds() };
  }
  for (const roleId of roleIds) {
    // These EC2 actions take no resource-level permission: '*' is the only Resource AWS accepts.
    addToRole(template, roleId, { Sid: 'AttachToTheVpc', Effect: 'Allow', Action: VPC_ACCESS_ACTIONS, Resource: '*' });
  }
  // What a function's own code sends to a queue must come through the stack's SQS endpoint. Not
  // what the event source mapping sends with the consumer's role (from Lambda's network), nor
  // SNS's deliveries (its service principal): docs/decisions.md, "Private networking".
  const roleArns = roleIds.map((roleId) => getAtt(roleId, 'Arn'));
  for (const [, policy] of ofType(template, 'AWS::SQS::QueuePolicy')) {
    const queueArns = policy.Properties.Queues.map((queue) => getAtt(targetOf(queue), 'Arn'));
    policy.Properties.PolicyDocument.Statement.push({
      Sid: 'StackFunctionsThroughTheSqsEndpoint',
      Effect: 'Deny',
      Principal: '*',
      NotAction: EVENT_SOURCE_MAPPING_ACTIONS,
      Resource: queueArns.length === 1 ? queueArns[0] : queueArns,
      Condition: { StringNotEquals: { 'aws:SourceVpce': ref('SqsEndpoint') }, ArnEquals: { 'aws:PrincipalArn': roleArns } },
    });
  }
  addOutputs(template, {
    VpcId: { Value: ref('Vpc') },
    PrivateSubnetIds: { Value: { 'Fn::Join': [',', subnetIds()] } },
    FunctionsSecurityGroupId: { Value: ref('FunctionsSecurityGroup') },
  });
}

// ---------------------------------------------------------------------------------------------
// queueKey=cmk

/** Topic → queue deliveries: the topics subscribing a queue of the stack. */
function topicsDeliveringToQueues(template) {
  const topics = new Set();
  for (const [, subscription] of ofType(template, 'AWS::SNS::Subscription')) {
    const { Protocol, TopicArn, Endpoint } = subscription.Properties;
    if (Protocol === 'sqs' && template.Resources[targetOf(Endpoint)]?.Type === 'AWS::SQS::Queue') topics.add(targetOf(TopicArn));
  }
  return [...topics].sort();
}

function queueKey(template, names) {
  const topics = topicsDeliveringToQueues(template);
  const viaSqs = sub('sqs.${AWS::Region}.amazonaws.com');
  addResources(template, {
    QueueKey: {
      Type: 'AWS::KMS::Key',
      Properties: {
        Description: `Encrypts the ${names.stack} queues and dead-letter queues`,
        EnableKeyRotation: true,
        KeyPolicy: {
          Version: '2012-10-17',
          Statement: [
            // The account's IAM policies decide who else may use the key (the consumers' roles do,
            // below). In a key policy, Resource '*' means this key.
            { Sid: 'AccountAdministersKey', Effect: 'Allow', Principal: { AWS: ACCOUNT_ROOT }, Action: 'kms:*', Resource: '*' },
            // SNS encrypts what it delivers to a queue with the queue's key: only for this stack's
            // topics, and only what delivery needs (AWS's SNS-to-encrypted-queue key policy).
            ...(topics.length > 0
              ? [
                  {
                    Sid: 'StackTopicsDeliverToEncryptedQueues',
                    Effect: 'Allow',
                    Principal: { Service: 'sns.amazonaws.com' },
                    Action: ['kms:GenerateDataKey*', 'kms:Decrypt'],
                    Resource: '*',
                    Condition: {
                      ArnEquals: { 'aws:SourceArn': topics.map((id) => ref(id)) },
                      StringEquals: { 'aws:SourceAccount': ref('AWS::AccountId') },
                    },
                  },
                ]
              : []),
          ],
        },
      },
    },
    QueueKeyAlias: { Type: 'AWS::KMS::Alias', Properties: { AliasName: `alias/${names.stack}-queues`, TargetKeyId: ref('QueueKey') } },
  });

  for (const [, queue] of ofType(template, 'AWS::SQS::Queue')) {
    delete queue.Properties.SqsManagedSseEnabled;
    queue.Properties.KmsMasterKeyId = getAtt('QueueKey', 'Arn');
    // SQS's default, written out: one KMS request per sender or receiver and queue every 5 minutes
    // (the cost in docs/regulated-deployment.md follows from it).
    queue.Properties.KmsDataKeyReusePeriodSeconds = 300;
  }

  // Who reads a queue decrypts; who sends to one generates data keys. Each role, only for the
  // queues it uses: SQS names the queue in the encryption context of every KMS request it makes.
  const readers = new Map();
  const functionRoles = new Map(functionsWithRoles(template).map(({ id, roleId }) => [id, roleId]));
  for (const [, mapping] of ofType(template, 'AWS::Lambda::EventSourceMapping')) {
    const queueId = targetOf(mapping.Properties.EventSourceArn);
    if (template.Resources[queueId]?.Type !== 'AWS::SQS::Queue') continue;
    const roleId = functionRoles.get(targetOf(mapping.Properties.FunctionName));
    if (!roleId) throw new Error(`regulated deployment: the mapping of queue ${queueId} names no function of this stack`);
    readers.set(roleId, [...(readers.get(roleId) ?? []), queueId]);
  }
  const senders = new Map();
  for (const roleId of functionRoleIds(template)) {
    for (const statement of roleStatements(template.Resources[roleId])) {
      if (statement.Effect !== 'Allow' || !stringsIn(statement.Action).includes('sqs:SendMessage')) continue;
      const queueIds = [statement.Resource]
        .flat()
        .map(targetOf)
        .filter((id) => template.Resources[id]?.Type === 'AWS::SQS::Queue');
      if (queueIds.length > 0) senders.set(roleId, [...(senders.get(roleId) ?? []), ...queueIds]);
    }
  }
  const grant = (sid, actions, queueIds) => ({
    Sid: sid,
    Effect: 'Allow',
    Action: actions,
    Resource: getAtt('QueueKey', 'Arn'),
    Condition: {
      StringEquals: {
        'kms:ViaService': viaSqs,
        'kms:EncryptionContext:aws:sqs:arn': [...new Set(queueIds)].sort().map((id) => getAtt(id, 'Arn')),
      },
    },
  });
  for (const [roleId, queueIds] of readers) addToRole(template, roleId, grant('DecryptItsQueues', 'kms:Decrypt', queueIds));
  for (const [roleId, queueIds] of senders)
    addToRole(template, roleId, grant('EncryptForQueuesItSendsTo', ['kms:GenerateDataKey', 'kms:Decrypt'], queueIds));
  addOutputs(template, { QueueKeyArn: { Value: getAtt('QueueKey', 'Arn') } });
}

// ---------------------------------------------------------------------------------------------
// auditTrail=true

function auditTrail(template, options, names) {
  const queues = ofType(template, 'AWS::SQS::Queue').map(([id]) => getAtt(id, 'Arn'));
  const topics = ofType(template, 'AWS::SNS::Topic').map(([id]) => ref(id));
  const trailName = `${names.stack}-audit`;
  // Spelt out: a GetAtt of the trail would close a cycle (the trail waits for the bucket policy).
  const trailArn = sub(`arn:\${AWS::Partition}:cloudtrail:\${AWS::Region}:\${AWS::AccountId}:trail/${trailName}`);
  const bucketArn = getAtt('AuditTrailBucket', 'Arn');
  const dataEventsOf = (name, type, arns) => ({
    Name: name,
    FieldSelectors: [
      { Field: 'eventCategory', Equals: ['Data'] },
      { Field: 'resources.type', Equals: [type] },
      { Field: 'resources.ARN', Equals: arns },
    ],
  });
  addResources(template, {
    // Kept when the stack is removed, whatever retainData says: an audit trail outlives what it audits.
    AuditTrailBucket: {
      Type: 'AWS::S3::Bucket',
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        VersioningConfiguration: { Status: 'Enabled' },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LifecycleConfiguration: {
          Rules: [
            {
              Id: 'expire-audit-logs',
              Status: 'Enabled',
              ExpirationInDays: options.auditLogRetentionDays,
              // A log file overwritten or deleted stays 30 days as a noncurrent version.
              NoncurrentVersionExpiration: { NoncurrentDays: 30 },
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
            },
          ],
        },
      },
    },
    // What AWS documents for a trail's bucket, each grant limited to this trail (aws:SourceArn).
    AuditTrailBucketPolicy: {
      Type: 'AWS::S3::BucketPolicy',
      Properties: {
        Bucket: ref('AuditTrailBucket'),
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'CloudTrailAclCheck',
              Effect: 'Allow',
              Principal: { Service: 'cloudtrail.amazonaws.com' },
              Action: 's3:GetBucketAcl',
              Resource: bucketArn,
              Condition: { StringEquals: { 'aws:SourceArn': trailArn } },
            },
            {
              Sid: 'CloudTrailWrite',
              Effect: 'Allow',
              Principal: { Service: 'cloudtrail.amazonaws.com' },
              Action: 's3:PutObject',
              Resource: sub('${AuditTrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*'),
              Condition: { StringEquals: { 's3:x-amz-acl': 'bucket-owner-full-control', 'aws:SourceArn': trailArn } },
            },
            {
              Sid: 'DenyInsecureTransport',
              Effect: 'Deny',
              Principal: '*',
              Action: 's3:*',
              Resource: [bucketArn, sub('${AuditTrailBucket.Arn}/*')],
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            },
          ],
        },
      },
    },
    // Data events only: the account's own trail has the management events (a second copy of
    // them would be billed), and a default trail records no data events at all.
    AuditTrail: {
      Type: 'AWS::CloudTrail::Trail',
      DependsOn: ['AuditTrailBucketPolicy'],
      Properties: {
        TrailName: trailName,
        S3BucketName: ref('AuditTrailBucket'),
        IsLogging: true,
        EnableLogFileValidation: true,
        IsMultiRegionTrail: false,
        IncludeGlobalServiceEvents: false,
        AdvancedEventSelectors: [
          dataEventsOf("Data events of this stack's queues", 'AWS::SQS::Queue', queues),
          dataEventsOf("Data events of this stack's topics", 'AWS::SNS::Topic', topics),
        ],
      },
    },
  });
  addOutputs(template, { AuditTrailBucketName: { Value: ref('AuditTrailBucket') } });
}

// ---------------------------------------------------------------------------------------------

/**
 * Applies the options to a finished template, in place (`names.stack`: `<service>-<stage>`). Each
 * reads only what the others leave as it was (queues and topics by type, the roles' sqs:, sns:,
 * dynamodb: and s3: actions), so their order does not change the result.
 */
function applyRegulatedOptions(template, options, names) {
  if (allOff(options)) return template;
  if (options.queueKey === 'cmk') queueKey(template, names);
  if (options.vpc) privateNetworking(template, options, names);
  if (options.auditTrail) auditTrail(template, options, names);
  return template;
}

/** The osls plugin: applies the options once osls merged serverless.yml's resources into the template. */
class RegulatedDeployment {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'after:aws:package:finalize:mergeCustomProviderResources': () => this.apply() };
  }

  apply() {
    const { service } = this.serverless;
    let options;
    try {
      options = regulatedOptions(service.custom?.regulatedDeployment);
    } catch (error) {
      // osls prints a ServerlessError's message alone: a mistyped param is the user's to fix, not a crash.
      if (error instanceof RegulatedOptionRefused) throw new this.serverless.classes.Error(error.message, 'REGULATED_OPTION_REFUSED');
      throw error;
    }
    const names = { stack: `${service.service}-${this.serverless.getProvider('aws').getStage()}` };
    applyRegulatedOptions(service.provider.compiledCloudFormationTemplate, options, names);
  }
}

module.exports = RegulatedDeployment;
module.exports.regulatedOptions = regulatedOptions;
module.exports.RegulatedOptionRefused = RegulatedOptionRefused;
module.exports.applyRegulatedOptions = applyRegulatedOptions;
module.exports.EVENT_SOURCE_MAPPING_ACTIONS = EVENT_SOURCE_MAPPING_ACTIONS;
