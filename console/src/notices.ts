// The notices strip: what just happened that a person should know (a refreshed token, a
// rate limit, a dropped connection, an open breaker), newest first, the last few kept.

import { h } from "./dom";
import { ApiError } from "./problem";

const KEPT = 6;

export class Notices {
  constructor(private readonly list: HTMLElement) {}

  show(kind: "info" | "warn" | "error", text: string): void {
    this.list.prepend(h("li", { class: kind, "data-kind": kind }, text));
    while (this.list.children.length > KEPT) this.list.lastElementChild?.remove();
  }

  /** An error as a notice, with its request id so a log line can be found. */
  failure(what: string, error: unknown): string {
    const text = describe(what, error);
    this.show(error instanceof ApiError && error.kind === "rate_limited" ? "warn" : "error", text);
    return text;
  }
}

export function describe(what: string, error: unknown): string {
  if (error instanceof ApiError) {
    const id = error.requestId ? ` (request ${error.requestId})` : "";
    return `${what}: ${error.message}${id}`;
  }
  return `${what}: ${String(error)}`;
}
