import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { faultPlan, inOutage, resetFaultPlan, writeOutages } from '../../lib/fault-injection.js';

// The console's switches: faults for one function and outages, written to the file every
// execution environment reads (FAULT_OUTAGES_FILE), on and off again with no restart.

let dir: string;
let file: string;
const saved = { ...process.env };

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fault-switches-'));
  file = path.join(dir, 'switches.json');
  process.env.FAULT_OUTAGES_FILE = file;
  process.env.AWS_LAMBDA_FUNCTION_NAME = 'order-pipeline-local-payment';
  resetFaultPlan();
});

afterEach(() => {
  writeOutages(file, {});
  process.env = { ...saved };
  resetFaultPlan();
  rmSync(dir, { recursive: true, force: true });
});

describe('fault switches', () => {
  it("turn a function's transient errors on and off at run time, and leave other functions alone", () => {
    writeOutages(file, { functions: { 'order-pipeline-local-payment': { transientErrorRate: 0.3 } } });
    expect(faultPlan()).toMatchObject({ transientErrorRate: 0.3, crashRate: 0, publishFailureRate: 0 });

    process.env.AWS_LAMBDA_FUNCTION_NAME = 'order-pipeline-local-inventory';
    expect(faultPlan()).toBeNull();

    process.env.AWS_LAMBDA_FUNCTION_NAME = 'order-pipeline-local-payment';
    writeOutages(file, {});
    expect(faultPlan()).toBeNull();
  });

  it("switch over the function's own FAULT_* variables, keeping the rest of them", () => {
    process.env.FAULT_CRASH_RATE = '0.1';
    resetFaultPlan();
    writeOutages(file, { functions: { 'order-pipeline-local-payment': { transientErrorRate: 1 } } });
    expect(faultPlan()).toMatchObject({ transientErrorRate: 1, crashRate: 0.1 });
  });

  it('turn an outage on for as long as it is written, beside the switched faults', () => {
    writeOutages(file, { provider: { from: 0, until: Number.MAX_SAFE_INTEGER }, functions: {} });
    expect(inOutage('provider')).toBe(true);
    expect(inOutage('topic')).toBe(false);
    writeOutages(file, {});
    expect(inOutage('provider')).toBe(false);
  });
});
