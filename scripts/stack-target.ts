import './aws-sdk-quiet.js';
import { existsSync, readFileSync } from 'node:fs';
import { SQSClient } from '@aws-sdk/client-sqs';
import { defaultTemplatePath } from '../local/package-stack.js';
import { functionKeys, type Lane, queueConsumers, type QueueConsumer } from '../local/queue-consumers.js';
import { localTarget } from '../local/runtime-state.js';
import { readTemplate, type CfnTemplate } from '../local/template.js';
import { type TargetFlags, UsageError } from './command-line.js';

// Which stack a command-line tool talks to: the local runtime (`npm start`) by default, or a
// deployed stage with `--aws --stage NAME`, through the default AWS credential chain. Its queue
// consumers and functions come from its CloudFormation template: the packaged one the local
// runtime runs, or the one CloudFormation holds for the deployed stack. No tool keeps a list.

export interface StackTarget {
  description: string;
  /** The deploy stage (queue names are <service>-<stage>-<consumer>). */
  stage: string;
  service: string;
  region: string;
  sqs: SQSClient;
  /** The queue consumers of the stack, by name. */
  consumers: QueueConsumer[];
  /** Every function's key in serverless.yml, sorted. */
  functions: string[];
}

const serverlessYml = () => readFileSync(new URL('../serverless.yml', import.meta.url), 'utf8');

function serviceName(): string {
  const match = /^service:\s*([\w-]+)/m.exec(serverlessYml());
  if (!match?.[1]) throw new Error('No service name in serverless.yml');
  return match[1];
}

/** The template of the deployed stack, as CloudFormation processed it (what `serverless deploy` sent). */
export async function deployedTemplate(stackName: string, region: string): Promise<CfnTemplate> {
  const { CloudFormationClient, GetTemplateCommand } = await import('@aws-sdk/client-cloudformation');
  const cloudFormation = new CloudFormationClient({ region });
  try {
    const { TemplateBody } = await cloudFormation.send(new GetTemplateCommand({ StackName: stackName, TemplateStage: 'Processed' }));
    if (!TemplateBody) throw new Error(`CloudFormation returned no template for ${stackName}`);
    return JSON.parse(TemplateBody) as CfnTemplate;
  } catch (error) {
    if ((error as Error).name === 'ValidationError')
      throw new Error(`No stack ${stackName} in ${region} (deploy it with \`npm run deploy -- --stage ...\`): ${(error as Error).message}`);
    throw error;
  } finally {
    cloudFormation.destroy();
  }
}

/** No local runtime has packaged the stage: nothing to read its consumers from (nor, likely, to talk to). */
export class NoPackagedTemplate extends Error {
  override readonly name = 'NoPackagedTemplate';
}

async function packagedTemplate(templatePath: string, stage: string): Promise<CfnTemplate> {
  if (!existsSync(templatePath)) {
    throw new NoPackagedTemplate(
      `No packaged template for stage ${stage} at ${templatePath}: \`npm start\` packages the stack (LOCAL_STAGE=${stage} npm start for this stage).`,
    );
  }
  return readTemplate(templatePath);
}

export async function stackTarget(flags: TargetFlags, readDeployedTemplate = deployedTemplate): Promise<StackTarget> {
  const { aws } = flags;
  // Locally: where `npm start` listens, from its environment variables or its state file.
  const local = aws ? undefined : localTarget();
  const stage = flags.stage ?? local?.stage ?? 'dev';
  const service = serviceName();
  const stackName = `${service}-${stage}`;
  const of = (template: CfnTemplate) => ({ consumers: queueConsumers(template, stackName), functions: functionKeys(template, stackName) });
  if (!local) {
    const region = flags.region ?? process.env.AWS_REGION ?? 'us-east-1';
    const template = await readDeployedTemplate(stackName, region);
    return { description: `AWS ${region}, stage ${stage}`, stage, service, region, sqs: new SQSClient({ region }), ...of(template) };
  }
  const endpoint = local.sqsEndpoint;
  return {
    description: `local runtime at ${endpoint}, stage ${stage}`,
    stage,
    service,
    region: 'us-east-1',
    sqs: new SQSClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    }),
    ...of(await packagedTemplate(stage === local.stage ? local.templatePath : defaultTemplatePath(stage), stage)),
  };
}

/**
 * The consumer a command line names, in the lane it names (its standard queue unless --express),
 * of those the stack has; a UsageError names them all otherwise.
 */
export function consumerNamed(consumers: QueueConsumer[], name: string | undefined, lane: Lane = 'standard'): QueueConsumer {
  const names = [...new Set(consumers.map((consumer) => consumer.name))].join(', ');
  if (name === undefined) throw new UsageError(`which consumer? one of ${names}`);
  const named = consumers.filter((candidate) => candidate.name === name);
  if (named.length === 0) throw new UsageError(`unknown consumer ${JSON.stringify(name)}: one of ${names}`);
  const consumer = named.find((candidate) => candidate.lane === lane);
  if (!consumer) throw new UsageError(`consumer ${JSON.stringify(name)} has no ${lane} queue`);
  return consumer;
}
