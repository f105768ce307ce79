"""The one SSE codec (services/web/sse.py): framing, and a parser that follows the WHATWG
event stream rules, checked on real streams cut at every byte and with every line end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.errors import InvalidRequest
from services.runs.model import Event as RunEvent
from services.runs.model import read_events
from services.web import sse
from services.web.sse import Event, Parser, parse, parse_after

# What api.openai.com sends for a streamed chat completion with include_usage.
OPENAI = b"".join(
    b"data: " + json.dumps(chunk).encode() + b"\n\n"
    for chunk in [
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
         "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                      "finish_reason": None}]},
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
         "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {"content": "Bonjour à  tous 👋"},
                      "finish_reason": None}]},
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
         "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
         "model": "gpt-4o-mini-2024-07-18", "choices": [],
         "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
    ]
) + b"data: [DONE]\n\n"  # fmt: skip

# What api.anthropic.com sends for a streamed message (with its ping and a comment).
ANTHROPIC = b"".join(
    f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
    for name, data in [
        ("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant",
                                       "content": [], "model": "claude-haiku-4-5",
                                       "stop_reason": None, "stop_sequence": None,
                                       "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": " there"}}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {}),
    ]
).replace(b"event: ping", b": keep-alive\nevent: ping")  # fmt: skip

RUN_EVENTS = [
    RunEvent(1, "run.started", {"kind": "agent"}, 1.5),
    RunEvent(2, "text.delta", {"content": "two\nlines\r\nand a CR\r"}, 2.0),
    RunEvent(3, "run.succeeded", {"result": {"output": "ok"}}, 2.5),
]
RUNS = (
    b"".join(e.frame() for e in RUN_EVENTS[:2]) + sse.comment("keep-alive") + RUN_EVENTS[2].frame()
)


def expected(stream: bytes) -> list[Event]:
    """The events of `stream` as written (LF line ends), read without the parser."""
    events = []
    last_id = ""
    for block in stream.decode().split("\n\n")[:-1]:
        kind, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            if name == "event":
                kind = value
            elif name == "id":
                last_id = value
            elif name == "data":
                data.append(value)
        if data:
            events.append(Event("\n".join(data), kind, last_id))
    return events


def with_line_ends(stream: bytes, end: bytes) -> bytes:
    return stream.replace(b"\n", end)


def feed_all(parser: Parser, parts: list[bytes]) -> list[Event]:
    return [event for part in parts for event in parser.feed(part)]


STREAMS = {"openai": OPENAI, "anthropic": ANTHROPIC, "runs": RUNS}


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_real_streams_parse_the_same_however_they_are_cut(name: str, end: bytes) -> None:
    stream = with_line_ends(STREAMS[name], end)
    want = expected(STREAMS[name])
    assert len(want) >= 3
    assert parse(stream) == want
    # Cut in two at every byte (a CRLF included), and read one byte at a time.
    for at in range(1, len(stream)):
        assert feed_all(Parser(), [stream[:at], stream[at:]]) == want, at
    single = [stream[i : i + 1] for i in range(len(stream))]
    assert feed_all(Parser(), single) == want


MIXED = (
    b"data: plain\n\n"
    b": a comment\n\n"
    b"data:no space\ndata:  two spaces\n\n"
    b"\n\n"
    b"id: 4\nevent: named\ndata: {}\n\n"
    b"data: after\n\n"
    b"retry: 10\n\n"
    b"data: last\n\n"
)
MIXED_EVENTS = [
    Event("plain"),
    Event("no space\n two spaces"),
    Event("{}", "named", "4"),
    Event("after", "message", "4"),
    Event("last", "message", "4"),
]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_kind_of_line_cut_at_every_byte(end: bytes) -> None:
    stream = with_line_ends(MIXED, end)
    assert parse(stream) == MIXED_EVENTS
    for at in range(1, len(stream)):
        for second in (at + 1, at + 5, len(stream)):
            parts = [stream[:at], stream[at:second], stream[second:]]
            assert feed_all(Parser(), parts) == MIXED_EVENTS, (at, second)


def test_every_cut_of_a_crlf_stream_in_three_parts() -> None:
    stream = with_line_ends(OPENAI[:400] + b"\n\n", b"\r\n")
    want = parse(stream)
    for first in range(1, len(stream), 7):
        for second in range(first + 1, len(stream)):
            parts = [stream[:first], stream[first:second], stream[second:]]
            assert feed_all(Parser(), parts) == want, (first, second)


def test_openai_and_anthropic_payloads_come_back_whole() -> None:
    chunks = [json.loads(e.data) for e in parse(OPENAI) if e.data != "[DONE]"]
    assert chunks[1]["choices"][0]["delta"]["content"] == "Bonjour à  tous 👋"
    assert parse(OPENAI)[-1].data == "[DONE]"
    kinds = [e.type for e in parse(ANTHROPIC)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "ping" in kinds


def test_one_leading_space_is_stripped_not_more() -> None:
    events = parse(b"data:  two spaces\ndata:none\ndata: \tTab\n\nevent:  x\ndata\n\n")
    assert events == [Event(" two spaces\nnone\n\tTab"), Event("", " x")]


def test_fields_comments_and_unknown_lines() -> None:
    stream = (
        b": a comment\n"
        b"id: 7\nevent: first\ndata: a\ndata: b\n\n"
        b"data: inherits the id\n\n"
        b"id\ndata: the id is reset\n\n"
        b"id: 8\x009\ndata: an id with NUL is ignored\n\n"
        b"retry: 2500\nretry: x\nbogus: field\ndata: c\n\n"
        b"event: no-data\n\n"
        b"data: after an event without data, the type is back to message\n\n"
        b"data: cut off at the end"
    )
    parser = Parser()
    events = parser.feed(stream)
    assert events == [
        Event("a\nb", "first", "7"),
        Event("inherits the id", "message", "7"),
        Event("the id is reset", "message", ""),
        Event("an id with NUL is ignored", "message", ""),
        Event("c", "message", ""),
        Event("after an event without data, the type is back to message"),
    ]
    assert parser.retry == 2500
    assert parser.pending  # the last event never ended: it is not dispatched


def test_a_byte_order_mark_is_skipped_even_cut_and_bad_utf8_is_replaced() -> None:
    stream = b"\xef\xbb\xbfdata: caf\xc3\xa9 \xff\n\n"
    want = [Event("café \ufffd")]
    for at in range(len(stream)):
        assert feed_all(Parser(), [stream[:at], stream[at:]]) == want
    # Elsewhere a BOM is part of the line: "\ufeffdata" is an unknown field.
    assert parse(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == [Event("x")]
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: y\n\n") == []  # only one is skipped


def test_cr_then_crlf_are_two_line_ends() -> None:
    # "data: a" CR (end of line), CRLF (blank line: dispatch), then the next event.
    for at in range(1, 20):
        stream = b"data: a\r\r\ndata: b\r\n\r\n"
        assert feed_all(Parser(), [stream[:at], stream[at:]]) == [Event("a"), Event("b")]


def test_framing() -> None:
    assert sse.event({"a": 1}, name="x", id=3) == b'id: 3\nevent: x\ndata: {"a":1}\n\n'
    assert sse.frame("one\ntwo\r\nthree") == b"data: one\ndata: two\ndata: three\n\n"
    assert parse(sse.frame("  spaced\n")) == [Event("  spaced\n")]
    assert sse.comment("keep-alive") == b": keep-alive\n\n" and parse(sse.comment("x")) == []
    for bad in ({"name": "a\nb"}, {"id": "1\r"}):
        with pytest.raises(ValueError):
            sse.event({}, **bad)  # type: ignore[arg-type]


def test_run_events_round_trip_through_the_bytes_of_a_stream() -> None:
    async def read(parts: list[bytes]) -> list[RunEvent]:
        async def chunks() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        return [e async for e in read_events(chunks())]

    stream = with_line_ends(RUNS, b"\r\n")
    for at in range(0, len(stream), 3):
        assert asyncio.run(read([stream[:at], stream[at:]])) == RUN_EVENTS
    with pytest.raises(ValueError):
        asyncio.run(read([b"id: x\ndata: {}\n\n"]))


def test_resume_position_parsing() -> None:
    assert parse_after(None, None) == 0
    assert parse_after("7", "3") == 7  # the header wins
    assert parse_after(None, "3") == 3
    for bad in ("-1", "abc", "1.5", "99999999999", "\u0663", "\uff17"):
        with pytest.raises(InvalidRequest):
            parse_after(bad, None)
