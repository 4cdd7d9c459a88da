import { httpUrl, isMain, noLocalRuntime, nonEmpty, parseCommandLine, readCommandLine, UsageError, wholeNumber } from './command-line.js';

// npm run token -- --customer cus_1 [--expires-in 3600] [--api URL]

const usage = `usage: npm run token -- --customer ID [--expires-in 3600] [--api URL]
  Prints an access token for the customer ID, signed by the local issuer of the running \`npm start\`
  (a key made when it started), for the JWT authorizer the packaged template declares. Send it as
  \`Authorization: Bearer <token>\`: POST /orders and GET /orders/{orderId} require it, and the
  customer an order belongs to is the token's subject. --expires-in: seconds, 3600 by default;
  negative for a token already expired, to see the 401 (--expires-in -60). Target: the running
  \`npm start\` (PORT, or .cache/local-runtime.json), or --api URL.`;

export interface TokenCommandLine {
  help: boolean;
  customer?: string;
  expiresInSeconds?: number;
  api?: string;
}

export function parseTokenArgs(args: string[]): TokenCommandLine {
  const { values } = parseCommandLine(
    args,
    {
      options: {
        help: { type: 'boolean', short: 'h', default: false },
        customer: { type: 'string' },
        'expires-in': { type: 'string' },
        api: { type: 'string' },
      },
    },
    // `--expires-in -60`: a value parseArgs alone would refuse as looking like a flag.
    { negativeNumbers: ['expires-in'] },
  );
  if (values.help) return { help: true };
  const customer = nonEmpty('--customer', values.customer);
  if (customer === undefined) throw new UsageError('--customer is required');
  const expiresInSeconds = wholeNumber('--expires-in', values['expires-in'], { min: -86_400, max: 86_400 });
  const api = httpUrl('--api', values.api);
  return { help: false, customer, ...(expiresInSeconds === undefined ? {} : { expiresInSeconds }), ...(api ? { api } : {}) };
}

async function main(commandLine: TokenCommandLine): Promise<void> {
  if (commandLine.help) {
    console.log(usage);
    return;
  }
  const { localTarget } = await import('../local/runtime-state.js');
  const api = (commandLine.api ?? localTarget().apiUrl).replace(/\/$/, '');
  const query = new URLSearchParams({ customer: commandLine.customer ?? '' });
  if (commandLine.expiresInSeconds !== undefined) query.set('expiresIn', String(commandLine.expiresInSeconds));
  let response: Response;
  try {
    response = await fetch(`${api}/_local/token?${query}`);
  } catch {
    process.stderr.write(`${noLocalRuntime(api, 'PORT or --api URL')}\n`);
    process.exit(1);
  }
  const answer = (await response.json()) as { token?: string; message?: string };
  if (!response.ok || !answer.token) {
    process.stderr.write(`${api} refused: ${answer.message ?? response.status}\n`);
    process.exit(1);
  }
  // The token alone on stdout, so that TOKEN=$(npm run -s token -- --customer cus_1) works.
  process.stdout.write(`${answer.token}\n`);
}

if (isMain(import.meta.url)) await main(readCommandLine(usage, () => parseTokenArgs(process.argv.slice(2))));
