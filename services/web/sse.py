"""Server-sent events, both ways: the one codec every provider, door and run stream uses.

Framing (`event`, `frame`, `comment`) writes what the OpenAI and Anthropic streaming APIs
send: `id:`, `event:` and `data:` lines, LF line ends, a blank line after each event.

`Parser` reads a stream incrementally as the WHATWG HTML standard says an event stream is
interpreted ("Server-sent events", *Interpreting an event stream*):

- a line ends with CRLF, LF or CR, and a read may end anywhere, between a CR and its LF
  included;
- a line that starts with `:` is a comment; a blank line dispatches the event;
- `field: value` loses one leading space from the value, not more; a line without a colon
  is a field with an empty value; unknown fields are ignored;
- `data` lines join with LF; `event` names the type (`message` when none is given); `id`
  sets the last event id, which persists to later events (an id with a NUL is ignored);
  `retry` takes only ASCII digits;
- an event with no data is not dispatched; a leading byte order mark is skipped; bytes
  that are not UTF-8 decode to U+FFFD; an event cut off by the end of the stream is
  dropped (`pending` says whether one was).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from services.web.params import event_number

DONE = b"data: [DONE]\n\n"
HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}
_BOM = b"\xef\xbb\xbf"
_LINE_ENDS = ("\r\n", "\r", "\n")


def event(data: Any, *, name: str | None = None, id: int | str | None = None) -> bytes:
    """One event carrying `data` as JSON (one line: JSON text has no raw line breaks)."""
    return _head(name, id) + b"data: " + orjson.dumps(data) + b"\n\n"


def frame(data: str, *, name: str | None = None, id: int | str | None = None) -> bytes:
    """One event carrying the text `data`, a `data:` line for each of its lines."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body = b"".join(b"data: " + line.encode() + b"\n" for line in lines)
    return _head(name, id) + body + b"\n"


def comment(text: str = "") -> bytes:
    """A comment: readers ignore it, so it keeps an idle connection open (a heartbeat)."""
    _one_line(text, "comment")
    return b": " + text.encode() + b"\n\n" if text else b":\n\n"


def _head(name: str | None, id: int | str | None) -> bytes:
    head = b""
    if id is not None:
        head += b"id: " + _one_line(str(id), "id").encode() + b"\n"
    if name is not None:
        head += b"event: " + _one_line(name, "event name").encode() + b"\n"
    return head


def _one_line(text: str, what: str) -> str:
    if any(end in text for end in _LINE_ENDS):
        raise ValueError(f"an SSE {what} cannot hold a line break: {text[:40]!r}")
    return text


class Event(NamedTuple):
    """One dispatched event: its data (lines joined with LF), its type and the last
    event id the stream had set when it was dispatched ("" for none). A tuple: a stream
    provider makes one per chunk."""

    data: str
    type: str = "message"
    id: str = ""


class Parser:
    """An event stream, fed as it arrives: `feed(bytes)` returns the events it completed."""

    __slots__ = ("_at_start", "_buffer", "_data", "_pending", "_skip_lf", "_type", "id", "retry")

    def __init__(self) -> None:
        self._buffer = b""  # what a read left unfinished: the start of a line or an event
        self._skip_lf = False  # the last read ended with a CR: an LF first is its pair
        self._at_start = True  # a byte order mark may still come
        self._data: list[bytes] = []
        self._type = ""
        self._pending = False  # a field has been read since the last dispatch
        self.id = ""  # the last event id
        self.retry: int | None = None  # the reconnection time the stream asked for, in ms

    @property
    def pending(self) -> bool:
        """Whether an event (or a line of one) has been read but not dispatched."""
        return self._pending or bool(self._buffer)

    def feed(self, chunk: bytes) -> list[Event]:
        """The events `chunk` completes (with what earlier reads left unfinished)."""
        if self._at_start:  # one byte order mark may open the stream, itself cut anywhere
            chunk, self._buffer = self._buffer + chunk, b""
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._buffer = chunk
                return []
            self._at_start = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._skip_lf or self._pending or b"\r" in chunk:
            return self._lines(chunk)
        # The usual stream (LF line ends, one `data:` line per event), in whole events: a
        # stream provider's hot path. Anything else in an event goes through `_lines`.
        buffer = self._buffer
        blocks = (buffer + chunk if buffer else chunk).split(b"\n\n")
        self._buffer = blocks.pop()  # the start of an event not complete yet, or b""
        if not blocks:
            return []
        rest, self._buffer = self._buffer, b""
        events: list[Event] = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:
                text = block[6:].decode("utf-8", "replace")
                events.append(_new_event(Event, (text, "message", self.id)))
            elif block:
                events += self._lines(block + b"\n\n")
        self._buffer = rest
        return events

    def _lines(self, chunk: bytes) -> list[Event]:
        """`feed`, line by line: any line ends, fields, comments, a cut anywhere."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if self._buffer:
            chunk = self._buffer + chunk
            self._buffer = b""
        events: list[Event] = []
        for line in chunk.splitlines(keepends=True):
            last = line[-1:]
            if last == b"\n":
                line = line[:-2] if line[-2:-1] == b"\r" else line[:-1]
            elif last == b"\r":
                line = line[:-1]
            else:  # no line end yet: wait for the rest
                self._buffer = line
                break
            if not line:
                if self._pending:
                    found = self._dispatch()
                    if found is not None:
                        events.append(found)
                continue
            if line.startswith(b"data: "):  # the usual line, first
                self._data.append(line[6:])
                self._pending = True
                continue
            self._field(line)
        if chunk[-1:] == b"\r" and not self._buffer:
            self._skip_lf = True
        return events

    def _field(self, line: bytes) -> None:
        if line[:1] == b":":
            return  # a comment
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        self._pending = True
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\x00" not in value:
                self.id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)

    def _dispatch(self) -> Event | None:
        data, kind = self._data, self._type
        self._data, self._type, self._pending = [], "", False
        if not data:
            return None
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        return Event(text, kind or "message", self.id)


# Event(...) without NamedTuple's Python-level __new__: half the cost, once per chunk.
_new_event = tuple.__new__


def parse(stream: bytes) -> list[Event]:
    """Every event of a whole stream."""
    return Parser().feed(stream)


def parse_after(last_event_id: str | None, after: str | None) -> int:
    """The event number to resume after, from `Last-Event-ID` (an SSE client sends the last
    `id:` it saw) or `?after=`; 0 for neither, a 400 when malformed."""
    for name, raw in (("Last-Event-ID", last_event_id), ("after", after)):
        if raw is not None:
            return event_number(name, raw)
    return 0
