// Server-sent events over fetch: EventSource cannot send an Authorization header, so the
// console reads the response body itself and parses the event stream as the HTML
// standard's "event stream interpretation" says.

export class SSEParser {
  constructor() {
    this.started = false;
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.id = null;
  }

  // Feed decoded text; returns the events it completed: {type, data, id}.
  feed(text) {
    if (!this.started && text) {
      this.started = true;
      if (text.startsWith("\uFEFF")) text = text.slice(1); // a byte order mark, once, at the start
    }
    this.buffer += text;
    const events = [];
    let start = 0;
    for (;;) {
      const match = /\r\n|\r|\n/g;
      match.lastIndex = start;
      const found = match.exec(this.buffer);
      if (!found) break;
      // A lone "\r" at the end may be the first half of "\r\n": wait for the next chunk.
      if (found[0] === "\r" && found.index === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, found.index), events);
      start = found.index + found[0].length;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  line(line, events) {
    if (line === "") {
      if (this.data.length) {
        events.push({ type: this.type || "message", data: this.data.join("\n"), id: this.id });
      }
      this.data = [];
      this.type = "";
      return;
    }
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

// Read a fetch Response's body as SSE, calling onEvent for each event as it arrives.
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const event of parser.feed(decoder.decode(value, { stream: true }))) onEvent(event);
  }
  // An event not ended by a blank line when the stream closes is dropped, as the spec says.
  for (const event of parser.feed(decoder.decode())) onEvent(event);
}
