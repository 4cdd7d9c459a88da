// npm start takes the regulated-account params in serverless's syntax and runs without them.
import { describe, expect, it } from 'vitest';
import { deployOnlyParamsProblem, ignoredParamsNotice, splitDeployOnlyParams } from '../../local/deploy-only-params.js';

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

  it('takes the values packaging takes', () => {
    expect(deployOnlyParamsProblem([])).toBeUndefined();
    expect(deployOnlyParamsProblem(['vpc=true', 'queueKey=cmk', 'auditTrail=false', 'auditLogRetentionDays=30'])).toBeUndefined();
  });

  it.each([
    ['vpc=maybe', 'param vpc is false or true, not "maybe"'],
    ['queueKey=CMK', 'param queueKey is sqs or cmk, not "CMK"'],
    ['auditTrail=yes', 'param auditTrail is false or true, not "yes"'],
    ['auditLogRetentionDays=1.5', 'param auditLogRetentionDays is a whole number of days, not 1.5'],
  ])('refuses %s in one line naming the param and what it takes, as packaging does', (param, message) => {
    expect(deployOnlyParamsProblem(['vpc=true', param])).toBe(message);
  });

  it('counts the last of a param given twice', () => {
    expect(deployOnlyParamsProblem(['vpc=maybe', 'vpc=true'])).toBeUndefined();
  });
});
