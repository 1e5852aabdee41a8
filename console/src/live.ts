// The caller's live events: the WebSocket first, the SSE stream as the fallback; a dropped
// connection reconnects with backoff and says so, and every event carries the time it
// took from the platform (occurred_at) to this page.

import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff";
import { SseParser } from "./sse";
import type { LiveEvent } from "./types";

export type Transport = "websocket" | "sse";

export type LiveState =
  | { status: "connecting"; transport: Transport; attempt: number }
  | { status: "open"; transport: Transport; reconnected: boolean }
  | { status: "reconnecting"; transport: Transport; attempt: number; delayMs: number; reason: string }
  | { status: "closed" };

export interface Arrival {
  event: LiveEvent;
  /** Milliseconds from occurred_at to receipt (clock skew between hosts shows here too). */
  latencyMs: number;
  transport: Transport;
}

export interface LiveOptions {
  /** The current access token (null when signed out). */
  token(): string | null;
  /** Refresh the token pair after the gateway refused the token; false if it cannot be. */
  refresh(): Promise<boolean>;
  onEvent(arrival: Arrival): void;
  onState(state: LiveState): void;
  wsUrl: string;
  sseUrl: string;
  WebSocketImpl?: typeof WebSocket | undefined;
  fetchImpl?: typeof fetch;
  backoff?: BackoffPolicy;
  random?: () => number;
  now?: () => number;
  /** WebSocket attempts that never opened before switching to SSE. */
  websocketAttempts?: number;
}

const CLOSE_POLICY_VIOLATION = 1008;
const SEEN_LIMIT = 1000;

export class LiveEvents {
  private transport: Transport;
  private attempt = 0;
  private failedWithoutOpen = 0;
  private everOpened = false;
  private stopped = true;
  private socket: WebSocket | null = null;
  private stream: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly seen: string[] = [];

  constructor(private readonly options: LiveOptions) {
    this.transport = options.WebSocketImpl === undefined && typeof WebSocket === "undefined" ? "sse" : "websocket";
  }

  get currentTransport(): Transport {
    return this.transport;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.socket?.close(1000, "signed out");
    this.socket = null;
    this.stream?.abort();
    this.stream = null;
    this.options.onState({ status: "closed" });
  }

  private connect(): void {
    const token = this.options.token();
    if (token === null) {
      this.stop();
      return;
    }
    this.options.onState({ status: "connecting", transport: this.transport, attempt: this.attempt });
    if (this.transport === "websocket") this.openSocket(token);
    else void this.openStream(token);
  }

  private opened(): void {
    const reconnected = this.everOpened;
    this.everOpened = true;
    this.attempt = 0;
    this.failedWithoutOpen = 0;
    this.options.onState({ status: "open", transport: this.transport, reconnected });
  }

  private receive(event: LiveEvent): void {
    if (this.seen.includes(event.id)) return;
    this.seen.push(event.id);
    if (this.seen.length > SEEN_LIMIT) this.seen.shift();
    const now = (this.options.now ?? Date.now)();
    const latencyMs = Math.max(0, now - Date.parse(event.occurred_at));
    this.options.onEvent({ event, latencyMs, transport: this.transport });
  }

  private dropped(reason: string, { opened, tokenRefused }: { opened: boolean; tokenRefused: boolean }): void {
    if (this.stopped) return;
    if (!opened) this.failedWithoutOpen += 1;
    const limit = this.options.websocketAttempts ?? 3;
    let switched = "";
    if (this.transport === "websocket" && !this.everOpened && this.failedWithoutOpen >= limit) {
      this.transport = "sse";
      this.failedWithoutOpen = 0;
      switched = "; switching to Server-Sent Events";
    }
    this.attempt += 1;
    const delayMs = backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF, this.options.random);
    this.options.onState({
      status: "reconnecting",
      transport: this.transport,
      attempt: this.attempt,
      delayMs,
      reason: reason + switched,
    });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      if (tokenRefused) {
        void this.options.refresh().then((ok) => (ok ? this.connect() : this.stop()));
      } else {
        this.connect();
      }
    }, delayMs);
  }

  private openSocket(token: string): void {
    const Impl = this.options.WebSocketImpl ?? WebSocket;
    const url = `${this.options.wsUrl}?access_token=${encodeURIComponent(token)}`;
    let socket: WebSocket;
    try {
      socket = new Impl(url);
    } catch (error) {
      this.dropped(`the WebSocket could not be opened (${String(error)})`, { opened: false, tokenRefused: false });
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.opened();
    };
    socket.onmessage = (message: MessageEvent) => {
      const parsed = parseMessage(message.data);
      if (parsed) this.receive(parsed);
    };
    socket.onclose = (close: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      const why = close.reason ? `${close.code} ${close.reason}` : String(close.code);
      this.dropped(`the live connection dropped (close ${why})`, {
        opened,
        tokenRefused: close.code === CLOSE_POLICY_VIOLATION,
      });
    };
  }

  private async openStream(token: string): Promise<void> {
    const controller = new AbortController();
    this.stream = controller;
    const fetcher = this.options.fetchImpl ?? ((input, init) => fetch(input, init));
    let opened = false;
    let reason = "the event stream ended";
    let tokenRefused = false;
    try {
      const response = await fetcher(this.options.sseUrl, {
        headers: { Accept: "text/event-stream", Authorization: `Bearer ${token}` },
        signal: controller.signal,
      });
      if (response.status !== 200 || !response.body) {
        tokenRefused = response.status === 401;
        reason = `the event stream was refused (${response.status})`;
      } else {
        opened = true;
        this.opened();
        const parser = new SseParser();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const message of parser.feed(value)) {
            const event = parseEvent(message.data);
            if (event) this.receive(event);
          }
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      reason = `the event stream dropped (${String(error)})`;
    }
    if (this.stream === controller) {
      this.stream = null;
      this.dropped(reason, { opened, tokenRefused });
    }
  }
}

function parseMessage(data: unknown): LiveEvent | null {
  if (typeof data !== "string") return null;
  try {
    const message = JSON.parse(data) as { type?: string; event?: LiveEvent };
    return message.type === "event" && message.event ? message.event : null;
  } catch {
    return null;
  }
}

function parseEvent(data: string): LiveEvent | null {
  try {
    const event = JSON.parse(data) as LiveEvent;
    return typeof event.id === "string" && typeof event.type === "string" ? event : null;
  } catch {
    return null;
  }
}
