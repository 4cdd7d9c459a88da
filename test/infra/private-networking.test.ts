// Private networking (`--param="vpc=true"`): every function in private subnets with no path out but
// the stack's VPC endpoints, an endpoint for every AWS service the functions' code calls (else a
// call hangs until the function's timeout), endpoint policies limited to this stack's resources,
// and queue policies holding the functions to the SQS endpoint where that breaks neither SNS
// delivery nor the event source mappings.
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleCalls } from './bundle-actions.js';
import { bundleCode, readableTwin } from './bundles.js';
import { packageRegulated, regulatedDeployment, withOptions } from './regulated-variants.js';
import {
  actionsOf,
  asArray,
  eventSourceMappings,
  functionStatements,
  lambdaFunctions,
  packageStack,
  resource,
  resourcesOfType,
  roleOf,
  targetId,
  type Json,
  type Packaged,
  type Template,
} from './template.js';

let standard: Packaged;
let vpc: Packaged;
let all: Packaged;
beforeAll(() => {
  standard = packageStack();
  vpc = packageRegulated('vpc');
  all = packageRegulated('all');
}, 240_000);

const endpoints = (t: Template) =>
  Object.fromEntries(
    resourcesOfType(t, 'AWS::EC2::VPCEndpoint').map(([id, r]) => [
      String(r.Properties!.ServiceName['Fn::Sub']).split('.').pop(),
      { id, ...r.Properties },
    ]),
  );
const ids = (values: Json) => asArray<Json>(values).map((value) => targetId(value) ?? JSON.stringify(value));
/** Ref/GetAtt targets of a list, sorted, to compare sets of resources. */
const targets = (values: Json) => ids(values).sort();
/** An endpoint policy's resources cover a role's: the same one, or a `${X.Arn}/…*` pattern it falls under. */
function covers(allowed: Json[], wanted: Json): boolean {
  return allowed.some((r) => {
    if (JSON.stringify(r) === JSON.stringify(wanted)) return true;
    const [pattern, text] = [r['Fn::Sub'], wanted['Fn::Sub']];
    return typeof pattern === 'string' && pattern.endsWith('*') && typeof text === 'string' && text.startsWith(pattern.slice(0, -1));
  });
}
const idsOfType = (t: Template, type: string) => resourcesOfType(t, type).map(([id]) => id);

