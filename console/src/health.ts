// The platform's health, polled while signed in: each service's readiness checks, every
// circuit breaker, and how far the outbox is behind.

import type { ApiClient } from "./api";
import { byId, chip, h } from "./dom";
import { describe } from "./notices";
import type { CheckReport, PlatformStatus, ServiceStatus } from "./types";

const POLL_MS = 5000;

export class HealthView {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly api: ApiClient) {}

  start(): void {
    if (this.timer === null) void this.poll();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async poll(): Promise<void> {
    const error = byId("health-error");
    try {
      this.render(await this.api.platformStatus());
      error.replaceChildren();
    } catch (failure) {
      error.className = "result error";
      error.replaceChildren(describe("The platform status is unavailable", failure));
    }
    this.timer = setTimeout(() => void this.poll(), POLL_MS);
  }

  render(status: PlatformStatus): void {
    byId("health-when").textContent = `as of ${new Date().toLocaleTimeString()}`;
    byId("services").replaceChildren(...status.services.map(service));
    byId("breakers").replaceChildren(
      ...status.breakers.map((breaker) =>
        h(
          "tr",
          { "data-breaker": `${breaker.service}/${breaker.upstream}` },
          h("td", {}, breaker.service),
          h("td", {}, breaker.upstream),
          h("td", {}, chip(breaker.state)),
          h("td", {}, String(breaker.failures)),
          h("td", {}, breaker.state === "closed" ? "" : `${breaker.retry_in_seconds.toFixed(1)} s`),
        ),
      ),
    );
    byId("outbox").replaceChildren(
      ...(status.outbox.length === 0
        ? [h("li", {}, "no outbox reported")]
        : status.outbox.map((outbox) =>
            h(
              "li",
              { "data-outbox": outbox.service },
              `${outbox.service}: ${outbox.backlog} unsent, oldest ${outbox.oldest_unsent_seconds.toFixed(1)} s`,
            ),
          )),
    );
  }
}

function service(status: ServiceStatus): HTMLElement {
  const checks = Object.entries(status.checks).map(([name, check]) => h("li", {}, checkLine(name, check)));
  return h(
    "div",
    { class: "service", "data-service": status.name },
    h("h4", {}, `${status.name} `, chip(status.state), h("span", { class: "hint" }, ` ${status.latency_ms} ms`)),
    status.error ? h("p", {}, `no answer: ${status.error}`) : null,
    h("ul", {}, ...checks),
  );
}

function checkLine(name: string, check: CheckReport): string {
  const latency = check.latency_ms === undefined ? "" : ` ${check.latency_ms} ms`;
  const optional = check.critical === false ? " (non-critical)" : "";
  const error = check.error ? `: ${check.error}` : "";
  return `${name}: ${check.status}${error}${latency}${optional}`;
}
