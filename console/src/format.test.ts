import { describe, expect, it } from "vitest";

import { money, uuid4 } from "./format";

describe("format", () => {
  it("shows minor units as an amount", () => {
    expect(money(2500, "EUR")).toBe("25.00 EUR");
  });

  it("makes RFC 4122 version 4 UUIDs without a secure context", () => {
    const id = uuid4();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuid4()).not.toBe(id);
  });
});
