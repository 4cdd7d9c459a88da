// Which AWS API actions a function's packaged bundle can call, read from the bundle itself.
//
// It reads esbuild output that is not minified, with the AWS SDK bundled in: every module starts
// with a `// <path>` line, so the SDK's command classes can be found by the file that defines them
// (`@aws-sdk/client-dynamodb/dist-es/commands/GetItemCommand.js` defines `GetItemCommand`, maybe
// renamed `GetItemCommand2` by esbuild). The shipped bundles are minified (no such lines, names
// mangled), so the tests read their readable twin: the same packaging with `--param=minify=false`,
// which bundles.ts checks differs from it in nothing else (same esbuild options but minify, same
// template, same modules in every bundle).
// A command counts as called when the bundle constructs it
// (`new GetItemCommand(`) anywhere but inside a lib-dynamodb wrapper, or constructs a wrapper that
// sends it (`new GetCommand(` → GetItem), or calls a paginator over it (`paginateQuery(` → Query).
// A command class that is only defined is not a call: lib-dynamodb's paginators keep
// QueryCommand and ScanCommand in every bundle that uses the document client, called or not.

/**
 * SDK operations whose IAM action has another name. SQS and SNS authorize a batch request with
 * the single action; a DynamoDB transaction with the actions of the items it holds.
 */
const ACTIONS_OF_OPERATION: Record<string, string[]> = {
  'sqs:ChangeMessageVisibilityBatch': ['sqs:ChangeMessageVisibility'],
  'sqs:DeleteMessageBatch': ['sqs:DeleteMessage'],
  'sqs:SendMessageBatch': ['sqs:SendMessage'],
  'sns:PublishBatch': ['sns:Publish'],
  'dynamodb:TransactGetItems': ['dynamodb:GetItem'],
  'dynamodb:TransactWriteItems': ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem'],
};

/** `@aws-sdk/client-<x>` packages whose IAM prefix is not `<x>`. */
const IAM_PREFIX_OF_CLIENT: Record<string, string> = { 'sso-oidc': 'sso-oauth' };

interface Section {
  path: string;
  text: string;
}

/** The bundle cut at esbuild's `// <path>` module headers. */
function sections(bundle: string): Section[] {
  const found: Section[] = [];
  const header = /^\/\/ (\S+\.(?:[cm]?js|ts|json))$/gm;
  let previous: { path: string; start: number } | undefined;
  for (const match of bundle.matchAll(header)) {
    if (previous) found.push({ path: previous.path, text: bundle.slice(previous.start, match.index) });
    previous = { path: match[1]!, start: match.index! + match[0].length };
  }
  if (previous) found.push({ path: previous.path, text: bundle.slice(previous.start) });
  return found;
}

const escapeDollars = (name: string) => name.replace(/\$/g, '\\$');

export interface BundleCalls {
  /** IAM actions (`dynamodb:GetItem`, …) of the commands the bundle sends. */
  actions: Set<string>;
  /** Command classes the bundle defines, called or not (a check that the reading worked). */
  defined: Set<string>;
}

/** The AWS API actions an esbuild bundle (not minified, SDK bundled) can call. */
export function bundleCalls(bundle: string): BundleCalls {
  const all = sections(bundle);
  if (all.length === 0) throw new Error('No `// <path>` module headers in the bundle: is it minified? Read its readable twin (bundles.ts)');

  // Command classes of the service clients: variable name → IAM action(s).
  const commands = new Map<string, string[]>();
  // lib-dynamodb wrappers: variable name → the client command class they send.
  const wrappers = new Map<string, string>();
  for (const { path, text } of all) {
    const client = /@aws-sdk\/client-([\w-]+)\/dist-[\w-]+\/commands\/(\w+)Command\.js$/.exec(path);
    if (client) {
      // `var X = class extends …`, or inside esbuild's lazy-init wrapper of a module loaded by
      // import() (lib/claim-check-bucket.ts): `var X; var init_X = __esm({ … X = class extends … })`.
      const name = /^\s*(?:var )?(\w+) = class extends /m.exec(text)?.[1];
      if (!name) throw new Error(`${path}: no command class found`);
      const prefix = IAM_PREFIX_OF_CLIENT[client[1]!] ?? client[1]!;
      const operation = `${prefix}:${client[2]}`;
      commands.set(name, ACTIONS_OF_OPERATION[operation] ?? [operation]);
      continue;
    }
    if (/@aws-sdk\/lib-dynamodb\/dist-[\w-]+\/commands\/\w+Command\.js$/.test(path)) {
      const name = /^var (\w+) = class extends /m.exec(text)?.[1];
      const inner = /this\.clientCommand = new (\w+)\(/.exec(text)?.[1];
      if (!name || !inner) throw new Error(`${path}: no wrapper class or client command found`);
      wrappers.set(name, inner);
    }
  }

  // Constructions outside the wrappers (whose `new <ClientCommand>(this.input)` runs only when the
  // wrapper itself is constructed).
  const outside = all
    .filter(({ path }) => !/@aws-sdk\/lib-dynamodb\/dist-[\w-]+\/commands\//.test(path))
    .map(({ text }) => text)
    .join('\n');
  const constructed = (name: string) => new RegExp(`\\bnew ${escapeDollars(name)}\\(`).test(outside);

  const called = new Set<string>();
  const send = (name: string) => {
    const target = wrappers.get(name) ?? name;
    for (const action of commands.get(target) ?? []) called.add(action);
  };
  for (const name of [...commands.keys(), ...wrappers.keys()]) if (constructed(name)) send(name);

  // Paginators: `var paginateQuery = createPaginator(Client, QueryCommand2, …)`, called elsewhere.
  for (const match of bundle.matchAll(/^var (\w+) = createPaginator\(\w+, (\w+),/gm)) {
    const [, paginator, command] = match;
    const calls = bundle.match(new RegExp(`\\b${escapeDollars(paginator!)}\\(`, 'g'))?.length ?? 0;
    if (calls > 0) send(command!);
  }

  return { actions: called, defined: new Set([...commands.keys(), ...wrappers.keys()]) };
}
