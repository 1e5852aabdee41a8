import { describe, expect, it } from "vitest";

import { SseParser } from "./sse";

describe("SseParser", () => {
  it("parses events split across chunks, skipping comments", () => {
    const parser = new SseParser();
    expect(parser.feed(": ping\n\nid: e1\nevent: order.created\nda")).toEqual([]);
    expect(parser.feed('ta: {"a":\ndata: 1}\n\n')).toEqual([{ id: "e1", event: "order.created", data: '{"a":\n1}' }]);
  });

  it("handles CRLF line ends, even split between chunks", () => {
    const parser = new SseParser();
    expect(parser.feed("data: x\r")).toEqual([]);
    expect(parser.feed("\n\r\n")).toEqual([{ id: null, event: "message", data: "x" }]);
  });
});
