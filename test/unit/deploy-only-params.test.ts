// npm start takes the regulated-account params in serverless's syntax and runs without them.
import { describe, expect, it } from 'vitest';
import { ignoredParamsNotice, splitDeployOnlyParams } from '../../local/deploy-only-params.js';

describe('npm start and the deploy-only params', () => {
  it('takes each deploy-only param out of the arguments, in both spellings, quotes and all', () => {
    expect(splitDeployOnlyParams(['--fifo', '--param=vpc=true', '--param', 'queueKey=cmk', '--param="auditTrail=true"'])).toEqual({
      args: ['--fifo'],
      ignored: ['vpc=true', 'queueKey=cmk', 'auditTrail=true'],
    });
  });

  it('leaves any other param and argument for npm start to refuse', () => {
    expect(splitDeployOnlyParams(['--param=batchSize=5', '--param', 'vpc', '--verbose'])).toEqual({
      args: ['--param=batchSize=5', '--param', 'vpc', '--verbose'],
      ignored: [],
    });
  });

  it('says in one line what it ignores, and why', () => {
    const notice = ignoredParamsNotice(['vpc=true', 'queueKey=cmk']);
    expect(notice.split('\n')).toHaveLength(1);
    expect(notice).toContain('Ignored locally: vpc=true, queueKey=cmk');
    expect(notice).toContain('docs/regulated-deployment.md');
  });
});
