// The regulated-account variants of the stack (docs/regulated-deployment.md): each option alone
// and all three together, packaged through test/infra/template.ts (one packaging per variant,
// shared by the test files), and the packaging hook itself, to apply to a template in memory.
import { createRequire } from 'node:module';
import { type Json, packageStack, type Packaged, type Template } from './template.js';

export const REGULATED_VARIANTS = {
  vpc: { vpc: 'true' },
  queueKey: { queueKey: 'cmk' },
  auditTrail: { auditTrail: 'true' },
  all: { vpc: 'true', queueKey: 'cmk', auditTrail: 'true' },
} as const;

export type RegulatedVariant = keyof typeof REGULATED_VARIANTS;

export function packageRegulated(variant: RegulatedVariant): Packaged {
  return packageStack({ params: { ...REGULATED_VARIANTS[variant] } });
}

export interface RegulatedOptions {
  vpc: boolean;
  queueKey: 'sqs' | 'cmk';
  auditTrail: boolean;
  tracing: boolean;
  auditLogRetentionDays: number;
}

interface RegulatedDeploymentModule {
  regulatedOptions(settings?: Record<string, unknown>): RegulatedOptions;
  applyRegulatedOptions(template: Template, options: RegulatedOptions, names: { stack: string }): Template;
  EVENT_SOURCE_MAPPING_ACTIONS: string[];
}

export const regulatedDeployment = createRequire(import.meta.url)('../../resources/regulated-deployment.cjs') as RegulatedDeploymentModule;

/** A copy of `template` with the options applied as the packaging hook applies them (stage dev). */
export function withOptions(template: Template, settings: Record<string, unknown>): Template {
  const copy = structuredClone(template);
  return regulatedDeployment.applyRegulatedOptions(copy, regulatedDeployment.regulatedOptions(settings), { stack: 'order-pipeline-dev' });
}

/** A template as JSON with sorted keys, the zips' S3 keys (a packaging timestamp) left out. */
export function canonicalTemplate(template: Template): string {
  const sorted = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(sorted);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, key === 'S3Key' ? '<zip>' : sorted(value[key])]),
    );
  };
  return JSON.stringify(sorted(template));
}
