import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Integration and end-to-end tests start real emulators and wait for real queues.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // CI has two cores; each end-to-end file runs a whole local pipeline.
    maxWorkers: 2,
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', SLS_TELEMETRY_DISABLED: '1' },
  },
});
