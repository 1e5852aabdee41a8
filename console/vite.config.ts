import { defineConfig } from "vitest/config";

// Served by the gateway at /console; `npm run dev` proxies the API and the WebSocket to
// the gateway `make dev` runs (CONSOLE_GATEWAY to point elsewhere).
const gateway = process.env.CONSOLE_GATEWAY ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline polyfill script: the gateway's CSP allows scripts from its own files only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    proxy: {
      "/api": gateway,
      "/ws": { target: gateway, ws: true },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
