import './aws-sdk-quiet.js';
import { readFileSync } from 'node:fs';
import { SQSClient } from '@aws-sdk/client-sqs';
import { localTarget } from '../local/runtime-state.js';
import type { TargetFlags } from './command-line.js';

// Which stack a command-line tool talks to: the local runtime (`npm start`) by default, or a
// deployed stage with `--aws --stage NAME`, through the default AWS credential chain.

export const STAGE_QUEUES = ['inventory', 'payment', 'shipping'] as const;
export type StageQueue = (typeof STAGE_QUEUES)[number];

export interface StackTarget {
  description: string;
  stage: string;
  service: string;
  region: string;
  sqs: SQSClient;
  queueName: (queue: StageQueue, deadLetter?: boolean) => string;
}

const serverlessYml = () => readFileSync(new URL('../serverless.yml', import.meta.url), 'utf8');

function serviceName(): string {
  const match = /^service:\s*([\w-]+)/m.exec(serverlessYml());
  if (!match?.[1]) throw new Error('No service name in serverless.yml');
  return match[1];
}

/** The function keys under `functions:` in serverless.yml (two-space indented names). */
export function functionKeys(yaml: string = serverlessYml()): string[] {
  const section = /^functions:\n([\s\S]*?)(?=^\S)/m.exec(yaml)?.[1] ?? '';
  return [...section.matchAll(/^ {2}([A-Za-z][\w-]*):\s*$/gm)].map((match) => match[1]!);
}

export function stackTarget(flags: TargetFlags): StackTarget {
  const { aws } = flags;
  // Locally: where `npm start` listens, from its environment variables or its state file.
  const local = aws ? undefined : localTarget();
  const stage = flags.stage ?? local?.stage ?? 'dev';
  const service = serviceName();
  const queueName = (queue: StageQueue, deadLetter = false) => `${service}-${stage}-${queue}${deadLetter ? '-dlq' : ''}`;
  if (!local) {
    const region = flags.region ?? process.env.AWS_REGION ?? 'us-east-1';
    return { description: `AWS ${region}, stage ${stage}`, stage, service, region, sqs: new SQSClient({ region }), queueName };
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
    queueName,
  };
}
