import { defineConfig } from "vitest/config";

// The browser test: one platform (`chassis-dev --port-base`) per run, Debian's chromium.
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 240_000,
    fileParallelism: false,
  },
});
