import { describe, expect, it } from "vitest";

import { failureOf, parseRetryAfter } from "./problem";

const problem = (status: number, detail: string) => ({
  type: "about:blank",
  title: "t",
  status,
  detail,
  request_id: "req-1",
});

describe("parseRetryAfter", () => {
  it("reads delta-seconds and HTTP dates, and nothing else", () => {
    expect(parseRetryAfter("17")).toBe(17);
    expect(parseRetryAfter("Sun, 06 Dec 2026 04:00:30 GMT", Date.parse("2026-12-06T04:00:00Z"))).toBe(30);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter("soon")).toBeNull();
  });
});

describe("failureOf", () => {
  it("shows a 429 with its Retry-After", () => {
    const error = failureOf(429, new Headers({ "retry-after": "42" }), problem(429, "Rate limit exceeded."));
    expect(error.kind).toBe("rate_limited");
    expect(error.retryAfterSeconds).toBe(42);
    expect(error.message).toContain("Retry after 42 s");
    expect(error.requestId).toBe("req-1");
  });

  it("tells an open breaker from any other 503", () => {
    const open = failureOf(
      503,
      new Headers({ "retry-after": "29" }),
      problem(503, "Upstream 'orders' is unavailable (circuit open); retry later."),
    );
    expect(open.kind).toBe("breaker_open");
    expect(open.message).toContain("orders circuit breaker is open");
    expect(open.message).toContain("Retry after 29 s");

    const down = failureOf(503, new Headers(), problem(503, "Upstream 'orders' is unavailable; retry later."));
    expect(down.kind).toBe("unavailable");
  });

  it("keeps validation errors and non-problem bodies readable", () => {
    expect(failureOf(422, new Headers(), problem(422, "items: too short")).kind).toBe("invalid");
    const bare = failureOf(500, new Headers({ "x-request-id": "r9" }), "oops");
    expect(bare.kind).toBe("other");
    expect(bare.requestId).toBe("r9");
  });
});
