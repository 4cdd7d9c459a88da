import { packageStack } from '../local/package-stack.js';

// Package the stack for stage `local` once, before any test file starts a local pipeline: the
// files then reuse that output instead of racing to build it.
export default async function setup(): Promise<void> {
  await packageStack({ stage: 'local' });
}
