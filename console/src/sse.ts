// A Server-Sent Events parser for a fetched stream (EventSource cannot send the
// Authorization header the gateway's /api/v1/events needs).

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];

  /** Feed a decoded chunk; the messages it completed (comments such as `: ping` are dropped). */
  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const done: SseMessage[] = [];
    let newline: RegExpExecArray | null;
    const lineEnd = /\r\n|\r|\n/;
    while ((newline = lineEnd.exec(this.buffer)) !== null) {
      // A lone "\r" at the end may be the first half of "\r\n": wait for more.
      if (newline[0] === "\r" && newline.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, newline.index);
      this.buffer = this.buffer.slice(newline.index + newline[0].length);
      const message = this.line(line);
      if (message) done.push(message);
    }
    return done;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const message = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.event = "";
      this.data = [];
      return message;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
    return null;
  }
}
