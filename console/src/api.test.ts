import { describe, expect, it } from "vitest";

import { ApiClient, type Tokens, type TokenStore } from "./api";
import { ApiError } from "./problem";

class MemoryStore implements TokenStore {
  constructor(public tokens: Tokens | null = null) {}
  load(): Tokens | null {
    return this.tokens;
  }
  save(tokens: Tokens | null): void {
    this.tokens = tokens;
  }
}

interface Seen {
  method: string;
  path: string;
  auth: string | null;
  headers: Headers;
  body: unknown;
}

/** A gateway in a function: answers by path, records every call. */
function gateway(answer: (call: Seen) => Response) {
  const seen: Seen[] = [];
  const fetcher: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    const call = {
      method: init?.method ?? "GET",
      path: String(input),
      auth: headers.get("authorization"),
      headers,
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    };
    seen.push(call);
    return answer(call);
  };
  return { seen, fetcher };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const PAGE = { items: [], next_cursor: null };

describe("ApiClient", () => {
  it("refreshes an expired access token once and retries the call with the new one", async () => {
    const store = new MemoryStore({ access: "old", refresh: "r1" });
    const notes: string[] = [];
    const { seen, fetcher } = gateway((call) => {
      if (call.path === "/api/v1/auth/refresh") return json(200, { access_token: "new", refresh_token: "r2", expires_in: 300 });
      return call.auth === "Bearer new" ? json(200, PAGE) : json(401, { detail: "Token expired." });
    });
    const api = new ApiClient(store, (_kind, text) => notes.push(text), fetcher);

    await expect(api.listOrders(5, null)).resolves.toEqual(PAGE);

    expect(seen.map((call) => call.path)).toEqual(["/api/v1/orders?limit=5", "/api/v1/auth/refresh", "/api/v1/orders?limit=5"]);
    expect(seen[1]?.body).toEqual({ refresh_token: "r1" });
    expect(store.tokens).toEqual({ access: "new", refresh: "r2" });
    expect(notes.join()).toContain("refreshed");
  });

  it("refreshes only once: a 401 with the fresh token is a real refusal", async () => {
    const store = new MemoryStore({ access: "old", refresh: "r1" });
    const { seen, fetcher } = gateway((call) =>
      call.path === "/api/v1/auth/refresh"
        ? json(200, { access_token: "new", refresh_token: "r2", expires_in: 300 })
        : json(401, { detail: "Not allowed." }),
    );
    const api = new ApiClient(store, () => {}, fetcher);

    const error = await api.me().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).kind).toBe("unauthorized");
    expect(seen.filter((call) => call.path === "/api/v1/auth/refresh")).toHaveLength(1);
  });

  it("shares one refresh between calls that expire together", async () => {
    const store = new MemoryStore({ access: "old", refresh: "r1" });
    const { seen, fetcher } = gateway((call) => {
      if (call.path === "/api/v1/auth/refresh") return json(200, { access_token: "new", refresh_token: "r2", expires_in: 300 });
      return call.auth === "Bearer new" ? json(200, PAGE) : json(401, {});
    });
    const api = new ApiClient(store, () => {}, fetcher);

    await Promise.all([api.listOrders(5, null), api.listOrders(5, "c2"), api.platformStatus().catch(() => null)]);

    expect(seen.filter((call) => call.path === "/api/v1/auth/refresh")).toHaveLength(1);
  });

  it("signs out when the refresh token is refused too", async () => {
    const store = new MemoryStore({ access: "old", refresh: "gone" });
    const notes: string[] = [];
    const { fetcher } = gateway(() => json(401, { detail: "Refresh token revoked." }));
    const api = new ApiClient(store, (_kind, text) => notes.push(text), fetcher);

    await expect(api.me()).rejects.toMatchObject({ kind: "unauthorized" });
    expect(store.tokens).toBeNull();
    expect(notes.join()).toContain("sign in again");
  });

  it("sends the Idempotency-Key and reports a replay", async () => {
    const order = { id: "o1", status: "pending" };
    const { seen, fetcher } = gateway(() =>
      json(201, order, seen.length > 1 ? { "idempotent-replayed": "true" } : {}),
    );
    const api = new ApiClient(new MemoryStore({ access: "a", refresh: "r" }), () => {}, fetcher);
    const body = { items: [{ sku: "BOOK-1", quantity: 1, unit_price_minor: 100 }], currency: "EUR" };

    const first = await api.placeOrder(body, "key-1");
    const again = await api.placeOrder(body, "key-1");

    expect(first.replayed).toBe(false);
    expect(again.replayed).toBe(true);
    expect(seen.map((call) => call.headers.get("idempotency-key"))).toEqual(["key-1", "key-1"]);
    expect(seen[0]?.auth).toBe("Bearer a");
  });

  it("keeps a login's tokens and turns a 429 into a rate-limited error with Retry-After", async () => {
    const store = new MemoryStore();
    let calls = 0;
    const { seen, fetcher } = gateway(() =>
      ++calls === 1
        ? json(200, { access_token: "a", refresh_token: "r", expires_in: 300 })
        : json(429, { detail: "Rate limit exceeded." }, { "retry-after": "37" }),
    );
    const api = new ApiClient(store, () => {}, fetcher);

    await api.logIn("ada@example.com", "pw");
    const error = await api.logIn("ada@example.com", "pw").catch((e: unknown) => e);

    expect(store.tokens).toEqual({ access: "a", refresh: "r" });
    expect(seen[0]?.auth).toBeNull();
    expect(error).toMatchObject({ kind: "rate_limited", retryAfterSeconds: 37 });
  });

  it("says the gateway did not answer when the network fails", async () => {
    const api = new ApiClient(new MemoryStore(), () => {}, () => Promise.reject(new TypeError("Failed to fetch")));
    await expect(api.logIn("a@b.c", "x")).rejects.toMatchObject({ kind: "network" });
  });
});