describe.each([
  ['vpc=true', () => vpc],
  ['all three options', () => all],
])('private networking (%s)', (_name, packaged) => {
  let t: Template;
  beforeAll(() => {
    t = packaged().template;
  });

  it('runs every function in the two private subnets, in two zones, with the functions security group', () => {
    const functions = lambdaFunctions(t, 'dev');
    expect(functions).toHaveLength(lambdaFunctions(standard.template, 'dev').length);
    for (const fn of functions) {
      expect(fn.resource.Properties!.VpcConfig, fn.key).toEqual({
        SecurityGroupIds: [{ Ref: 'FunctionsSecurityGroup' }],
        SubnetIds: [{ Ref: 'PrivateSubnetA' }, { Ref: 'PrivateSubnetB' }],
      });
    }
    const zones = ['PrivateSubnetA', 'PrivateSubnetB'].map((id) => resource(t, id).Properties!.AvailabilityZone['Fn::Select'][0]);
    expect(new Set(zones).size).toBe(2);
  });

  it('gives the subnets no way out but the endpoints: no internet or NAT gateway, no route but the gateway endpoints', () => {
    for (const type of [
      'AWS::EC2::InternetGateway',
      'AWS::EC2::NatGateway',
      'AWS::EC2::EIP',
      'AWS::EC2::Route',
      'AWS::EC2::VPCGatewayAttachment',
      'AWS::EC2::EgressOnlyInternetGateway',
    ]) {
      expect(idsOfType(t, type), type).toEqual([]);
    }
    for (const id of ['PrivateSubnetA', 'PrivateSubnetB']) expect(resource(t, id).Properties!.MapPublicIpOnLaunch).toBe(false);
    // Private DNS of interface endpoints needs both.
    expect(resource(t, 'Vpc').Properties).toMatchObject({ EnableDnsSupport: true, EnableDnsHostnames: true });
  });

  it('has an interface endpoint with private DNS for SQS and SNS, in both subnets, open to the functions on 443 only', () => {
    const found = endpoints(t);
    for (const service of ['sqs', 'sns']) {
      expect(found[service], service).toMatchObject({
        VpcEndpointType: 'Interface',
        PrivateDnsEnabled: true,
        SubnetIds: [{ Ref: 'PrivateSubnetA' }, { Ref: 'PrivateSubnetB' }],
        SecurityGroupIds: [{ Ref: 'EndpointsSecurityGroup' }],
      });
    }
    const group = resource(t, 'EndpointsSecurityGroup').Properties as Json;
    expect(group.SecurityGroupIngress).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, SourceSecurityGroupId: { Ref: 'FunctionsSecurityGroup' } }),
    ]);
    // The one egress rule replaces the default allow-all with nothing reachable.
    expect(group.SecurityGroupEgress).toEqual([expect.objectContaining({ CidrIp: '127.0.0.1/32' })]);
    expect(resource(t, 'FunctionsSecurityGroup').Properties!.SecurityGroupEgress).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
  });

  it("has a gateway endpoint for DynamoDB on the subnets' route table", () => {
    expect(endpoints(t).dynamodb).toMatchObject({ VpcEndpointType: 'Gateway', RouteTableIds: [{ Ref: 'PrivateRouteTable' }] });
    for (const id of ['PrivateSubnetA', 'PrivateSubnetB']) {
      const association = resourcesOfType(t, 'AWS::EC2::SubnetRouteTableAssociation').find(
        ([, r]) => r.Properties!.SubnetId.Ref === id && r.Properties!.RouteTableId.Ref === 'PrivateRouteTable',
      );
      expect(association, id).toBeDefined();
    }
  });

  it('reaches every AWS service some function calls through an endpoint (a call with none would hang until the timeout)', () => {
    // The services the code calls, read from the bundles themselves (the readable twin of the
    // default packaging: the code is the same in every variant).
    const readable = readableTwin(standard);
    const services = new Set<string>();
    for (const fn of lambdaFunctions(standard.template, 'dev')) {
      for (const action of bundleCalls(bundleCode(readable, fn.key)).actions) services.add(action.split(':')[0]!);
    }
    expect([...services].sort()).toEqual(expect.arrayContaining(['dynamodb', 'sns', 'sqs']));
    const found = endpoints(t);
    for (const service of services) expect(found[service], `an endpoint for ${service}`).toBeDefined();
    // No X-Ray endpoint unless tracing is on (below), no S3 endpoint unless a function uses a bucket.
    expect(found.xray).toBeUndefined();
  });

  it('limits each endpoint policy to this stack: its queues, topics, tables, to principals of this account', () => {
    const found = endpoints(t);
    const expected: Record<string, string[]> = {
      sqs: idsOfType(t, 'AWS::SQS::Queue'),
      sns: idsOfType(t, 'AWS::SNS::Topic'),
      dynamodb: idsOfType(t, 'AWS::DynamoDB::Table'),
    };
    for (const [service, resources] of Object.entries(expected)) {
      const statements = found[service].PolicyDocument.Statement as Json[];
      expect(statements, service).toHaveLength(1);
      const [statement] = statements;
      expect(statement.Effect).toBe('Allow');
      expect(statement.Condition).toEqual({ StringEquals: { 'aws:PrincipalAccount': { Ref: 'AWS::AccountId' } } });
      expect(
        actionsOf(statement).every((action) => action.startsWith(`${service}:`) && !action.includes('*')),
        service,
      ).toBe(true);
      // Every resource is one of the stack's (tables with their indexes).
      const named = asArray<Json>(statement.Resource).map((r) => targetId(r) ?? /^\$\{(\w+)\.Arn\}\/index\/\*$/.exec(r['Fn::Sub'])?.[1]);
      expect([...new Set(named)].sort(), service).toEqual([...resources].sort());
    }
  });

  it("allows through each endpoint every action a function's role allows on the stack's resources", () => {
    const found = endpoints(t);
    for (const fn of lambdaFunctions(t, 'dev')) {
      for (const statement of functionStatements(t, fn.id)) {
        for (const action of actionsOf(statement)) {
          const service = action.split(':')[0]!;
          if (!['sqs', 'sns', 'dynamodb', 's3'].includes(service)) continue;
          const policy = found[service]?.PolicyDocument.Statement[0];
          expect(actionsOf(policy), `${fn.key}: ${action}`).toContain(action);
          for (const r of asArray<Json>(statement.Resource))
            expect(covers(asArray(policy.Resource), r), `${fn.key}: ${action} on ${JSON.stringify(r)}`).toBe(true);
        }
      }
    }
  });

  it('gives every function role the EC2 actions Lambda needs to attach it to the subnets', () => {
    for (const fn of lambdaFunctions(t, 'dev')) {
      const actions = functionStatements(t, fn.id).flatMap(actionsOf);
      expect(actions, fn.key).toEqual(
        expect.arrayContaining(['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DeleteNetworkInterface']),
      );
    }
  });

  it("holds the functions to the SQS endpoint in every queue policy, except the mappings' actions, and keeps SNS delivery", () => {
    const roles = [...new Set(lambdaFunctions(t, 'dev').map((fn) => roleOf(t, fn.id)))].sort();
    const policies = resourcesOfType(t, 'AWS::SQS::QueuePolicy');
    // Every queue of the stack is under one of them.
    expect(policies.flatMap(([, p]) => targets(p.Properties!.Queues)).sort()).toEqual(idsOfType(t, 'AWS::SQS::Queue').sort());
    for (const [id, policy] of policies) {
      const statements = policy.Properties!.PolicyDocument.Statement as Json[];
      const deny = statements.find((s) => s.Sid === 'StackFunctionsThroughTheSqsEndpoint');
      expect(deny, id).toMatchObject({ Effect: 'Deny', Principal: '*' });
      expect(deny.Condition.StringNotEquals).toEqual({ 'aws:SourceVpce': { Ref: 'SqsEndpoint' } });
      expect(targets(deny.Condition.ArnEquals['aws:PrincipalArn'])).toEqual(roles);
      expect(targets(deny.Resource)).toEqual(targets(policy.Properties!.Queues));
      // Lambda's pollers receive and delete with the consumer's role from Lambda's own network.
      expect([...deny.NotAction].sort()).toEqual(['sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage']);
      expect(deny.NotAction).toEqual(regulatedDeployment.EVENT_SOURCE_MAPPING_ACTIONS);
      // What the consumers' own code sends is covered: not in NotAction.
      for (const action of ['sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl', 'sqs:SendMessage'])
        expect(deny.NotAction).not.toContain(action);
      // The deny names the stack's roles, so the SNS service principal's delivery is untouched.
      expect(
        statements.filter((s) => s.Sid !== 'StackFunctionsThroughTheSqsEndpoint'),
        id,
      ).toEqual(resource(standard.template, id).Properties!.PolicyDocument.Statement);
    }
    // The mappings read queues under such a policy with a role it names: the exemption is what keeps them working.
    for (const mapping of eventSourceMappings(t)) expect(roles).toContain(roleOf(t, mapping.functionId));
  });
});

