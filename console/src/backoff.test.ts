import { describe, expect, it } from "vitest";

import { backoffDelay } from "./backoff";

describe("backoffDelay", () => {
  const policy = { baseMs: 500, maxMs: 8000 };

  it("doubles per attempt up to the cap, jittered between half and all of it", () => {
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, policy, () => 1))).toEqual([
      500, 1000, 2000, 4000, 8000, 8000,
    ]);
    expect(backoffDelay(3, policy, () => 0)).toBe(1000);
  });

  it("never waits less than half the ceiling", () => {
    for (let i = 0; i < 100; i += 1) {
      const delay = backoffDelay(2, policy);
      expect(delay).toBeGreaterThanOrEqual(500);
      expect(delay).toBeLessThanOrEqual(1000);
    }
  });
});
