import { defineConfig } from 'vitest/config';

// Browser tests: real Chromium against each runtime, one file at a time (two cores).
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
});
