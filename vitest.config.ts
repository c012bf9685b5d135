import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Every test file starts its own redis-server and HTTP servers; two cores run two files at once.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
