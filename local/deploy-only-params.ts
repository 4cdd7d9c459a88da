// The regulated-account params (docs/regulated-deployment.md) shape what is deployed around the
// pipeline: a VPC and its endpoints, a KMS key, a CloudTrail trail. The emulators have none of
// these, so `npm start` takes them in serverless's own syntax (`--param=vpc=true`) to let a command
// line be reused, runs without them, and says so once. A value packaging would refuse (`vpc=maybe`,
// `queueKey=CMK`) is refused here too, by the packaging hook's own check, so that a command line
// npm start takes is one `npm run package` takes.
import { createRequire } from 'node:module';

/** Params that change the deployed stack only (resources/regulated-deployment.cjs). */
export const DEPLOY_ONLY_PARAMS = ['vpc', 'queueKey', 'auditTrail', 'auditLogRetentionDays'] as const;

export interface SplitArguments {
  /** The arguments left for npm start itself. */
  args: string[];
  /** `name=value` of each deploy-only param given, in order. */
  ignored: string[];
}

/** Takes `--param=<name>=<value>` and `--param <name>=<value>` of a deploy-only param out of `args`. */
export function splitDeployOnlyParams(args: string[]): SplitArguments {
  const rest: string[] = [];
  const ignored: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const given = arg === '--param' ? args[i + 1] : arg.startsWith('--param=') ? arg.slice('--param='.length) : undefined;
    // Quotes a shell did not take off (`--param="vpc=true"` passed through npm as written).
    const value = given?.replace(/^(["'])(.*)\1$/, '$2');
    const name = value?.split('=')[0];
    if (value === undefined || !value.includes('=') || !(DEPLOY_ONLY_PARAMS as readonly string[]).includes(name!)) {
      rest.push(arg);
      continue;
    }
    ignored.push(value);
    if (arg === '--param') i++;
  }
  return { args: rest, ignored };
}

interface RegulatedDeploymentModule {
  /** Throws RegulatedOptionRefused, naming the param and what it takes, for a value packaging refuses. */
  regulatedOptions(settings: Record<string, string>): unknown;
  RegulatedOptionRefused: new (message: string) => Error;
}

const regulatedDeployment = createRequire(import.meta.url)('../resources/regulated-deployment.cjs') as RegulatedDeploymentModule;

/**
 * Why packaging would refuse these `name=value` params (the first bad one, in one line), or
 * undefined when it would take them. The last of a param given twice counts, as in osls.
 */
export function deployOnlyParamsProblem(given: string[]): string | undefined {
  const settings = Object.fromEntries(given.map((param) => [param.slice(0, param.indexOf('=')), param.slice(param.indexOf('=') + 1)]));
  try {
    regulatedDeployment.regulatedOptions(settings);
    return undefined;
  } catch (error) {
    if (error instanceof regulatedDeployment.RegulatedOptionRefused) return error.message;
    throw error;
  }
}

/** The one line npm start prints when deploy-only params were given. */
export function ignoredParamsNotice(ignored: string[]): string {
  return `Ignored locally: ${ignored.join(', ')}. They shape the deployed stack (VPC endpoints, KMS keys, CloudTrail), which the emulators do not have; npm start runs the pipeline without them (docs/regulated-deployment.md).`;
}