describe('private networking options', () => {
  it('adds an X-Ray endpoint when tracing is on too', () => {
    const t = withOptions(standard.template, { vpc: 'true', tracing: 'true' });
    expect(endpoints(t).xray).toMatchObject({ VpcEndpointType: 'Interface', PrivateDnsEnabled: true });
  });

  it('adds an S3 gateway endpoint limited to the buckets the functions are given, when there are such buckets', () => {
    const bucketsUsed = new Set<string>();
    for (const fn of lambdaFunctions(standard.template, 'dev')) {
      for (const value of Object.values<Json>(fn.resource.Properties!.Environment?.Variables ?? {})) {
        const id = targetId(value);
        if (id && standard.template.Resources[id]?.Type === 'AWS::S3::Bucket') bucketsUsed.add(id);
      }
    }
    const networked = withOptions(standard.template, { vpc: 'true' });
    const s3 = endpoints(networked).s3;
    if (bucketsUsed.size === 0) {
      expect(s3).toBeUndefined();
    } else {
      expect(s3).toMatchObject({ VpcEndpointType: 'Gateway', RouteTableIds: [{ Ref: 'PrivateRouteTable' }] });
      const named = new Set(
        asArray<Json>(s3.PolicyDocument.Statement[0].Resource).map((r) => targetId(r) ?? /^\$\{(\w+)\.Arn\}\/\*$/.exec(r['Fn::Sub'])?.[1]),
      );
      expect([...named].sort()).toEqual([...bucketsUsed].sort());
    }
    // The deployment bucket is never one of them: the functions are not given it.
    expect(bucketsUsed.has('ServerlessDeploymentBucket')).toBe(false);
  });
});
