import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 10_000,
    hookTimeout: 30_000,
    // Contract files start real servers: keep them from competing for the two cores.
    maxWorkers: 2,
  },
});
