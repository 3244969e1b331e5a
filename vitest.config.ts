import { defineConfig } from 'vitest/config';

// GPU tests run on lavapipe in CI (2 cores): one worker per core, generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Every kernel registration (src/kernels/index.ts) visible to the variant-iterating tests.
    setupFiles: ['test/setup-kernels.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
