// The console in a real browser (Debian's /usr/bin/chromium through playwright-core) against
// the real platform, started here by `chassis-dev --port-base` on a port of our own.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..", "..");
const PORT_BASE = Number(process.env.CONSOLE_E2E_PORT_BASE ?? "18840");
const GATEWAY = `http://127.0.0.1:${PORT_BASE}`;
const REDIS_URL = process.env.CONSOLE_E2E_REDIS_URL ?? "redis://127.0.0.1:6379/12";
const SCREENSHOT = join(ROOT, "reports", "console.png");

let platform: ChildProcess;
let browser: BrowserContext;
let page: Page;
let output = "";
const scratch = mkdtempSync(join(tmpdir(), "console-e2e-"));

async function waitForBanner(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!output.includes("the platform is up")) {
    if (platform.exitCode !== null) throw new Error(`chassis-dev exited ${platform.exitCode}:\n${output.slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`the platform did not come up:\n${output.slice(-4000)}`);
    await new Promise((done) => setTimeout(done, 250));
  }
}

beforeAll(async () => {
  platform = spawn("uv", ["run", "--frozen", "chassis-dev", "--port-base", String(PORT_BASE), "--data-dir", join(scratch, "data")], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  platform.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  platform.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await waitForBanner(180_000);
  expect(output).toContain(`console  ${GATEWAY}/console/`);
  // A fresh profile directory per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(join(scratch, "profile"), {
    viewport: { width: 1280, height: 1400 },
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
  page = await browser.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") output += `\n[browser] ${message.text()}`;
  });
});

afterAll(async () => {
  await browser?.close();
  if (platform && platform.exitCode === null) {
    platform.kill("SIGTERM");
    await new Promise((done) => platform.once("exit", done));
  }
  rmSync(scratch, { recursive: true, force: true });
});

// Every service's /docs and /redoc render their operations with the browser allowed to
// reach loopback only: any other request is aborted and counted (the assets are served by
// the service itself, chassis.docs).
it("renders each service's /docs and /redoc with no network beyond loopback", async () => {
  const services = { gateway: PORT_BASE, users: PORT_BASE + 1, orders: PORT_BASE + 2 };
  const docsPage = await browser.newPage();
  const outside: string[] = [];
  await docsPage.route("**/*", async (route) => {
    const { hostname } = new URL(route.request().url());
    if (hostname === "127.0.0.1" || hostname === "localhost") await route.continue();
    else {
      outside.push(route.request().url());
      await route.abort("blockedbyclient");
    }
  });
  try {
    for (const [name, port] of Object.entries(services)) {
      await docsPage.goto(`http://127.0.0.1:${port}/docs`);
      // Swagger UI draws one .opblock per operation once it has fetched /openapi.json.
      await docsPage.locator(".opblock").first().waitFor({ timeout: 30_000 });
      const operations = await docsPage.locator(".opblock").count();
      expect(operations, `${name} /docs operations`).toBeGreaterThan(2);
      if (name === "gateway") await docsPage.screenshot({ path: join(ROOT, "reports", "docs.png") });

      await docsPage.goto(`http://127.0.0.1:${port}/redoc`);
      // ReDoc gives each operation a section with a data-section-id "operation/...".
      const section = docsPage.locator('[data-section-id^="operation/"]');
      await section.first().waitFor({ timeout: 30_000 });
      expect(await section.count(), `${name} /redoc operations`).toBeGreaterThan(2);
    }
  } finally {
    await docsPage.close();
  }
  expect(outside, "requests beyond loopback").toEqual([]);
});

it("signs up, places an order, sees it fulfilled live and the replay, then a 429", async () => {
  const cspViolations: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  await page.goto(`${GATEWAY}/console/`);
  const email = `e2e-${Date.now()}@example.com`;
  const password = "correct horse battery staple";
  const signup = page.getByTestId("signup-form");
  await signup.locator("input[name=email]").fill(email);
  await signup.locator("input[name=password]").fill(password);
  await signup.locator("input[name=display_name]").fill("E2E");
  await signup.locator("button[type=submit]").click();
  await expect.poll(() => page.getByTestId("who").textContent()).toContain(email);
  await expect.poll(() => page.getByTestId("live-state").getAttribute("data-status")).toBe("open");

  await page.getByTestId("place-order").click();
  const result = page.getByTestId("order-result");
  await expect.poll(() => result.getAttribute("data-replayed")).toBe("false");
  const orderId = await result.getAttribute("data-order-id");
  expect(orderId).toBeTruthy();
  const timeline = page.locator(`#timelines li[data-order-id="${orderId}"]`);
  await expect.poll(() => timeline.locator('[data-state="fulfilled"]').count(), { timeout: 30_000 }).toBe(1);
  expect(await timeline.textContent()).toMatch(/fulfilled · \d+ ms/);

  await page.getByTestId("retry-order").click();
  await expect.poll(() => result.getAttribute("data-replayed")).toBe("true");
  expect(await result.getAttribute("data-order-id")).toBe(orderId);
  expect(await result.textContent()).toContain("Replayed");
  await expect.poll(() => page.locator('[data-service="orders"] [data-state]').first().getAttribute("data-state")).toBe("ready");

  // The login limit (10 a minute per IP): log out, then wrong passwords until a 429.
  await page.locator("#logout").click();
  const login = page.getByTestId("login-form");
  await login.locator("input[name=email]").fill(email);
  await login.locator("input[name=password]").fill("not the password at all");
  for (let attempt = 0; attempt < 12; attempt += 1) {
    if (await page.getByTestId("login-wait").isVisible()) break;
    if (await login.locator("button[type=submit]").isDisabled()) break;
    await login.locator("button[type=submit]").click();
    await page.waitForTimeout(150);
  }
  await expect.poll(() => page.getByTestId("login-wait").textContent()).toMatch(/Rate limited \(429\): try again in \d+ s/);
  expect(await page.getByTestId("notices").textContent()).toContain("Retry after");

  mkdirSync(join(ROOT, "reports"), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  expect(cspViolations).toEqual([]);
});
