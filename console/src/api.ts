// The console's one way to call the gateway: JSON in and out, the bearer token attached,
// and an expired access token refreshed once (one refresh shared by concurrent calls).

import { ApiError, failureOf } from "./problem";
import type { Order, OrderCreate, OrderPage, PlatformStatus, TokenPair, UserRead } from "./types";

export interface Tokens {
  access: string;
  refresh: string;
}

export interface TokenStore {
  load(): Tokens | null;
  save(tokens: Tokens | null): void;
}

export type Notify = (kind: "info" | "warn" | "error", text: string) => void;

export interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  auth?: boolean;
}

export class ApiClient {
  private refreshing: Promise<boolean> | null = null;

  constructor(
    private readonly store: TokenStore,
    private readonly notify: Notify = () => {},
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
    private readonly baseUrl: string = "",
  ) {}

  get signedIn(): boolean {
    return this.store.load() !== null;
  }

  accessToken(): string | null {
    return this.store.load()?.access ?? null;
  }

  signOut(): void {
    const tokens = this.store.load();
    this.store.save(null);
    if (tokens) {
      // Revoke the refresh token; the answer does not matter to a person leaving.
      void this.send("POST", "/api/v1/auth/logout", { body: { refresh_token: tokens.refresh }, auth: false }).catch(
        () => undefined,
      );
    }
  }

  async signUp(email: string, password: string, displayName: string): Promise<UserRead> {
    const body = { email, password, display_name: displayName || null };
    return (await this.call<UserRead>("POST", "/api/v1/auth/signup", { body, auth: false })).body;
  }

  async logIn(email: string, password: string): Promise<TokenPair> {
    const answer = await this.call<TokenPair>("POST", "/api/v1/auth/login", { body: { email, password }, auth: false });
    this.store.save({ access: answer.body.access_token, refresh: answer.body.refresh_token });
    return answer.body;
  }

  async me(): Promise<UserRead> {
    return (await this.call<UserRead>("GET", "/api/v1/users/me")).body;
  }

  /** Place an order; `replayed` when the gateway answered with the first answer to `key`. */
  async placeOrder(order: OrderCreate, key: string): Promise<{ order: Order; replayed: boolean }> {
    const answer = await this.call<Order>("POST", "/api/v1/orders", { body: order, headers: { "Idempotency-Key": key } });
    return { order: answer.body, replayed: answer.headers.get("idempotent-replayed") === "true" };
  }

  async listOrders(limit: number, cursor: string | null): Promise<OrderPage> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return (await this.call<OrderPage>("GET", `/api/v1/orders?${query}`)).body;
  }

  async platformStatus(): Promise<PlatformStatus> {
    return (await this.call<PlatformStatus>("GET", "/api/v1/platform/status")).body;
  }

  /** Refresh the token pair; false (and signed out) when the refresh token is refused. */
  refreshTokens(): Promise<boolean> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const tokens = this.store.load();
    if (!tokens) return false;
    try {
      const answer = await this.send("POST", "/api/v1/auth/refresh", { body: { refresh_token: tokens.refresh }, auth: false });
      if (answer.status !== 200) {
        this.store.save(null);
        return false;
      }
      const pair = (await answer.json()) as TokenPair;
      this.store.save({ access: pair.access_token, refresh: pair.refresh_token });
      return true;
    } catch {
      return false; // no answer: keep the tokens, the next call tries again
    }
  }

  async call<T>(method: string, path: string, options: CallOptions = {}): Promise<Answer<T>> {
    const auth = options.auth ?? true;
    let response = await this.send(method, path, options);
    if (response.status === 401 && auth && this.store.load()) {
      // Once: a second 401 after a fresh token is a real refusal, not an expiry.
      if (await this.refreshTokens()) {
        this.notify("info", "Your access token had expired: it was refreshed and the call retried.");
        response = await this.send(method, path, options);
      } else {
        this.notify("warn", "Your session has ended: sign in again.");
      }
    }
    const body: unknown = await readBody(response);
    if (response.status >= 400) throw failureOf(response.status, response.headers, body);
    return { status: response.status, headers: response.headers, body: body as T };
  }

  private async send(method: string, path: string, options: CallOptions): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const token = this.store.load()?.access;
    if ((options.auth ?? true) && token) headers.Authorization = `Bearer ${token}`;
    const init: RequestInit = { method, headers };
    if (options.body !== undefined) init.body = JSON.stringify(options.body);
    try {
      return await this.fetcher(this.baseUrl + path, init);
    } catch (error) {
      throw new ApiError("network", null, `The gateway did not answer (${String(error)}).`);
    }
  }
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Tokens kept for this browser tab only (sessionStorage): a reload keeps you signed in. */
export class SessionTokenStore implements TokenStore {
  constructor(
    private readonly storage: Storage,
    private readonly key = "chassis-console.tokens",
  ) {}

  load(): Tokens | null {
    const raw = this.storage.getItem(this.key);
    if (!raw) return null;
    try {
      const parsed = JSON.parse(raw) as Partial<Tokens>;
      return typeof parsed.access === "string" && typeof parsed.refresh === "string"
        ? { access: parsed.access, refresh: parsed.refresh }
        : null;
    } catch {
      return null;
    }
  }

  save(tokens: Tokens | null): void {
    if (tokens) this.storage.setItem(this.key, JSON.stringify(tokens));
    else this.storage.removeItem(this.key);
  }
}
