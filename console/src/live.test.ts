import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { type Arrival, LiveEvents, type LiveOptions, type LiveState } from "./live";

/** A WebSocket the test drives: open it, send it messages, close it. */
class FakeSocket {
  static made: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((message: { data: unknown }) => void) | null = null;
  onclose: ((close: { code: number; reason: string }) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  open(): void {
    this.onopen?.();
  }
  send(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop(code = 1006, reason = ""): void {
    this.onclose?.({ code, reason });
  }
  close(): void {
    this.closed = true;
  }
}

const event = (id: string, status: string, occurredAt: string) => ({
  type: "event",
  event: {
    id,
    type: `order.${status}`,
    version: 1,
    occurred_at: occurredAt,
    payload: { order: { id: "o1", status } },
  },
});

function live(overrides: Partial<LiveOptions> = {}) {
  const states: LiveState[] = [];
  const arrivals: Arrival[] = [];
  let token: string | null = "tok";
  const refresh = vi.fn(async () => {
    token = "fresh";
    return true;
  });
  const events = new LiveEvents({
    token: () => token,
    refresh,
    onEvent: (arrival) => arrivals.push(arrival),
    onState: (state) => states.push(state),
    wsUrl: "ws://gw/ws/events",
    sseUrl: "/api/v1/events",
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
    backoff: { baseMs: 100, maxMs: 1000 },
    random: () => 1,
    now: () => Date.parse("2026-12-06T04:00:00.250Z"),
    ...overrides,
  });
  return { events, states, arrivals, refresh };
}

beforeEach(() => {
  FakeSocket.made = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LiveEvents", () => {
  it("passes the token in the URL and gives each event with the time it took to arrive", () => {
    const { events, arrivals, states } = live();
    events.start();
    const socket = FakeSocket.made[0]!;
    expect(socket.url).toBe("ws://gw/ws/events?access_token=tok");
    socket.open();
    socket.send({ type: "heartbeat" });
    socket.send(event("e1", "created", "2026-12-06T04:00:00.000Z"));
    socket.send(event("e1", "created", "2026-12-06T04:00:00.000Z"));

    expect(arrivals).toHaveLength(1);
    expect(arrivals[0]).toMatchObject({ latencyMs: 250, transport: "websocket" });
    expect(states.at(-1)).toEqual({ status: "open", transport: "websocket", reconnected: false });
  });

  it("reconnects a dropped socket with growing delays, says so, and resets once open", () => {
    const { events, states } = live();
    events.start();
    FakeSocket.made[0]!.open();
    FakeSocket.made[0]!.drop(1006);

    expect(states.at(-1)).toMatchObject({ status: "reconnecting", attempt: 1, delayMs: 100 });
    expect((states.at(-1) as { reason: string }).reason).toContain("close 1006");
    vi.advanceTimersByTime(99);
    expect(FakeSocket.made).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.made).toHaveLength(2);
    FakeSocket.made[1]!.drop(1006);
    expect(states.at(-1)).toMatchObject({ status: "reconnecting", attempt: 2, delayMs: 200 });
    vi.advanceTimersByTime(200);
    FakeSocket.made[2]!.open();
    expect(states.at(-1)).toEqual({ status: "open", transport: "websocket", reconnected: true });
    FakeSocket.made[2]!.drop(1012, "server restarting");
    expect(states.at(-1)).toMatchObject({ attempt: 1, reason: "the live connection dropped (close 1012 server restarting)" });
  });

  it("refreshes the token when the gateway refused it (1008) before reconnecting", async () => {
    const { events, refresh } = live();
    events.start();
    FakeSocket.made[0]!.drop(1008, "Token expired.");
    await vi.advanceTimersByTimeAsync(100);

    expect(refresh).toHaveBeenCalledOnce();
    expect(FakeSocket.made[1]!.url).toBe("ws://gw/ws/events?access_token=fresh");
  });

  it("falls back to Server-Sent Events when the WebSocket never opens", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const created = JSON.stringify(event("e7", "confirmed", "2026-12-06T04:00:00.200Z").event);
        controller.enqueue(new TextEncoder().encode(`: ping\n\nid: e7\nevent: order.confirmed\ndata: ${created}\n\n`));
      },
    });
    const fetchImpl = vi.fn(async () => new Response(body, { status: 200 }));
    const { events, arrivals, states } = live({ fetchImpl, websocketAttempts: 2 });
    events.start();
    FakeSocket.made[0]!.drop(1006);
    await vi.advanceTimersByTimeAsync(100);
    FakeSocket.made[1]!.drop(1006);
    expect((states.at(-1) as { reason: string }).reason).toContain("switching to Server-Sent Events");
    await vi.advanceTimersByTimeAsync(200);

    expect(fetchImpl).toHaveBeenCalledWith(
      "/api/v1/events",
      expect.objectContaining({ headers: { Accept: "text/event-stream", Authorization: "Bearer tok" } }),
    );
    expect(arrivals).toEqual([expect.objectContaining({ latencyMs: 50, transport: "sse" })]);
    expect(states).toContainEqual({ status: "open", transport: "sse", reconnected: false });
    events.stop();
  });

  it("stops for good on stop(): no reconnect after", () => {
    const { events, states } = live();
    events.start();
    FakeSocket.made[0]!.open();
    events.stop();
    FakeSocket.made[0]!.drop(1000);
    vi.advanceTimersByTime(10_000);

    expect(FakeSocket.made).toHaveLength(1);
    expect(FakeSocket.made[0]!.closed).toBe(true);
    expect(states.at(-1)).toEqual({ status: "closed" });
  });
});
