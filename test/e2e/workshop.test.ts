import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT } from '../../local/package-stack.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { writeRuntimeState } from '../../local/runtime-state.js';
import { LABS, labPage } from '../../scripts/labs.js';

// The workshop cannot rot: every lab's page (docs/workshop/NN-*.md) is run here as an attendee
// would, in order, on one local pipeline with the stack's local settings (what `npm start` runs).
// Each fenced `bash` block of a page runs, in page order, in one bash (the helpers its first block
// loads stay defined), and its last step, `npm run lab -- check N`, must pass. Blocks fenced
// `bash aws-cli` run when the AWS CLI is installed. The tools find the pipeline as they find
// `npm start`: through a runtime state file, here a file of the test's own.

const dir = mkdtempSync(path.join(tmpdir(), 'workshop-'));
const stateFile = path.join(dir, 'local-runtime.json');
let pipeline: LocalPipeline;
const hasAwsCli = (() => {
  try {
    execFileSync('aws', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** The shell blocks of a page, in order: `bash`, and `bash aws-cli` when the CLI is there. */
function shellBlocks(page: string, withAwsCli: boolean): string[] {
  const blocks: string[] = [];
  const lines = page.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const open = /^(\s*)```bash( aws-cli)?\s*$/.exec(lines[index]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    for (index++; index < lines.length && !/^\s*```\s*$/.test(lines[index]!); index++) body.push(lines[index]!.slice(indent));
    if (!open[2] || withAwsCli) blocks.push(body.join('\n'));
  }
  return blocks;
}

function runSteps(script: string): Promise<{ code: number | null; output: string }> {
  const { PORT: _, SQS_PORT: __, SQS_ENDPOINT: ___, ...inherited } = process.env;
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', `set -eo pipefail\n${script}`], {
      cwd: REPOSITORY_ROOT,
      env: { ...inherited, LOCAL_RUNTIME_STATE_FILE: stateFile, npm_config_update_notifier: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** `npm start`, or `npm start -- --fifo` in its place, as the labs say; the tools find it in the state file. */
async function startPipeline(queueType: 'standard' | 'fifo'): Promise<void> {
  await pipeline?.stop();
  rmSync(stateFile, { force: true });
  pipeline = await startLocalPipeline({
    apiPort: 0,
    sqsPort: 0,
    dynamodbPort: 0,
    queueType,
    // Not quiet: the handlers' lines are what the labs' checks read (GET /_local/console/logs).
    write: () => {},
  });
  writeRuntimeState(
    {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      apiUrl: pipeline.apiUrl,
      endpoints: pipeline.endpoints,
      stage: 'local',
      templatePath: pipeline.templatePath,
    },
    stateFile,
  );
}

describe('the workshop', () => {
  beforeAll(() => startPipeline('standard'), 300_000);

  afterAll(async () => {
    await pipeline?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has a page for every lab, each with a goal, steps, what to see, a folded answer, an AWS note and its check', () => {
    const pages = readdirSync(path.join(REPOSITORY_ROOT, 'docs/workshop')).filter((file) => /^\d\d-.*\.md$/.test(file));
    expect(pages.sort()).toEqual(LABS.map((lab) => lab.file).sort());
    for (const lab of LABS) {
      const page = labPage(lab);
      for (const heading of ['## Goal', '## Steps', '## What you should see', '## On AWS'])
        expect(page, `${lab.file}: ${heading}`).toContain(heading);
      expect(page, `${lab.file}: a folded answer`).toMatch(/<details>\s*<summary>Question: [^<]+<\/summary>[\s\S]+?<\/details>/);
      const blocks = shellBlocks(page, true);
      expect(blocks[0], `${lab.file} begins by loading the helpers`).toContain('eval "$(npm run -s lab -- env)"');
      expect(blocks.at(-1)?.trim().split('\n').at(-1), `${lab.file} ends with its check`).toBe(`npm run lab -- check ${lab.number}`);
    }
  });

  it('says what is missing, and exits 1, before a lab is done', async () => {
    const { code, output } = await runSteps('npm run -s lab -- check 4');
    expect(code).toBe(1);
    expect(output).toContain('Lab 4: not yet');
    expect(output).toMatch(/✗ the payment DLQ holds the poison message[^\n]*\n\s+missing: no poison message in the payment DLQ/);
  });

  for (const lab of LABS) {
    it(`lab ${lab.number}, ${lab.title}: its steps run and lead to the state its check wants`, async () => {
      if (lab.queueType !== (pipeline.queueType === 'fifo' ? 'fifo' : 'standard')) await startPipeline(lab.queueType);
      const { code, output } = await runSteps(shellBlocks(labPage(lab), hasAwsCli).join('\n'));
      expect(code, output).toBe(0);
      expect(output).toContain(`Lab ${lab.number}: done.`);
    }, 360_000);
  }
});
